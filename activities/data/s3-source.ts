import { GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import picomatch from 'picomatch';
import { InvalidOptionError } from './errors';

/** One object found under an S3 source prefix. */
export interface S3SourceObject {
  /** Full object key. */
  key: string;
  /** `s3://bucket/key`. */
  uri: string;
  /** When the object was last written, ms since the epoch (ListObjectsV2 `LastModified`). Absent when the listing omits it. */
  lastModified?: number;
  /** The object's ETag as listed (quotes kept): changes whenever its content does. Absent when the listing omits it. */
  etag?: string;
  /** Bytes, as listed. Absent when the listing omits it. */
  size?: number;
}

/** What collect needs from S3. Tests pass an in-memory fake; workers use createS3SourceReader. */
export interface S3SourceReader {
  /** Objects under `uri` (`s3://bucket/prefix`) whose key below the prefix matches `include` (default all). */
  list(uri: string, include?: string, endpoint?: string): AsyncIterable<S3SourceObject>;
  /** The bytes of one object. */
  read(uri: string, endpoint?: string): Promise<Buffer>;
}

/** An S3SourceReader that also streams objects too large to hold in memory (a base model's weights). */
export interface S3ObjectReader extends S3SourceReader {
  open(uri: string, endpoint?: string): Promise<NodeJS.ReadableStream>;
}

/** Options of createS3SourceReader. */
export interface S3SourceReaderOptions {
  /** S3-compatible endpoint used when a source names none. Default: env TEMPERED_S3_ENDPOINT, else AWS. */
  endpoint?: string;
  /** Region. Default: env AWS_REGION, else `us-east-1` (what MinIO expects). */
  region?: string;
  /**
   * Endpoints a source's own `endpoint:` may name and still get signed requests (the worker's
   * credentials). Default: env `TEMPERED_S3_SIGNED_ENDPOINTS`, comma-separated URLs.
   */
  signedEndpoints?: readonly string[];
}

/** The worker's list of endpoints its credentials may be sent to when a spec names them. */
export const SIGNED_ENDPOINTS_SETTING = 'TEMPERED_S3_SIGNED_ENDPOINTS';

/** `scheme://host:port` of an endpoint URL, or the trimmed text when it is not a URL. */
function originOf(endpoint: string): string {
  try {
    return new URL(endpoint.trim()).origin;
  } catch {
    return endpoint.trim();
  }
}

/**
 * Whether requests to a source's own endpoint are signed with the worker's credentials. A spec is
 * written by whoever writes pipelines, the credentials belong to whoever runs the worker: they go
 * only to the worker's own endpoint (the store's, or AWS when it has none) and to endpoints the
 * worker lists; every other endpoint gets unsigned (anonymous) requests, which public buckets answer.
 */
export function signsRequestsTo(sourceEndpoint: string | undefined, ownEndpoint: string | undefined, signedEndpoints: readonly string[]): boolean {
  if (sourceEndpoint === undefined) return true;
  const origin = originOf(sourceEndpoint);
  if (ownEndpoint !== undefined && origin === originOf(ownEndpoint)) return true;
  return signedEndpoints.some((e) => e.trim() !== '' && originOf(e) === origin);
}

/** Splits `s3://bucket/key` into bucket and key. */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!match) {
    throw new InvalidOptionError('s3 source', uri, 'is not an s3:// URI', 'write it as s3://bucket/prefix');
  }
  return { bucket: match[1], key: match[2] };
}

/** The listing prefix of a source: the key part of its URI treated as a directory (`a/b` lists `a/b/...`). */
export function sourcePrefix(uri: string): { bucket: string; prefix: string } {
  const { bucket, key } = parseS3Uri(uri);
  return { bucket, prefix: key === '' || key.endsWith('/') ? key : `${key}/` };
}

/** Whether a key below a source prefix is selected by the source's `include` glob (default: every key). */
export function compileInclude(include: string | undefined): (relativeKey: string) => boolean {
  if (include === undefined) return () => true;
  try {
    // The options tinyglobby uses for local sources, so one glob selects alike on disk and in S3:
    // `posix` makes `[!abc]` a negated class (picomatch otherwise reads `!` as a member), dotfiles
    // need an explicit `.`. Keys always use `/`, whatever the worker's platform.
    return picomatch(include, { posix: true, strictBrackets: true, windows: false });
  } catch (error) {
    throw new InvalidOptionError(
      's3 source include',
      include,
      `is not a valid glob (${(error as Error).message})`,
      'use *, **, ?, [abc] and balanced {a,b}',
    );
  }
}

/** An S3SourceReader over the AWS SDK: paginated ListObjectsV2 and GetObject, standard credential
 * chain (unsigned for a source's own endpoint unless the worker allows it: see signsRequestsTo),
 * path-style addressing whenever an endpoint is given (MinIO and most S3-compatibles need it). */
export function createS3SourceReader(options: S3SourceReaderOptions = {}): S3ObjectReader {
  const clients = new Map<string, S3Client>();
  const own = options.endpoint ?? process.env.TEMPERED_S3_ENDPOINT;
  const signedEndpoints = options.signedEndpoints ?? (process.env[SIGNED_ENDPOINTS_SETTING] ?? '').split(',');
  const clientFor = (endpoint: string | undefined): { client: S3Client; anonymous: boolean } => {
    const resolved = endpoint ?? own;
    const anonymous = !signsRequestsTo(endpoint, own, signedEndpoints);
    const cacheKey = `${anonymous ? 'anonymous ' : ''}${resolved ?? ''}`;
    let client = clients.get(cacheKey);
    if (!client) {
      client = new S3Client({
        region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
        ...(resolved ? { endpoint: resolved, forcePathStyle: true } : {}),
        // Unsigned: no Authorization header, so no access key id goes to an endpoint a spec chose.
        ...(anonymous ? { signer: { sign: async (request: unknown) => request } } : {}),
      } as S3ClientConfig);
      clients.set(cacheKey, client);
    }
    return { client, anonymous };
  };
  /** An unsigned request the endpoint refused: say why it was unsigned and how to sign it. */
  const explainDenied = (err: unknown, uri: string, endpoint: string | undefined, anonymous: boolean): unknown => {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (!anonymous || (status !== 401 && status !== 403 && (err as Error).name !== 'AccessDenied')) return err;
    return new InvalidOptionError(
      's3 source',
      uri,
      `was refused by ${originOf(endpoint!)} (HTTP ${status ?? 403}) to an unsigned request: a source's own endpoint gets the worker's credentials only if the worker allows it`,
      `make the bucket public, drop "endpoint:" to read through the worker's own endpoint, or start the worker with ${SIGNED_ENDPOINTS_SETTING}=${originOf(endpoint!)}`,
    );
  };

  const getObject = async (uri: string, endpoint: string | undefined) => {
    const { bucket, key } = parseS3Uri(uri);
    const { client, anonymous } = clientFor(endpoint);
    const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch((err: unknown) => {
      throw explainDenied(err, uri, endpoint, anonymous);
    });
    if (!response.Body) throw new Error(`GetObject ${uri} returned no body`);
    return response.Body;
  };

  return {
    async *list(uri, include, endpoint) {
      const { bucket, prefix } = sourcePrefix(uri);
      const selected = compileInclude(include);
      const { client, anonymous } = clientFor(endpoint);
      let continuationToken: string | undefined;
      do {
        const page = await client
          .send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: continuationToken }))
          .catch((err: unknown) => {
            throw explainDenied(err, uri, endpoint, anonymous);
          });
        for (const object of page.Contents ?? []) {
          const key = object.Key;
          // Keys ending in `/` are folder markers written by consoles, not data.
          if (key === undefined || key.endsWith('/') || !selected(key.slice(prefix.length))) continue;
          yield { key, uri: `s3://${bucket}/${key}`, lastModified: object.LastModified?.getTime(), etag: object.ETag, size: object.Size };
        }
        continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (continuationToken);
    },

    async read(uri, endpoint) {
      const body = await getObject(uri, endpoint);
      return Buffer.from(await body.transformToByteArray());
    },

    async open(uri, endpoint) {
      return (await getObject(uri, endpoint)) as unknown as NodeJS.ReadableStream;
    },
  };
}
