import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
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
}

/** What collect needs from S3. Tests pass an in-memory fake; workers use createS3SourceReader. */
export interface S3SourceReader {
  /** Objects under `uri` (`s3://bucket/prefix`) whose key below the prefix matches `include` (default all). */
  list(uri: string, include?: string, endpoint?: string): AsyncIterable<S3SourceObject>;
  /** The bytes of one object. */
  read(uri: string, endpoint?: string): Promise<Buffer>;
}

/** Options of createS3SourceReader. */
export interface S3SourceReaderOptions {
  /** S3-compatible endpoint used when a source names none. Default: env TEMPERED_S3_ENDPOINT, else AWS. */
  endpoint?: string;
  /** Region. Default: env AWS_REGION, else `us-east-1` (what MinIO expects). */
  region?: string;
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
 * chain, path-style addressing whenever an endpoint is given (MinIO and most S3-compatibles need it). */
export function createS3SourceReader(options: S3SourceReaderOptions = {}): S3SourceReader {
  const clients = new Map<string, S3Client>();
  const clientFor = (endpoint: string | undefined): S3Client => {
    const resolved = endpoint ?? options.endpoint ?? process.env.TEMPERED_S3_ENDPOINT;
    const cacheKey = resolved ?? '';
    let client = clients.get(cacheKey);
    if (!client) {
      client = new S3Client({
        region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
        ...(resolved ? { endpoint: resolved, forcePathStyle: true } : {}),
      });
      clients.set(cacheKey, client);
    }
    return client;
  };

  return {
    async *list(uri, include, endpoint) {
      const { bucket, prefix } = sourcePrefix(uri);
      const selected = compileInclude(include);
      const client = clientFor(endpoint);
      let continuationToken: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: continuationToken }),
        );
        for (const object of page.Contents ?? []) {
          const key = object.Key;
          // Keys ending in `/` are folder markers written by consoles, not data.
          if (key === undefined || key.endsWith('/') || !selected(key.slice(prefix.length))) continue;
          yield { key, uri: `s3://${bucket}/${key}`, lastModified: object.LastModified?.getTime() };
        }
        continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (continuationToken);
    },

    async read(uri, endpoint) {
      const { bucket, key } = parseS3Uri(uri);
      const response = await clientFor(endpoint).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (!response.Body) throw new Error(`GetObject ${uri} returned no body`);
      return Buffer.from(await response.Body.transformToByteArray());
    },
  };
}
