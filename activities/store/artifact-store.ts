// The artifact store: one interface, two backends (file-store.ts, s3-store.ts). The backends only
// move bytes; hashing on write and verification on read live here, once, so both behave the same
// (ARCHITECTURE.md, invariants 1 and 3).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ArtifactRef } from '../../workflows/types';
import { validateKey } from './artifact-key';
import { DigestStream, sha256Hex, VerifyStream } from './digest-stream';
import type { StoreConfig } from './config';
import { ArtifactNotFoundError, MalformedArtifactError } from './errors';

/** What `put` accepts. Streams are consumed once and never buffered whole. */
export type ArtifactBody = Readable | Buffer | string;

/** A store object read by key, with the ref computed from the bytes read. */
export interface KeyedRead {
  body: Buffer;
  ref: ArtifactRef;
}

export interface ArtifactStore {
  /** `file:///abs/dir` or `s3://bucket[/prefix]`, without a trailing slash; every uri starts with it. */
  readonly root: string;
  /** How to open this same store elsewhere (a compute thread); undefined when it cannot be, e.g. an S3 store on a caller's own client. */
  readonly config?: StoreConfig;
  /**
   * Writes `body` under `key` atomically (readers see the old object or the new one, never a part)
   * and returns its ref, sha256 computed while streaming. Overwrites an existing object.
   */
  put(key: string, body: ArtifactBody, mediaType: string): Promise<ArtifactRef>;
  /**
   * Streams the artifact. The stream fails with `IntegrityError` if the bytes do not match the ref
   * (checked at the end), `ArtifactNotFoundError` if it is gone, `ForeignArtifactError` (thrown)
   * if the uri is outside this store.
   */
  openRead(ref: ArtifactRef): Readable;
  /** Reads the whole artifact into memory, verified. For small artifacts. */
  readBuffer(ref: ArtifactRef): Promise<Buffer>;
  /** Reads and parses a JSON artifact, verified; `MalformedArtifactError` if it does not parse. */
  readJson<T = unknown>(ref: ArtifactRef): Promise<T>;
  /**
   * Reads a small object by key when no ref exists to check it against (a manifest cannot contain
   * its own ref). Returns the bytes and the ref that pins them, or undefined if there is no object.
   */
  readKey(key: string, mediaType: string): Promise<KeyedRead | undefined>;
  /**
   * Writes a small object at `key` only if none exists there, atomically (S3 `If-None-Match: *`, a
   * hard link on disk): of two concurrent creators exactly one succeeds. Returns the new object's
   * ref, or undefined when the key was taken. For claims and append-only logs.
   */
  create(key: string, body: Buffer | string, mediaType: string): Promise<ArtifactRef | undefined>;
  /** Size of the object at `key`, or undefined if there is none. */
  stat(key: string): Promise<{ bytes: number } | undefined>;
  /** Keys starting with `prefix` (`''` for all), sorted. */
  list(prefix: string): Promise<string[]>;
  /** Deletes the object at `key`; deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** The uri an artifact at `key` gets. */
  uriFor(key: string): string;
  /** Inverse of `uriFor`; throws `ForeignArtifactError` for a uri outside this store. */
  keyFromUri(uri: string): string;
  /** Releases connections (S3); the store must not be used afterwards. */
  close(): Promise<void>;
}

/** Shared logic over a backend that only knows how to write, open, stat, list and delete objects. */
export abstract class BaseArtifactStore implements ArtifactStore {
  abstract readonly root: string;
  abstract stat(key: string): Promise<{ bytes: number } | undefined>;
  abstract list(prefix: string): Promise<string[]>;
  abstract delete(key: string): Promise<void>;
  abstract uriFor(key: string): string;
  abstract keyFromUri(uri: string): string;

  async close(): Promise<void> {}

  /** Stores `body` at `key` atomically; resolves once every byte is durable in the backend. */
  protected abstract writeObject(key: string, body: Readable | Buffer, mediaType: string): Promise<void>;
  /** Stores `body` at `key` unless an object is there; false if one was. Atomic against concurrent creators. */
  protected abstract createObject(key: string, body: Buffer, mediaType: string): Promise<boolean>;
  /** Opens `key` for reading; rejects with `ArtifactNotFoundError` if absent. */
  protected abstract openObject(key: string, signal: AbortSignal): Promise<Readable>;

  async put(key: string, body: ArtifactBody, mediaType: string): Promise<ArtifactRef> {
    validateKey(key);
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      await this.writeObject(key, bytes, mediaType);
      return { uri: this.uriFor(key), sha256: sha256Hex(bytes), bytes: bytes.length, mediaType };
    }
    const digest = new DigestStream();
    // If the backend fails first, destroying the digest releases the source. Both are awaited to the
    // end so that a rejected put has already removed its partial output (temp file, multipart parts).
    const writing = this.writeObject(key, digest, mediaType).catch((err: unknown) => {
      digest.destroy(asError(err));
      throw err;
    });
    const [piped, written] = await Promise.allSettled([pipeline(body, digest), writing]);
    // The pipeline's reason is the root cause either way: the source's error or the backend's.
    if (piped.status === 'rejected') throw piped.reason;
    if (written.status === 'rejected') throw written.reason;
    return { uri: this.uriFor(key), sha256: digest.sha256, bytes: digest.bytes, mediaType };
  }

  async create(key: string, body: Buffer | string, mediaType: string): Promise<ArtifactRef | undefined> {
    validateKey(key);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    if (!(await this.createObject(key, bytes, mediaType))) return undefined;
    return { uri: this.uriFor(key), sha256: sha256Hex(bytes), bytes: bytes.length, mediaType };
  }

  openRead(ref: ArtifactRef): Readable {
    const key = this.keyFromUri(ref.uri);
    const verify = new VerifyStream(ref);
    const abort = new AbortController();
    let opened = false;
    // A consumer that gives up before the object is open should not leave a request in flight.
    verify.once('close', () => {
      if (!opened) abort.abort();
    });
    void this.openObject(key, abort.signal).then(
      (source) => {
        opened = true;
        if (verify.destroyed) source.destroy();
        // Errors (source or integrity) surface on `verify`, which pipeline destroys with them.
        else void pipeline(source, verify).catch(() => undefined);
      },
      (err: unknown) => verify.destroy(asError(err)),
    );
    return verify;
  }

  async readBuffer(ref: ArtifactRef): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.openRead(ref)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async readJson<T = unknown>(ref: ArtifactRef): Promise<T> {
    const text = (await this.readBuffer(ref)).toString('utf8');
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new MalformedArtifactError(ref.uri, undefined, (err as Error).message);
    }
  }

  async readKey(key: string, mediaType: string): Promise<KeyedRead | undefined> {
    validateKey(key);
    let source: Readable;
    try {
      source = await this.openObject(key, new AbortController().signal);
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) return undefined;
      throw err;
    }
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks);
    return { body, ref: { uri: this.uriFor(key), sha256: hash.digest('hex'), bytes: body.length, mediaType } };
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
