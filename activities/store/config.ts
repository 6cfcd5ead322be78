// Where artifacts live, from the environment. The config never holds credentials: the S3 client
// takes them from the AWS provider chain itself, so a StoreConfig is always safe to log.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreConfigError } from './errors';

export type StoreConfig = FileStoreConfig | S3StoreConfig;

export interface FileStoreConfig {
  kind: 'file';
  /** Absolute directory holding the artifacts. */
  dir: string;
}

export interface S3StoreConfig {
  kind: 's3';
  bucket: string;
  /** Key prefix inside the bucket: `''` or ending with `/`. */
  prefix: string;
  /** From `AWS_REGION`; default `us-east-1`. */
  region: string;
  /** S3-compatible endpoint (MinIO); undefined means AWS S3. */
  endpoint?: string;
  /** True when an endpoint is set: MinIO and most S3-compatible servers need path-style URLs. */
  forcePathStyle: boolean;
}

const ENDPOINT_SETTINGS = ['TEMPERED_S3_ENDPOINT', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'] as const;

/**
 * Reads the store configuration:
 * - `TEMPERED_STORE`: `s3://bucket[/prefix]` or `file:///abs/dir`; default `file://<cwd>/.tempered/artifacts`.
 * - S3 only: endpoint from `TEMPERED_S3_ENDPOINT`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`;
 *   region from `AWS_REGION` (default `us-east-1`). Credentials are left to the AWS provider chain.
 * Throws `StoreConfigError` naming the setting to fix.
 */
export function storeConfigFromEnv(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): StoreConfig {
  const url = env.TEMPERED_STORE?.trim() || undefined;
  if (url === undefined) return { kind: 'file', dir: path.join(cwd, '.tempered', 'artifacts') };
  if (url.startsWith('s3://')) {
    const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
    if (match === null) throw new StoreConfigError(`TEMPERED_STORE "${url}" has no bucket; expected s3://bucket[/prefix]`, 'TEMPERED_STORE');
    const [, bucket, rawPrefix] = match;
    const prefix = rawPrefix === '' || rawPrefix.endsWith('/') ? rawPrefix : `${rawPrefix}/`;
    const endpoint = endpointFromEnv(env);
    return { kind: 's3', bucket, prefix, region: env.AWS_REGION || 'us-east-1', endpoint, forcePathStyle: endpoint !== undefined };
  }
  if (url.startsWith('file:')) {
    try {
      return { kind: 'file', dir: fileURLToPath(url) };
    } catch {
      throw new StoreConfigError(`TEMPERED_STORE "${url}" is not an absolute file URL; expected file:///abs/dir`, 'TEMPERED_STORE');
    }
  }
  throw new StoreConfigError(
    `TEMPERED_STORE "${url}" is not supported; expected s3://bucket[/prefix] or file:///abs/dir`,
    'TEMPERED_STORE',
  );
}

/** One line for logs, e.g. `s3://bucket/prefix via http://127.0.0.1:9000 (us-east-1)`. No credentials. */
export function describeStore(config: StoreConfig): string {
  if (config.kind === 'file') return `file://${config.dir}`;
  const root = `s3://${config.bucket}${config.prefix === '' ? '' : `/${config.prefix.slice(0, -1)}`}`;
  return `${root} via ${config.endpoint ?? 'AWS S3'} (${config.region})`;
}

function endpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const setting = ENDPOINT_SETTINGS.find((name) => env[name]?.trim());
  if (setting === undefined) return undefined;
  const value = env[setting]!.trim();
  // A value with `@` may carry user:password; it is never quoted back.
  const shown = value.includes('@') ? '(value withheld: it looks like it holds credentials)' : `"${value}"`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new StoreConfigError(`${setting} ${shown} is not a URL; expected e.g. http://127.0.0.1:9000`, setting);
  }
  if (url.username !== '' || url.password !== '') {
    throw new StoreConfigError(
      `${setting} must not embed credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead`,
      setting,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new StoreConfigError(`${setting} ${shown} must be an http:// or https:// URL`, setting);
  }
  return value.replace(/\/+$/, '');
}
