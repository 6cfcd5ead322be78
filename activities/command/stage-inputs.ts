// Staging a command stage's inputs: every upstream output downloaded to
// `inputs/<stage>/<file>`, verified against its sha256 while it streams, and described in
// `inputs/manifest.json` so the program can find them without knowing store keys. The files of an
// upstream command stage's directory output (artifacts named `ckpt/<relative path>`, see
// outputs.ts) are staged as that directory again: `inputs/<stage>/ckpt/<relative path>`.
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ArtifactRef, StageResult } from '../../workflows/types';
import type { ArtifactStore } from '../store';

/** One staged input, as `inputs/manifest.json` lists it. */
export interface StagedInput {
  /** Upstream stage name. */
  stage: string;
  /** Its output name (`train`, `records`, `model.json`, `ckpt/step-10/weights.bin`). */
  output: string;
  /** For a file of a directory output: the staged directory (`<inputs>/<stage>/ckpt`). */
  directory?: string;
  /** Absolute path of the downloaded file. */
  path: string;
  sha256: string;
  bytes: number;
  mediaType: string;
  /** Where it came from in the store. */
  uri: string;
}

/** The content of `inputs/manifest.json`. */
export interface InputManifest {
  apiVersion: 'tempered.dev/v1';
  inputs: StagedInput[];
}

export const INPUT_MANIFEST = 'manifest.json';

/** File extensions for media types whose store key may not carry one. */
const EXTENSION_BY_MEDIA_TYPE: Record<string, string> = {
  'application/jsonl': '.jsonl',
  'application/x-ndjson': '.jsonl',
  'application/json': '.json',
  'text/plain': '.txt',
  'text/csv': '.csv',
  'application/gzip': '.gz',
  'application/x-tar': '.tar',
  'application/zip': '.zip',
};

/**
 * The file name an output is staged under: the output name made safe for a path, with the extension
 * of its store key (`train` at `.../train.jsonl` -> `train.jsonl`) or, failing that, of its media
 * type. A name that already has an extension (`model.json`) is kept as it is.
 */
export function inputFileName(output: string, ref: Pick<ArtifactRef, 'mediaType'>, key: string): string {
  let name = output.replace(/[^A-Za-z0-9._-]/g, '_');
  if (name === '' || /^\.+$/.test(name)) name = 'output';
  if (path.extname(name) !== '') return name;
  return name + (path.posix.extname(path.posix.basename(key)) || EXTENSION_BY_MEDIA_TYPE[ref.mediaType] || '');
}

/**
 * Downloads every output of every upstream stage into `dir` and writes `dir/manifest.json`.
 * Reads verify sha256 (a mismatch fails with the store's non-retryable IntegrityError); `signal`
 * stops a download midway.
 */
export async function stageInputs(
  store: ArtifactStore,
  upstream: Record<string, StageResult>,
  dir: string,
  options: { signal?: AbortSignal; onFile?: (done: number, total: number) => void } = {},
): Promise<StagedInput[]> {
  const planned = Object.entries(upstream).flatMap(([stage, result]) => Object.entries(result.outputs).map(([output, ref]) => ({ stage, output, ref })));
  const staged: StagedInput[] = [];
  const taken = new Set<string>();
  for (const { stage, output, ref } of planned) {
    const stageDir = path.join(dir, stage);
    const inDirectory = directoryFile(output);
    const file = inDirectory
      ? path.join(stageDir, ...inDirectory.segments)
      : uniquePath(path.join(stageDir, inputFileName(output, ref, store.keyFromUri(ref.uri))), taken);
    if (inDirectory && taken.has(file)) throw new Error(`two inputs of stage "${stage}" would be staged at ${JSON.stringify(file)}`);
    taken.add(file);
    await mkdir(path.dirname(file), { recursive: true });
    // `wx`: a new file, never through a link already there.
    await pipeline(store.openRead(ref), createWriteStream(file, { flags: 'wx' }), { signal: options.signal });
    const directory = inDirectory ? { directory: path.join(stageDir, inDirectory.segments[0]) } : {};
    staged.push({ stage, output, ...directory, path: file, sha256: ref.sha256, bytes: ref.bytes, mediaType: ref.mediaType, uri: ref.uri });
    options.onFile?.(staged.length, planned.length);
  }
  const manifest: InputManifest = { apiVersion: 'tempered.dev/v1', inputs: staged };
  await writeFile(path.join(dir, INPUT_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return staged;
}

/**
 * For an output named like a file of a directory output (`ckpt/step-10/weights.bin`), its path
 * segments; undefined for a plain output name. A name with an empty, `.` or `..` segment is staged
 * as a plain file (made safe by inputFileName), so it can never leave the stage's directory.
 */
export function directoryFile(output: string): { segments: string[] } | undefined {
  if (!output.includes('/')) return undefined;
  const segments = output.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0'))) return undefined;
  return { segments };
}

/** `file`, or `file` with `-2`, `-3`... before its extension if an earlier output took that path. */
function uniquePath(file: string, taken: Set<string>): string {
  const ext = path.extname(file);
  let candidate = file;
  for (let i = 2; taken.has(candidate); i++) candidate = `${file.slice(0, file.length - ext.length)}-${i}${ext}`;
  taken.add(candidate);
  return candidate;
}
