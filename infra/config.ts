import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { readServers } from './servers';
import { defaultStateDir } from './state-dir';

// Where Tempered finds its servers. Production: environment variables name any Temporal cluster
// (or Temporal Cloud) and any S3-compatible store. Local: the servers `tempered up` started.

/** How to reach Temporal. Secrets (TLS keys, API keys) are read from files/env, never logged. */
export interface TemporalSettings {
  address: string;
  namespace: string;
  tls?: { serverName?: string; caFile?: string; certFile?: string; keyFile?: string } | true;
  apiKey?: string;
  /** `env` (production settings) or `local` (`tempered up`). */
  source: 'env' | 'local';
}

/** Raised when no server is configured or running: says how to get one. */
export class NoServerError extends Error {
  override readonly name = 'NoServerError';
}

/**
 * Temporal settings from `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE` (default `default`),
 * `TEMPORAL_TLS_CERT`/`TEMPORAL_TLS_KEY`/`TEMPORAL_TLS_CA`/`TEMPORAL_TLS_SERVER_NAME`, `TEMPORAL_TLS=true`,
 * `TEMPORAL_API_KEY`; else the local dev server from the state directory.
 */
export async function temporalSettings(stateDir = defaultStateDir()): Promise<TemporalSettings> {
  const env = process.env;
  if (env.TEMPORAL_ADDRESS) {
    const hasTlsFiles = env.TEMPORAL_TLS_CERT || env.TEMPORAL_TLS_KEY || env.TEMPORAL_TLS_CA || env.TEMPORAL_TLS_SERVER_NAME;
    const tls = hasTlsFiles
      ? { serverName: env.TEMPORAL_TLS_SERVER_NAME, caFile: env.TEMPORAL_TLS_CA, certFile: env.TEMPORAL_TLS_CERT, keyFile: env.TEMPORAL_TLS_KEY }
      : env.TEMPORAL_TLS === 'true' || env.TEMPORAL_API_KEY
        ? (true as const)
        : undefined;
    return { address: env.TEMPORAL_ADDRESS, namespace: env.TEMPORAL_NAMESPACE ?? 'default', tls, apiKey: env.TEMPORAL_API_KEY, source: 'env' };
  }
  const local = await readServers(stateDir);
  if (!local) {
    throw new NoServerError(
      `no Temporal server: none is running from ${stateDir}. Start local servers with "tempered up", or set TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TLS settings) for an existing cluster`,
    );
  }
  return { address: local.temporal.address, namespace: local.temporal.namespace, source: 'local' };
}

/** Options both `Connection.connect` (clients) and `NativeConnection.connect` (workers) accept. */
export interface SharedConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
}

/** Connection options for `Connection.connect` / `NativeConnection.connect`. */
export async function connectionOptions(settings: TemporalSettings): Promise<SharedConnectionOptions> {
  const read = (file?: string) => (file ? readFile(file) : Promise.resolve(undefined));
  let tls: SharedConnectionOptions['tls'];
  if (settings.tls === true) tls = true;
  else if (settings.tls) {
    const [ca, crt, key] = await Promise.all([read(settings.tls.caFile), read(settings.tls.certFile), read(settings.tls.keyFile)]);
    tls = {
      serverNameOverride: settings.tls.serverName,
      serverRootCACertificate: ca,
      clientCertPair: crt && key ? { crt, key } : undefined,
    };
  }
  return { address: settings.address, tls, apiKey: settings.apiKey };
}

/** How long a command waits for Temporal to answer before saying it is unreachable. */
const CONNECT_TIMEOUT_MS = 2_000;

/** Temporal did not answer at the configured address: names it and the fix. */
export class TemporalUnreachableError extends Error {
  override readonly name = 'TemporalUnreachableError';
  constructor(
    readonly address: string,
    readonly reason: string,
    fix: string,
  ) {
    super(`cannot reach Temporal at ${address} (no answer within ${CONNECT_TIMEOUT_MS / 1000} s: ${reason}). ${fix}`);
  }
}

/** A connected Temporal client; close it with `client.connection.close()`. Fails within ~2 s when Temporal does not answer. */
export async function connectClient(settings: TemporalSettings): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...(await connectionOptions(settings)), connectTimeout: CONNECT_TIMEOUT_MS });
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const fix =
      settings.source === 'local'
        ? 'The local server recorded by "tempered up" is not answering; run "tempered up" to restart it (its log is in the state directory\'s logs/temporal.log)'
        : 'Check TEMPORAL_ADDRESS (host:port of the frontend, 7233 by default), the network path to it, and the TLS/API-key settings (TEMPORAL_TLS*, TEMPORAL_API_KEY); unset TEMPORAL_ADDRESS to use the local servers of "tempered up"';
    throw new TemporalUnreachableError(settings.address, reason, fix);
  }
  return new Client({ connection, namespace: settings.namespace });
}

/** Settings the local store replaces in this process; a user's own values are named when replaced. */
const REPLACED_SETTINGS = ['TEMPERED_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'] as const;

/**
 * Store settings as environment for `createStore`: production sets `TEMPERED_STORE` (and S3
 * endpoint/credentials) itself; otherwise the local MinIO from the state directory is used, with
 * its own credentials (the S3 clients of stores, workers and compute threads read them from the
 * environment). When that replaces AWS or endpoint settings the user had set, `warn` gets one line
 * naming them (never their values). The local bucket is created on first write
 * (`TEMPERED_STORE_CREATE_BUCKET=1`); any other bucket must exist. Returns a credential-free description.
 */
export async function applyLocalStoreEnv(
  stateDir = defaultStateDir(),
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<string> {
  const env = process.env;
  if (env.TEMPERED_STORE) return env.TEMPERED_STORE;
  const local = await readServers(stateDir);
  if (!local) {
    throw new NoServerError(
      `no artifact store: TEMPERED_STORE is not set and no local MinIO runs from ${stateDir}. Run "tempered up", or set TEMPERED_STORE=s3://bucket/prefix (with TEMPERED_S3_ENDPOINT for non-AWS) or file:///path`,
    );
  }
  const replacing: Record<(typeof REPLACED_SETTINGS)[number], string | undefined> = {
    TEMPERED_S3_ENDPOINT: local.minio.endpoint,
    AWS_ACCESS_KEY_ID: local.minio.accessKeyId,
    AWS_SECRET_ACCESS_KEY: local.minio.secretAccessKey,
    AWS_SESSION_TOKEN: undefined, // a session token of the user's would be sent with MinIO's keys
  };
  const replaced = REPLACED_SETTINGS.filter((name) => env[name] && env[name] !== replacing[name]);
  if (replaced.length > 0) {
    warn(
      `note: TEMPERED_STORE is not set, so this command uses the local MinIO (${local.minio.endpoint}) with its own credentials; ` +
        `your ${replaced.join(', ')} ${replaced.length === 1 ? 'is' : 'are'} ignored here. Set TEMPERED_STORE=s3://bucket[/prefix] to use your own store`,
    );
  }
  env.TEMPERED_STORE = `s3://${local.minio.bucket}`;
  for (const name of REPLACED_SETTINGS) {
    if (replacing[name] === undefined) delete env[name];
    else env[name] = replacing[name];
  }
  env.AWS_REGION ??= 'us-east-1';
  env.TEMPERED_STORE_CREATE_BUCKET = '1';
  return `${env.TEMPERED_STORE} at ${local.minio.endpoint}`;
}
