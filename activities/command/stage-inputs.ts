// Staging a command stage's inputs: every upstream output downloaded to
// `inputs/<stage>/<file>`, verified against its sha256 while it streams, and described in
// `inputs/manifest.json` so the program can find them without knowing store keys.
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
  /** Its output name (`train`, `records`, `model.json`). */
  output: string;
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
    await mkdir(stageDir, { recursive: true });
    const file = uniquePath(path.join(stageDir, inputFileName(output, ref, store.keyFromUri(ref.uri))), taken);
    await pipeline(store.openRead(ref), createWriteStream(file), { signal: options.signal });
    staged.push({ stage, output, path: file, sha256: ref.sha256, bytes: ref.bytes, mediaType: ref.mediaType, uri: ref.uri });
    options.onFile?.(staged.length, planned.length);
  }
  const manifest: InputManifest = { apiVersion: 'tempered.dev/v1', inputs: staged };
  await writeFile(path.join(dir, INPUT_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return staged;
}

/** `file`, or `file` with `-2`, `-3`... before its extension if an earlier output took that path. */
function uniquePath(file: string, taken: Set<string>): string {
  const ext = path.extname(file);
  let candidate = file;
  for (let i = 2; taken.has(candidate); i++) candidate = `${file.slice(0, file.length - ext.length)}-${i}${ext}`;
  taken.add(candidate);
  return candidate;
}
