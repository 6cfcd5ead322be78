// The artifact store's public surface. Activities receive an ArtifactStore through their factory;
// `createStore()` is for entry points (worker, CLI, tests).
import type { ArtifactStore } from './artifact-store';
import { type StoreConfig, storeConfigFromEnv } from './config';
import { FileArtifactStore } from './file-store';
import { S3ArtifactStore, type S3StoreOptions } from './s3-store';

/**
 * Creates the store `config` describes; default: from the environment (`storeConfigFromEnv`).
 * `s3` tunes multipart transfers (defaults: 8 MiB parts, 3 in flight). An S3 bucket is created
 * on the first write if missing.
 */
export function createStore(
  config: StoreConfig = storeConfigFromEnv(),
  s3?: Pick<S3StoreOptions, 'partSize' | 'queueSize' | 'client'>,
): ArtifactStore {
  if (config.kind === 'file') return new FileArtifactStore(config.dir);
  return new S3ArtifactStore({ ...config, ...s3 });
}

export { isValidKey, validateKey, validatePrefix } from './artifact-key';
export type { ArtifactBody, ArtifactStore, KeyedRead } from './artifact-store';
export { describeStore, storeConfigFromEnv } from './config';
export type { FileStoreConfig, S3StoreConfig, StoreConfig } from './config';
export { sha256Hex } from './digest-stream';
export * from './errors';
export { FileArtifactStore } from './file-store';
export { readJsonl, writeJsonl } from './jsonl';
export { S3ArtifactStore } from './s3-store';
export type { S3StoreOptions } from './s3-store';
export { commitManifest, manifestKey, readCommittedManifest } from './stage-output';
