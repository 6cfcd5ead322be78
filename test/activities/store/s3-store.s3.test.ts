// S3-only behaviour. Needs the MinIO that the integration project's globalSetup starts.
import { DeleteBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash, randomUUID } from 'node:crypto';
import { ArtifactNotFoundError, isNonRetryableStoreError, StoreConfigError } from '../../../activities/store/errors';
import { S3ArtifactStore } from '../../../activities/store/s3-store';
import { readCommittedManifest } from '../../../activities/store/stage-output';
import { createS3Store, generatedStream, s3Endpoint } from './backends';

const MiB = 1024 * 1024;

(s3Endpoint === undefined ? describe.skip : describe)('S3 artifact store', () => {
  let store: S3ArtifactStore;
  beforeAll(async () => {
    store = createS3Store({ partSize: 5 * MiB, queueSize: 2 });
    await store.ensureBucket();
  });
  afterAll(async () => {
    for (const key of await store.list('')) await store.delete(key);
    await store.close();
  });

  it('streams a 24 MiB object as a multipart upload and reads it back verified', async () => {
    const size = 24 * MiB + 123;
    const expected = createHash('sha256');
    for await (const chunk of generatedStream(size)) expected.update(chunk as Buffer);

    const ref = await store.put('runs/r/train/weights.bin', generatedStream(size), 'application/octet-stream');
    expect(ref).toMatchObject({ sha256: expected.digest('hex'), bytes: size, uri: `${store.root}/runs/r/train/weights.bin` });

    const head = await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: `${store.prefix}runs/r/train/weights.bin` }));
    expect(head.ETag).toMatch(/-5"$/); // 5 parts of at most 5 MiB: it really was multipart
    expect(head.ContentType).toBe('application/octet-stream');

    const read = createHash('sha256');
    let bytes = 0;
    for await (const chunk of store.openRead(ref)) {
      read.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect({ sha256: read.digest('hex'), bytes }).toEqual({ sha256: ref.sha256, bytes: ref.bytes });
  });

  it('keeps uris under bucket and prefix', () => {
    expect(store.root).toBe(`s3://tempered-store-test/${store.prefix.slice(0, -1)}`);
    expect(store.keyFromUri(store.uriFor('a/b.json'))).toBe('a/b.json');
    expect(() => store.keyFromUri('s3://tempered-store-test/other/a/b.json')).toThrow(/outside this store/);
  });

  it('creates a missing bucket on first write, and reads an absent bucket as empty', async () => {
    const fresh = new S3ArtifactStore({ bucket: `tempered-fresh-${randomUUID().slice(0, 8)}`, endpoint: s3Endpoint });
    try {
      expect(await fresh.list('')).toEqual([]);
      expect(await fresh.stat('runs/r/x.json')).toBeUndefined();
      expect(await readCommittedManifest(fresh, 'runs/r/clean/')).toBeUndefined();
      const ref = await fresh.put('runs/r/x.json', '{}', 'application/json');
      expect(await fresh.readJson(ref)).toEqual({});
      await fresh.ensureBucket(); // idempotent
      await fresh.delete('runs/r/x.json');
      await fresh.client.send(new DeleteBucketCommand({ Bucket: fresh.bucket }));
      await expect(fresh.readBuffer(ref)).rejects.toBeInstanceOf(ArtifactNotFoundError);
    } finally {
      await fresh.close();
    }
  });

  it('reports rejected credentials as a config error without echoing the secret', async () => {
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: s3Endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'not-a-user', secretAccessKey: 'wrong-secret-value' },
    });
    const denied = new S3ArtifactStore({ bucket: store.bucket, prefix: store.prefix, client });
    try {
      const err = await denied.stat('runs/r/x.json').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreConfigError);
      expect((err as Error).message).not.toContain('wrong-secret-value');
      expect(JSON.stringify(err)).not.toContain('wrong-secret-value');
    } finally {
      client.destroy();
    }
  });

  it('leaves connection failures retryable', async () => {
    const unreachable = new S3ArtifactStore({
      bucket: store.bucket,
      client: new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:1', forcePathStyle: true, maxAttempts: 1 }),
    });
    try {
      const err = await unreachable.put('runs/r/x.json', '{}', 'application/json').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(isNonRetryableStoreError(err)).toBe(false);
    } finally {
      unreachable.client.destroy();
    }
  });
});
