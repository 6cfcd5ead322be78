import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { CollectOptions } from '../../pipelines/stage-types';
import type { S3SourceReader } from './s3-source';
import { describeSource, listSource, type FileIdentity, type SourceFile } from './source-files';

// The fingerprint of a listing (source-fingerprint.ts says why collect needs one): what a
// listing tells of each file — paths, sizes, times, ETags — hashed without reading the data.
// Kept apart from the stage hook so that the thread it runs in loads only this and the resolver.

/**
 * A file whose mtime or ctime is this recent may be written again within the same filesystem
 * timestamp tick (coarse clocks tick every 1–10 ms; some filesystems keep whole seconds), leaving
 * size and times as they were — "racy", as git calls it. The fingerprint waits (at most this
 * long) until such files are older than this, and stats them again: from then on every write
 * shows. A file still racy after the wait (written again meanwhile, or with a time in the future)
 * is fingerprinted by its content too.
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
  /** Waits before racy files are stated again. Default: a timer. */
  sleep?(ms: number): Promise<void>;
}

/** Files to fingerprint, under a header line (where they were listed from). */
export interface FileGroup {
  header: string;
  files: ReadonlyArray<Pick<SourceFile, 'name' | 'identity'>>;
}

/** When fingerprintListing's clock reads and how it waits; tests pass their own. */
export interface FingerprintClock {
  /** Default Date.now. */
  now?(): number;
  /** Default: a timer. */
  sleep?(ms: number): Promise<void>;
}

/**
 * sha256 over every source in order, of where it resolved (absolute paths against baseDir; an npm
 * package's name, version and directory; an S3 endpoint) and of each file it would read: for a
 * local or npm file its name, real path, size, mtime and ctime (in ns); for an S3 object its key,
 * ETag, size and LastModified. Adding, removing, renaming, retargeting a link to, or writing any
 * file changes it; an unchanged listing gives the same one. Nothing is read but racy files.
 */
export async function fingerprintSources(options: CollectOptions, ctx: SourceFingerprintContext): Promise<string> {
  // The AWS SDK takes ~0.3 s to load: only for S3 sources.
  let s3 = ctx.s3;
  const allowEmpty = options.incremental !== undefined;
  const groups: FileGroup[] = [];
  for (const [index, source] of options.sources.entries()) {
    const { origin, files } = await listSource(source, { baseDir: ctx.baseDir, s3: () => (s3 ??= (require('./s3-source') as typeof import('./s3-source')).createS3SourceReader()), allowEmpty });
    groups.push({ header: `source ${index} ${JSON.stringify(describeSource(source))} ${origin}`, files });
  }
  const title = `tempered collect sources v1${ctx.continualState === undefined ? '' : `\ncontinual ${ctx.continualState}`}`;
  return fingerprintListing(title, groups, ctx);
}

/**
 * sha256 of `title`, then each group's header and a line per file: its name and identity (size and
 * times, or ETag), plus its content's sha256 for a local file still racy after waiting the racy
 * window out once (see RACY_WINDOW_MS).
 */
export async function fingerprintListing(title: string, groups: readonly FileGroup[], clock: FingerprintClock = {}): Promise<string> {
  const now = clock.now ?? Date.now;
  const listed = await Promise.all(
    groups.map(async ({ files }) => {
      const identities = await inBatches(files, (file) => file.identity());
      return files.map((file, i) => ({ file, identity: identities[i] }));
    }),
  );
  const racy = () => listed.flat().filter(({ identity }) => isRacy(identity, now()));
  const waitFor = racy();
  if (waitFor.length > 0) {
    const newest = Math.max(...waitFor.map(({ identity }) => newestMs(identity)));
    const wait = Math.min(RACY_WINDOW_MS, newest + RACY_WINDOW_MS + 1 - now());
    await (clock.sleep ?? ((ms) => new Promise<void>((resolve) => setTimeout(resolve, ms))))(Math.max(0, wait));
    const again = await inBatches(waitFor, ({ file }) => file.identity());
    waitFor.forEach((entry, i) => (entry.identity = again[i]));
  }
  const contentOf = new Map(await Promise.all(racy().map(async (entry) => [entry, await fileSha256((entry.identity as { path: string }).path)] as const)));

  const hash = createHash('sha256').update(`${title}\n`);
  listed.forEach((entries, index) => {
    hash.update(`${groups[index].header}\n`);
    for (const entry of entries) {
      const content = contentOf.get(entry);
      hash.update(`${JSON.stringify(entry.file.name)} ${describeIdentity(entry.identity)}${content ? ` sha256=${content}` : ''}\n`);
    }
  });
  return hash.digest('hex');
}

/** One file's version, as its fingerprint line says it (exported for tests). */
export function describeIdentity(identity: FileIdentity): string {
  if (identity.kind === 'object') {
    const { uri, etag, size, lastModified } = identity;
    // A listing without ETag or LastModified cannot tell one version of an object from the next:
    // never reuse what was computed from it.
    if (etag === undefined && lastModified === undefined) return `${uri} unversioned ${randomUUID()}`;
    return `${uri} etag=${etag ?? '-'} size=${size ?? '-'} lastModified=${lastModified ?? '-'}`;
  }
  const { path, size, mtimeNs, ctimeNs } = identity;
  return `${JSON.stringify(path)} size=${size} mtimeNs=${mtimeNs} ctimeNs=${ctimeNs}`;
}

const newestMs = (identity: FileIdentity): number =>
  identity.kind === 'file' ? Number((identity.mtimeNs > identity.ctimeNs ? identity.mtimeNs : identity.ctimeNs) / 1_000_000n) : -Infinity;

/** Whether a write now could leave the file's size and times as listed (S3 objects have ETags: never). */
export function isRacy(identity: FileIdentity, nowMs: number): boolean {
  return identity.kind === 'file' && newestMs(identity) >= nowMs - RACY_WINDOW_MS;
}

async function inBatches<T, R>(items: readonly T[], map: (item: T) => Promise<R>, concurrency = 64): Promise<R[]> {
  const out: R[] = [];
  for (let start = 0; start < items.length; start += concurrency) out.push(...(await Promise.all(items.slice(start, start + concurrency).map(map))));
  return out;
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

