// Fixtures that run the same tests over both backends. The S3 one needs a real MinIO, whose
// endpoint and credentials the jest globalSetup exports (TEMPERED_TEST_S3_ENDPOINT,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); without them the S3 suites are skipped.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ArtifactStore } from '../../../activities/store/artifact-store';
import { FileArtifactStore } from '../../../activities/store/file-store';
import { S3ArtifactStore, type S3StoreOptions } from '../../../activities/store/s3-store';

export const s3Endpoint = process.env.TEMPERED_TEST_S3_ENDPOINT;
/** Shared by the S3 suites; each suite works under its own random prefix. */
export const TEST_BUCKET = 'tempered-store-test';

export type BackendName = 'file' | 's3';

export interface BackendFixture {
  store: ArtifactStore;
  /** Replaces the stored bytes behind the store's back, to simulate corruption. */
  writeRaw(key: string, bytes: Buffer): Promise<void>;
  /** Deletes everything the suite wrote and closes the store. */
  cleanup(): Promise<void>;
}

/** `describe(title)` for one backend; the S3 one shows as skipped when there is no MinIO. */
export function describeBackend(title: string, backend: BackendName, body: () => void): void {
  const run = backend === 's3' && s3Endpoint === undefined ? describe.skip : describe;
  run(`${title} (${backend})`, body);
}

export async function createFixture(name: BackendName): Promise<BackendFixture> {
  return name === 'file' ? createFileFixture() : createS3Fixture();
}

async function createFileFixture(): Promise<BackendFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-store-'));
  const store = new FileArtifactStore(dir);
  return {
    store,
    writeRaw: (key, bytes) => writeFile(path.join(dir, key), bytes),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** An S3 store on the test MinIO under a fresh prefix. */
export function createS3Store(options: Partial<S3StoreOptions> = {}): S3ArtifactStore {
  return new S3ArtifactStore({
    bucket: TEST_BUCKET,
    prefix: `store-test-${randomUUID()}/`,
    endpoint: s3Endpoint,
    ...options,
  });
}

async function createS3Fixture(): Promise<BackendFixture> {
  const store = createS3Store();
  await store.ensureBucket();
  return {
    store,
    writeRaw: async (key, bytes) => {
      await store.client.send(new PutObjectCommand({ Bucket: store.bucket, Key: store.prefix + key, Body: bytes }));
    },
    cleanup: async () => {
      for (const key of await store.list('')) await store.delete(key);
      await store.close();
    },
  };
}

/**
 * `size` deterministic bytes in `chunkSize` pieces, generated lazily: a pseudo-random block, with
 * each chunk stamped with its index so that reordered or repeated parts change the digest.
 */
export function generatedStream(size: number, chunkSize = 64 * 1024, seed = 1): Readable {
  const block = Buffer.allocUnsafe(chunkSize);
  let state = seed >>> 0;
  for (let i = 0; i < chunkSize; i += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // LCG: cheap and deterministic
    block[i] = state >>> 24;
  }
  let remaining = size;
  let index = 0;
  return new Readable({
    read() {
      if (remaining === 0) {
        this.push(null);
        return;
      }
      const chunk = Buffer.from(block.subarray(0, Math.min(chunkSize, remaining)));
      if (chunk.length >= 4) chunk.writeUInt32BE(index, 0);
      index += 1;
      remaining -= chunk.length;
      this.push(chunk);
    },
  });
}

/** A stream that emits `good` and then fails with `error`. */
export function failingStream(good: Buffer, error: Error): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(good);
      } else {
        this.destroy(error);
      }
    },
  });
}
