// A command stage's declared outputs, found in its outputs directory after the program exits and
// uploaded to the store. A file output is one artifact named as declared; a directory output
// (`ckpt/`) is one artifact per file, named `ckpt/<relative path>`, so every file is sha256-verified
// like any other artifact and a downstream command stage gets the directory back (stage-inputs.ts).
//
// Nothing is followed out of the work directory: a declared output, a file or directory inside a
// declared directory, or the outputs directory itself that is a symbolic link is refused, naming
// where it points; files are opened without following links and checked to be the file that was
// listed. (The program has exited and its process group was killed, so nothing moves meanwhile.)
import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink, realpath } from 'node:fs/promises';
import * as path from 'node:path';
import type { ArtifactRef } from '../../workflows/types';
import type { ArtifactStore } from '../store';
import { isValidKey } from '../store/artifact-key';
import { EmptyOutputDirectoryError, OutputEscapesError, OutputNameError, OutputSymlinkError, OutputTypeError, TooManyOutputFilesError } from './errors';
import type { FileId } from './run-program';

/** Files a stage may output at most: each is a reference in workflow history (DESIGN invariant 1). */
export const MAX_OUTPUT_FILES = 1000;

/** A file found on disk: its artifact name (`model.json`, `ckpt/step-10/weights.bin`), absolute path and identity. */
export interface ListedFile {
  name: string;
  path: string;
  id: FileId;
}

/** A declared output as found on disk. */
export interface FoundOutput {
  /** As declared: `model.json` or `ckpt/`. */
  declared: string;
  files: ListedFile[];
}

/**
 * Finds every declared output in `outputsDir`, which must be `expectedDir` (the real path the stage
 * created). Returns the missing ones apart, so the caller can name them all at once. Refuses links,
 * entries that are neither files nor directories, a file declared as a directory or the reverse,
 * an empty directory, and more than MAX_OUTPUT_FILES files in all; every refusal is non-retryable.
 * `redact` is applied to file names found on disk before they reach an error or an artifact name.
 */
export async function findOutputs(
  outputsDir: string,
  expectedDir: string,
  declared: readonly string[],
  redact: (text: string) => string = (t) => t,
): Promise<{ found: FoundOutput[]; missing: string[] }> {
  await checkOutputsDir(outputsDir, expectedDir);
  const found: FoundOutput[] = [];
  const missing: string[] = [];
  let total = 0;
  for (const output of declared) {
    const wantsDir = output.endsWith('/');
    const name = wantsDir ? output.slice(0, -1) : output;
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
      throw new OutputNameError(output, 'must name one file or directory directly inside the outputs directory');
    }
    const file = path.join(outputsDir, name);
    if (path.dirname(file) !== outputsDir) throw new OutputEscapesError(output, file);
    const stats = await lstat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!stats) {
      missing.push(output);
      continue;
    }
    if (stats.isSymbolicLink()) throw new OutputSymlinkError(output, output, await linkTarget(file));
    if (stats.isDirectory() && !wantsDir) throw new OutputTypeError(output, 'a directory', `declare it as "${name}/" to upload the directory, or write a file there`);
    if (stats.isFile() && wantsDir) throw new OutputTypeError(output, 'a file', `declare it as "${name}" without the "/", or write a directory there`);
    if (!stats.isFile() && !stats.isDirectory()) throw new OutputTypeError(output, kindOf(stats), 'write a regular file or a directory there');

    const files: FoundOutput['files'] = [];
    if (stats.isFile()) files.push({ name, path: file, id: idOf(stats) });
    else await walk(file, name, output, files, redact, () => total + files.length);
    if (wantsDir && files.length === 0) throw new EmptyOutputDirectoryError(output);
    total += files.length;
    if (total > MAX_OUTPUT_FILES) throw new TooManyOutputFilesError(output, MAX_OUTPUT_FILES);
    found.push({ declared: output, files });
  }
  return { found, missing };
}

/** Every file under `dir`, depth first in name order; links and special files are refused. */
async function walk(
  dir: string,
  name: string,
  declared: string,
  files: FoundOutput['files'],
  redact: (text: string) => string,
  counted: () => number,
): Promise<void> {
  const entries = (await readdir(dir)).sort();
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const artifact = `${name}/${entry}`;
    const shown = redact(artifact);
    if (shown !== artifact) throw new OutputNameError(shown, 'has a secret value of the worker in its name; rename the file');
    if (!isValidKey(artifact)) throw new OutputNameError(artifact, 'cannot be a store key (a backslash, or too long)');
    const stats = await lstat(full);
    if (stats.isSymbolicLink()) throw new OutputSymlinkError(declared, artifact, await linkTarget(full));
    if (stats.isDirectory()) await walk(full, artifact, declared, files, redact, counted);
    else if (stats.isFile()) files.push({ name: artifact, path: full, id: idOf(stats) });
    else throw new OutputTypeError(artifact, kindOf(stats), `write only files and directories inside "${declared}"`);
    if (counted() + files.length > MAX_OUTPUT_FILES) throw new TooManyOutputFilesError(declared, MAX_OUTPUT_FILES);
  }
}

/** The outputs directory must still be the real directory the stage made, not a link elsewhere. */
async function checkOutputsDir(outputsDir: string, expectedDir: string): Promise<void> {
  const stats = await lstat(outputsDir).catch(() => undefined);
  if (!stats) throw new OutputEscapesError('(the outputs directory)', outputsDir, 'the program removed it');
  if (stats.isSymbolicLink()) throw new OutputSymlinkError('(the outputs directory)', '$TEMPERED_OUTPUTS', await linkTarget(outputsDir));
  const real = await realpath(outputsDir);
  if (real !== expectedDir) throw new OutputEscapesError('(the outputs directory)', real);
}

/**
 * Uploads one output file: opened without following a link (O_NOFOLLOW) and without blocking on a
 * FIFO, and checked to be the very file `findOutputs` listed, so a link swapped into its path since
 * is refused rather than followed.
 */
export async function uploadOutputFile(store: ArtifactStore, key: string, file: ListedFile, mediaType: string): Promise<ArtifactRef> {
  const handle = await openListedFile(file.path, file.id, file.name);
  return store.put(key, handle.createReadStream(), mediaType);
}

/** Opens `file` for reading if it is still the regular file with identity `id` (else throws, naming `name`). */
export async function openListedFile(file: string, id: FileId, name: string) {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new OutputSymlinkError(name, name, await linkTarget(file));
    throw err;
  }
  const stats = await handle.stat();
  if (!stats.isFile() || stats.dev !== id.dev || stats.ino !== id.ino) {
    await handle.close();
    throw new OutputEscapesError(name, file, 'it was replaced after the program exited');
  }
  return handle;
}

function idOf(stats: Stats): FileId {
  return { dev: stats.dev, ino: stats.ino };
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'a named pipe';
  if (stats.isSocket()) return 'a socket';
  if (stats.isBlockDevice() || stats.isCharacterDevice()) return 'a device';
  return 'not a regular file';
}

async function linkTarget(file: string): Promise<string> {
  return readlink(file).catch(() => '(unreadable)');
}
