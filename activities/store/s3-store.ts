// S3 backend: AWS S3 or any S3-compatible endpoint (MinIO locally). Writes stream through a
// multipart `Upload` with a bounded part queue, so memory stays flat whatever the artifact size;
// reads stream the GetObject body. Credentials come from the AWS provider chain and are never
// read, logged or put in errors here.
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { isValidKey, validateKey, validatePrefix } from './artifact-key';
import { BaseArtifactStore } from './artifact-store';
import type { S3StoreConfig } from './config';
import { ArtifactNotFoundError, ForeignArtifactError, InvalidKeyError, StoreConfigError } from './errors';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, e.g. `team-a/`. Default `''` (the bucket root). */
  prefix?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** S3-compatible endpoint such as `http://127.0.0.1:9000`. Default: AWS S3 for the region. */
  endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which MinIO needs. Default: true when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes (S3 minimum 5 MiB); caps an object at 10,000 parts. Default 8 MiB (78 GiB). */
  partSize?: number;
  /** Parts uploaded in parallel; a write buffers about (queueSize + 1) × partSize. Default 3. */
  queueSize?: number;
  /** A ready client (custom credentials, retries); replaces region/endpoint/forcePathStyle. */
  client?: S3Client;
  /**
   * Create the bucket on the first write when it does not exist. Default: true only when
   * `TEMPERED_STORE_CREATE_BUCKET=1` (set for the local MinIO that `tempered up` started), so a
   * mistyped bucket is an error naming it rather than a new, empty bucket.
   */
  createBucket?: boolean;
}

/** Opt-in to creating a missing bucket on first write (the local MinIO sets it). */
export const CREATE_BUCKET_SETTING = 'TEMPERED_STORE_CREATE_BUCKET';

// Tuned with bench/artifact-throughput.ts: larger parts or queues did not write faster against
// MinIO, and cost memory (about 32 MiB buffered per write at these values).
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 3;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class S3ArtifactStore extends BaseArtifactStore {
  readonly root: string;
  readonly bucket: string;
  /** `''` or ends with `/`. */
  readonly prefix: string;
  readonly client: S3Client;
  readonly config: S3StoreConfig | undefined;
  private readonly ownsClient: boolean;
  private readonly partSize: number;
  private readonly queueSize: number;
  private bucketReady: Promise<void> | undefined;
  private readonly createBucket: boolean;
  private readonly endpoint: string | undefined;

  constructor(options: S3StoreOptions) {
    super();
    if (!BUCKET_NAME.test(options.bucket)) {
      throw new StoreConfigError(
        `invalid S3 bucket name "${options.bucket}": use 3-63 lowercase letters, digits, dots and hyphens`,
        'TEMPERED_STORE',
      );
    }
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.root = `s3://${this.bucket}${this.prefix === '' ? '' : `/${this.prefix.slice(0, -1)}`}`;
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.ownsClient = options.client === undefined;
    this.createBucket = options.createBucket ?? process.env[CREATE_BUCKET_SETTING] === '1';
    this.endpoint = options.endpoint;
    // A caller's own client (custom credentials, retries) cannot be rebuilt from a config.
    this.config = this.ownsClient
      ? { kind: 's3', bucket: this.bucket, prefix: this.prefix, region: options.region ?? 'us-east-1', endpoint: options.endpoint, forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined }
      : undefined;
    this.client =
      options.client ??
      new S3Client({
        region: options.region ?? 'us-east-1',
        endpoint: options.endpoint,
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
        // Every read is verified against the ref's sha256 end to end, so the SDK's own CRC checksums
        // would only cost CPU; and several S3-compatible servers reject their default headers.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
    if (this.ownsClient) signHeadersOnly(this.client);
  }

  /**
   * Creates the bucket if it does not exist (HeadBucket, then CreateBucket). Called by the first
   * write when `createBucket` is on; memoized once it succeeds.
   */
  ensureBucket(): Promise<void> {
    this.bucketReady ??= this.createBucketIfMissing().catch((err: unknown) => {
      this.bucketReady = undefined;
      throw err;
    });
    return this.bucketReady;
  }

  /** Before a write: the bucket exists (created when `createBucket` is on), or a StoreConfigError names it. */
  private bucketForWrite(): Promise<void> {
    if (this.createBucket) return this.ensureBucket();
    this.bucketReady ??= this.requireBucket().catch((err: unknown) => {
      this.bucketReady = undefined;
      throw err;
    });
    return this.bucketReady;
  }

  private async requireBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const mapped = this.mapError(err, '');
      if (!(mapped instanceof ArtifactNotFoundError)) throw mapped;
      throw new StoreConfigError(
        `S3 bucket "${this.bucket}" does not exist${this.endpoint ? ` at ${this.endpoint}` : ''}; check TEMPERED_STORE for a typo, ` +
          `create the bucket (e.g. "aws s3 mb s3://${this.bucket}"), or set ${CREATE_BUCKET_SETTING}=1 to let Tempered create it`,
        'TEMPERED_STORE',
      );
    }
  }

  uriFor(key: string): string {
    return `${this.root}/${validateKey(key)}`;
  }

  keyFromUri(uri: string): string {
    const base = `${this.root}/`;
    if (!uri.startsWith(base)) throw new ForeignArtifactError(uri, this.root);
    return validateKey(uri.slice(base.length));
  }

  async stat(key: string): Promise<{ bytes: number } | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return { bytes: head.ContentLength ?? 0 };
    } catch (err) {
      const mapped = this.mapError(err, key);
      if (mapped instanceof ArtifactNotFoundError) return undefined;
      throw mapped;
    }
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const keys: string[] = [];
    try {
      const pages = paginateListObjectsV2(
        { client: this.client },
        { Bucket: this.bucket, Prefix: this.prefix + prefix },
      );
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(this.prefix.length);
          // Objects other tools wrote under invalid keys (e.g. `dir/` markers) are not artifacts.
          if (key !== undefined && isValidKey(key)) keys.push(key);
        }
      }
    } catch (err) {
      const mapped = this.mapError(err, prefix);
      if (mapped instanceof ArtifactNotFoundError) return []; // no bucket yet: nothing stored
      throw mapped;
    }
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      const mapped = this.mapError(err, key);
      if (!(mapped instanceof ArtifactNotFoundError)) throw mapped;
    }
  }

  override async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }

  protected async writeObject(key: string, body: Readable | Buffer, mediaType: string): Promise<void> {
    await this.bucketForWrite();
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.objectKey(key), Body: body, ContentType: mediaType },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false, // abort the multipart upload on failure: no orphaned parts
    });
    try {
      await upload.done();
    } catch (err) {
      // Deleted behind our back: on the retry, recreate it (createBucket) or name it, instead of calling the artifact missing.
      if ((err as Error).name === 'NoSuchBucket') {
        this.bucketReady = undefined;
        throw err;
      }
      throw this.mapError(err, key);
    }
  }

  protected async createObject(key: string, body: Buffer, mediaType: string): Promise<boolean> {
    await this.bucketForWrite();
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Body: body, ContentType: mediaType, IfNoneMatch: '*' }));
      return true;
    } catch (err) {
      // 412: the key exists. (A 409 ConditionalRequestConflict — a racing creator still in flight —
      // stays an error, so the caller's retry sees the winner's object.)
      if ((err as Error).name === 'PreconditionFailed' || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) return false;
      throw this.mapError(err, key);
    }
  }

  protected async openObject(key: string, signal: AbortSignal): Promise<Readable> {
    try {
      const object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), {
        abortSignal: signal,
      });
      if (!(object.Body instanceof Readable)) throw new Error(`GetObject returned no stream for ${this.uriFor(key)}`);
      return object.Body;
    } catch (err) {
      throw this.mapError(err, key);
    }
  }

  private async createBucketIfMissing(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      const mapped = this.mapError(err, '');
      if (!(mapped instanceof ArtifactNotFoundError)) throw mapped;
    }
    try {
      const region = await this.client.config.region();
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is S3's default and rejects an explicit constraint.
          ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
        }),
      );
    } catch (err) {
      // Another worker may have created it in between.
      if ((err as Error).name !== 'BucketAlreadyOwnedByYou') throw this.mapError(err, '');
    }
  }

  private objectKey(key: string): string {
    return this.prefix + validateKey(key);
  }

  /** Non-retryable conditions become store errors; anything else (network, 5xx) stays as is. */
  private mapError(err: unknown, key: string): unknown {
    const name = (err as Error | undefined)?.name;
    const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
    const where = key === '' ? `s3://${this.bucket}` : `${this.root}/${key}`;
    if (name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'NotFound' || status === 404) {
      return new ArtifactNotFoundError(where);
    }
    if (name === 'CredentialsProviderError') {
      return new StoreConfigError(
        'no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or another AWS credential source',
        'AWS_ACCESS_KEY_ID',
        { cause: err },
      );
    }
    if (status === 403 && !TRANSIENT_DENIALS.has(name ?? '')) {
      const code = name === undefined || name === 'Unknown' ? 'HTTP 403' : name;
      return new StoreConfigError(`S3 denied access to "${where}" (${code}): check the credentials and bucket policy`, 'AWS_ACCESS_KEY_ID', {
        cause: err,
      });
    }
    if (name === 'BucketAlreadyExists') {
      return new StoreConfigError(`S3 bucket "${this.bucket}" belongs to another account; choose another name`, 'TEMPERED_STORE', {
        cause: err,
      });
    }
    return err;
  }
}

/**
 * 403s a retry can fix: the SDK refreshes temporary credentials and corrects clock skew. Every other
 * 403 (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, a bodiless HEAD 403) needs a human.
 */
const TRANSIENT_DENIALS = new Set(['ExpiredToken', 'TokenRefreshRequired', 'RequestTimeTooSkewed']);

/**
 * Uploads send `UNSIGNED-PAYLOAD` instead of signing a sha256 of every part, as the SDK already does
 * for streamed bodies: it saves a full extra hash on each side (SDK and server). Headers stay
 * signed; body integrity rests on TLS/TCP and on the sha256 every read verifies.
 */
function signHeadersOnly(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (UPLOAD_COMMANDS.has(context.commandName ?? '') && request.headers !== undefined) {
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      }
      return next(args);
    },
    { step: 'build', name: 'temperedUnsignedPayload' },
  );
}

const UPLOAD_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

function normalizePrefix(prefix: string): string {
  const withSlash = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  try {
    return validatePrefix(withSlash);
  } catch (err) {
    if (err instanceof InvalidKeyError) {
      throw new StoreConfigError(`invalid S3 key prefix "${prefix}": ${err.reason}`, 'TEMPERED_STORE');
    }
    throw err;
  }
}
