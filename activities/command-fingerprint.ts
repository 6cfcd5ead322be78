import type { CommandOptions } from '../pipelines/stage-types';
import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { optionsOf } from './stage-options';
import type { StageInput } from '../workflows/types';
import { fingerprintListing, type FingerprintClock, type FileGroup } from './data/listing-fingerprint';
import type { FileIdentity } from './data/source-files';

// A `command` stage is cached only when its spec says `cache: true`. Its program and scripts
// live outside the store (`python train.py`: the interpreter on PATH, train.py beside the spec),
// so an edited script would be served its old result. This fingerprint — for the stage's
// `sourceFingerprint` hook — covers the program the worker would start and every file its command
// line names (resolved against the stage's cwd), by real path, size, mtime and ctime. What the
// program reads without naming it on the command line (modules it imports, files it opens) is
// not covered: `cache: true` asserts that those do not change.

/** A file's identity, or undefined when `file` is not a regular file. */
async function fileIdentity(file: string): Promise<Extract<FileIdentity, { kind: 'file' }> | undefined> {
  try {
    const real = await realpath(file);
    const stats = await stat(real, { bigint: true });
    return stats.isFile() ? { kind: 'file', path: real, size: stats.size, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs } : undefined;
  } catch {
    return undefined;
  }
}

/** Where the worker finds `program`: relative to cwd when it has a slash, else on PATH (first executable file). */
async function resolveProgram(program: string, cwd: string, envPath: string): Promise<string | undefined> {
  if (program.includes('/')) return path.resolve(cwd, program);
  for (const dir of envPath.split(path.delimiter).filter((d) => d !== '')) {
    const candidate = path.resolve(cwd, dir, program);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Arguments that may name files: the argument itself and, for `--flag=value`, the value. `{inputs}`/`{outputs}` expand to staged directories: skipped. */
function candidatePaths(args: readonly string[]): string[] {
  const out = new Set<string>();
  for (const arg of args) {
    if (arg === '' || arg.includes('{inputs}') || arg.includes('{outputs}')) continue;
    out.add(arg);
    const eq = arg.indexOf('=');
    if (eq > 0 && eq < arg.length - 1) out.add(arg.slice(eq + 1));
  }
  return [...out];
}

/** The fingerprint of a command stage's program and of the files its command line names. */
export async function fingerprintCommand(config: CommandOptions, baseDir: string, envPath = process.env.PATH ?? '', clock: FingerprintClock = {}): Promise<string> {
  const cwd = path.resolve(baseDir, config.cwd ?? '.');
  const [program, ...args] = config.command;
  const resolved = await resolveProgram(program, cwd, envPath);
  const entries = await Promise.all(
    [...(resolved ? [{ name: `program ${program}`, file: resolved }] : []), ...candidatePaths(args).map((arg) => ({ name: `argument ${arg}`, file: path.resolve(cwd, arg) }))].map(
      async ({ name, file }) => ({ name, identity: await fileIdentity(file) }),
    ),
  );
  const files = entries.filter((e): e is { name: string; identity: Extract<FileIdentity, { kind: 'file' }> } => e.identity !== undefined);
  const group: FileGroup = {
    header: `cwd ${JSON.stringify(cwd)} program ${JSON.stringify(program)} -> ${resolved ? JSON.stringify(resolved) : 'not found'}`,
    // Stated again after a racy wait: a fresh stat each time.
    files: files.map(({ name, identity }) => ({ name, identity: async () => (await fileIdentity(identity.path)) ?? identity })),
  };
  return fingerprintListing('tempered command files v1', [group], clock);
}

/** The `sourceFingerprint` hook of the command stage: `defineStage(store, …, { sourceFingerprint: commandSourceFingerprint })`. */
export function commandSourceFingerprint(input: StageInput): Promise<string> {
  return fingerprintCommand(optionsOf(input, 'command'), input.baseDir);
}
