import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { CollectOptions } from '../../pipelines/stage-types';
import type { StageInput } from '../../workflows/types';
import { readContinualState } from '../continual/state';
import type { ArtifactStore } from '../store';
import { createS3SourceReader, type S3SourceReader } from './s3-source';
import { describeSource, listSource, type FileIdentity } from './source-files';

// A collect reads outside the store, so its config and (absent) input digests cannot tell whether
// its data changed. Its cache key also takes this fingerprint of what its sources resolve to now
// (ARCHITECTURE.md, invariant 4), taken from a listing — paths, sizes, times, ETags — without
// reading the data, through the resolver collect itself reads with (source-files.ts).

/**
 * A file whose mtime is this recent may still be written within the same filesystem timestamp
 * tick (coarse clocks tick every 1–10 ms; some filesystems keep seconds), so a later write could
 * leave size and times as they were. Such "racy" files, as git calls them, are fingerprinted by
 * their content too. A file written in the window therefore misses once more, after it settles.
 */
export const RACY_WINDOW_MS = 2000;

/** What fingerprintSources needs besides the options. */
export interface SourceFingerprintContext {
  /** Directory that relative globs resolve against: the spec file's directory. */
  baseDir: string;
  /** S3 access for `s3:` sources. Default: createS3SourceReader() on first use. */
  s3?: S3SourceReader;
  /**
   * Only for an incremental collect: what its output also depends on — the previous cycle's
   * watermark (its sha256, or none) and the number of completed cycles.
   */
  continualState?: string;
  /** The clock, for telling racy files. Default Date.now. */
  now?(): number;
}

/**
 * sha256 over every source in order, of where it resolved (absolute paths against baseDir; an npm
 * package's name, version and directory; an S3 endpoint) and of each file it would read: for a
 * local or npm file its name, real path, size, mtime and ctime (in ns), plus its content's sha256
 * while racy; for an S3 object its key, ETag, size and LastModified. Adding, removing, renaming,
 * retargeting a link to, or writing any file changes it; an unchanged listing gives the same one.
 */
export async function fingerprintSources(options: CollectOptions, ctx: SourceFingerprintContext): Promise<string> {
  const hash = createHash('sha256').update('tempered collect sources v1\n');
  const now = ctx.now ?? Date.now;
  let s3 = ctx.s3;
  const allowEmpty = options.incremental !== undefined;
  if (ctx.continualState !== undefined) hash.update(`continual ${ctx.continualState}\n`);
  for (const [index, source] of options.sources.entries()) {
    const listed = await listSource(source, { baseDir: ctx.baseDir, s3: () => (s3 ??= createS3SourceReader()), allowEmpty });
    hash.update(`source ${index} ${JSON.stringify(describeSource(source))} ${listed.origin}\n`);
    const concurrency = 64;
    for (let start = 0; start < listed.files.length; start += concurrency) {
      const batch = listed.files.slice(start, start + concurrency);
      const lines = await Promise.all(batch.map(async (file) => `${JSON.stringify(file.name)} ${await describeIdentity(await file.identity(), now())}\n`));
      for (const line of lines) hash.update(line);
    }
  }
  return hash.digest('hex');
}

/** One file's line in the fingerprint (exported for tests). */
export async function describeIdentity(identity: FileIdentity, nowMs: number): Promise<string> {
  if (identity.kind === 'object') {
    const { uri, etag, size, lastModified } = identity;
    // A listing without ETag or LastModified cannot tell one version of an object from the next:
    // never reuse what was computed from it.
    if (etag === undefined && lastModified === undefined) return `${uri} unversioned ${randomUUID()}`;
    return `${uri} etag=${etag ?? '-'} size=${size ?? '-'} lastModified=${lastModified ?? '-'}`;
  }
  const { path, size, mtimeNs, ctimeNs } = identity;
  const described = `${JSON.stringify(path)} size=${size} mtimeNs=${mtimeNs} ctimeNs=${ctimeNs}`;
  const newestMs = Number((mtimeNs > ctimeNs ? mtimeNs : ctimeNs) / 1_000_000n);
  return newestMs > nowMs - RACY_WINDOW_MS ? `${described} sha256=${await fileSha256(path)}` : described;
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The `sourceFingerprint` hook of the collect stage (activities/index.ts). An incremental collect's
 * output also depends on the previous cycle's watermark, so its fingerprint names that too: the
 * plan never caches one, and should a plan do so anyway, no cycle is served another's result.
 */
export function collectSourceFingerprint(store: ArtifactStore): (input: StageInput) => Promise<string> {
  return async (input) => {
    const options = input.config as CollectOptions;
    let continualState: string | undefined;
    if (options.incremental) {
      const state = await readContinualState(store, input.pipeline);
      continualState = `watermark=${state.watermark?.sha256 ?? 'none'} cycles=${state.cycles.length}`;
    }
    return fingerprintSources(options, { baseDir: input.baseDir, continualState });
  };
}
