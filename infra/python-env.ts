import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

// The torch engine's Python environment (DESIGN, "Training engines"): a venv built from
// python/requirements.lock — every package pinned with its sha256 — once per machine and lock.
// Its folder is named by the lock's hash, so a changed lock gets a new env and an unchanged one is
// reused; a marker written last says the env is complete (a killed build leaves no marker and is
// rebuilt); a lock file beside it lets one process build while the others wait. GPU nodes install
// the same lock: torch from the registry carries its CUDA libraries (python/README.md says why).

/** The folder holding package.json, wherever Tempered is installed (source or dist/). */
const PACKAGE_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

/** Tempered's Python sources: the `tempered_torch` package (put on PYTHONPATH, not installed) and the lock. */
export const PYTHON_DIR = path.join(PACKAGE_ROOT, 'python');

/** The pinned, hashed requirements the env is built from (`python/lock.sh` regenerates it). */
export const LOCK_FILE = path.join(PYTHON_DIR, 'requirements.lock');

/** Name of the file, written last, that marks a complete env. */
export const MARKER_FILE = 'tempered-env.json';

/** Oldest Python the lock was resolved for. */
const MIN_PYTHON: readonly [number, number] = [3, 11];

/** A lock not touched for this long is from a process that died on another host (same host: its pid is checked). */
const STALE_LOCK_MS = 60_000;

/** Where the envs live: `TEMPERED_PYTHON_ENV_DIR`, else `$XDG_CACHE_HOME/tempered/python`, else `~/.cache/tempered/python`. Each env is `<dir>/<first 16 hex of the lock's sha256>/`. */
export function pythonEnvRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPERED_PYTHON_ENV_DIR) return path.resolve(env.TEMPERED_PYTHON_ENV_DIR);
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tempered', 'python');
}

/** The lock's identity: its full sha256 (kept in the marker) and the 16-hex-digit key naming the env folder. */
export function lockKey(lockText: string | Buffer): { sha256: string; key: string } {
  const sha256 = createHash('sha256').update(lockText).digest('hex');
  return { sha256, key: sha256.slice(0, 16) };
}

/** The interpreter inside a venv. */
export function venvPython(envDir: string, platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? path.join(envDir, 'Scripts', 'python.exe') : path.join(envDir, 'bin', 'python');
}

/** What the marker of a complete env records. */
export interface EnvMarker {
  /** sha256 of the lock the env was installed from. */
  lockSha256: string;
  /** Version of the interpreter the venv was made with, e.g. "3.11.7". */
  pythonVersion: string;
  /** ISO time the install finished. */
  createdAt: string;
  /** Seconds the venv and install took. */
  installSeconds: number;
}

/** Reads `envDir`'s marker; undefined unless it exists, parses and names `lockSha256`. */
export async function readMarker(envDir: string, lockSha256: string): Promise<EnvMarker | undefined> {
  try {
    const marker = JSON.parse(await readFile(path.join(envDir, MARKER_FILE), 'utf8')) as Partial<EnvMarker>;
    return marker.lockSha256 === lockSha256 ? (marker as EnvMarker) : undefined;
  } catch {
    return undefined;
  }
}

export interface PythonEnvOptions {
  /** Requirements to install, with hashes. Default: python/requirements.lock. */
  lockFile?: string;
  /** Folder holding the envs. Default: {@link pythonEnvRoot}. */
  root?: string;
  /** Interpreter the venv is made from. Default: `TEMPERED_PYTHON`, else `python3`, else `python`. */
  python?: string;
  /** Progress lines. Default: stderr. */
  log?: (line: string) => void;
  /** Seconds between "still installing" lines while pip is quiet. Default 30. */
  progressEverySeconds?: number;
}

/** A ready env. */
export interface PythonEnv {
  /** The venv's interpreter. */
  python: string;
  /** The venv's folder. */
  dir: string;
  /** sha256 of the lock it was built from. */
  lockSha256: string;
  /** The interpreter's version, e.g. "3.11.7". */
  pythonVersion: string;
  /** True when this call built it, false when an existing env was reused. */
  created: boolean;
  /** Seconds this call spent building (0 when reused). */
  installSeconds: number;
}

/** No usable Python 3 on this machine. A retry on the same worker cannot fix it. */
export class PythonNotFoundError extends Error {
  override readonly name = 'PythonNotFoundError';
  readonly nonRetryable = true;
  constructor(
    readonly tried: readonly string[],
    problem: string,
  ) {
    super(
      `the torch engine needs Python >= ${MIN_PYTHON.join('.')} with its venv module, and ${problem} (tried ${tried.map((t) => JSON.stringify(t)).join(', ')}). ` +
        `Install it (e.g. apt-get install python3 python3-venv), or point TEMPERED_PYTHON at one, then run "tempered setup python"`,
    );
  }
}

/**
 * pip (or venv creation) failed. Retryable by default — a registry outage, a dropped download, a
 * full disk pass — except when the registry has no wheel for this platform or Python.
 */
export class PythonEnvInstallError extends Error {
  override readonly name = 'PythonEnvInstallError';
  constructor(
    readonly step: string,
    readonly outputTail: string,
    readonly nonRetryable: boolean,
    hint: string,
  ) {
    super(`${step} failed${hint ? ` (${hint})` : ''}; its last output:\n${outputTail}`);
  }
}

/**
 * Returns a ready env for the lock, building it first when this machine has none: a venv from
 * Python >= 3.11, then `pip install --require-hashes --no-deps --only-binary :all:` of the lock,
 * then an import of torch, transformers and peft, then the marker. Safe to call from several
 * processes at once: one builds, the others wait for it and reuse its env.
 */
export async function ensurePythonEnv(options: PythonEnvOptions = {}): Promise<PythonEnv> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const lockFile = options.lockFile ?? LOCK_FILE;
  const { sha256, key } = lockKey(await readFile(lockFile));
  const root = options.root ?? pythonEnvRoot();
  const dir = path.join(root, key);
  const ready = (marker: EnvMarker, created: boolean): PythonEnv => ({
    python: venvPython(dir),
    dir,
    lockSha256: sha256,
    pythonVersion: marker.pythonVersion,
    created,
    installSeconds: created ? marker.installSeconds : 0,
  });

  // A marked env whose interpreter is gone (the Python it was made from was uninstalled) is rebuilt.
  const usable = async () => {
    const marker = await readMarker(dir, sha256);
    return marker && (await stat(venvPython(dir)).then(() => true, () => false)) ? marker : undefined;
  };
  const existing = await usable();
  if (existing) return ready(existing, false);

  await mkdir(root, { recursive: true });
  const release = await acquireLock(path.join(root, `${key}.lock`), log);
  try {
    // Another process may have finished the env while this one waited for the lock.
    const built = await usable();
    if (built) return ready(built, false);
    return ready(await buildEnv(dir, lockFile, sha256, options, log), true);
  } finally {
    await release();
  }
}

async function buildEnv(dir: string, lockFile: string, lockSha256: string, options: PythonEnvOptions, log: (line: string) => void): Promise<EnvMarker> {
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)} s`;
  const base = await findPython(options.python);
  // No marker: whatever is here is a build that died part-way.
  await rm(dir, { recursive: true, force: true });
  log(`python env: creating ${dir} from ${base.command} (Python ${base.version}; once per machine and lock)`);
  await runStep('python -m venv', base.command, ['-m', 'venv', dir], { onLine: () => {} });
  const python = venvPython(dir);
  const lockLines = (await readFile(lockFile, 'utf8')).split('\n');
  const packages = lockLines.filter((line) => /^[A-Za-z0-9]/.test(line)).length;
  log(`python env: installing ${lockFile} (${packages} pins; torch with its CUDA libraries: ~3 GB to download, ~5.5 GB on disk; a few minutes)`);
  let downloaded = 0;
  await runStep(
    'pip install',
    python,
    ['-m', 'pip', 'install', '--require-hashes', '--no-deps', '--only-binary', ':all:', '--progress-bar', 'off', '--disable-pip-version-check', '--no-input', '-r', lockFile],
    {
      onLine: (line) => {
        // Every wheel counts; only the large ones (10 MB and up) get a line of their own.
        const fetched = /^\s*(Downloading|Using cached) (\S+)(?: \((([\d.]+) (\w+))\))?/.exec(line);
        if (fetched) {
          downloaded++;
          if (fetched[5] === 'GB' || (fetched[5] === 'MB' && Number(fetched[4]) >= 10)) log(`python env: [${elapsed()}] ${fetched[1] === 'Downloading' ? 'downloading' : 'cached'} wheel ${downloaded}: ${fetched[2]} (${fetched[3]})`);
        } else if (line.startsWith('Installing collected packages')) {
          log(`python env: [${elapsed()}] unpacking ${downloaded} wheels...`);
        }
      },
      onQuiet: () => log(`python env: [${elapsed()}] still installing...`),
      progressEverySeconds: options.progressEverySeconds ?? 30,
    },
  );
  log(`python env: [${elapsed()}] checking that torch, transformers and peft import...`);
  await runStep('import check', python, ['-c', 'import torch, transformers, peft'], { onLine: () => {} });
  const marker: EnvMarker = {
    lockSha256,
    pythonVersion: base.version,
    createdAt: new Date().toISOString(),
    installSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
  const markerPath = path.join(dir, MARKER_FILE);
  await writeFile(`${markerPath}.tmp`, `${JSON.stringify(marker, null, 2)}\n`);
  await rename(`${markerPath}.tmp`, markerPath);
  log(`python env: ready in ${elapsed()}: ${python}`);
  return marker;
}

/** The first interpreter that runs, is new enough and has venv. */
async function findPython(given: string | undefined): Promise<{ command: string; version: string }> {
  const candidates = given ? [given] : process.env.TEMPERED_PYTHON ? [process.env.TEMPERED_PYTHON] : ['python3', 'python'];
  const problems: string[] = [];
  for (const command of candidates) {
    const probe = await capture(command, ['-c', 'import sys, venv, ensurepip; print("%d.%d.%d" % sys.version_info[:3])']);
    if (probe.missing) {
      problems.push(`${command}: not found`);
      continue;
    }
    const version = probe.output.trim().split('\n').pop() ?? '';
    if (probe.code !== 0 || !/^\d+\.\d+\.\d+$/.test(version)) {
      problems.push(`${command}: ${/No module named '?(venv|ensurepip)/.test(probe.output) ? 'has no venv/ensurepip module' : `did not run (${lastLines(probe.output, 1) || `exit ${probe.code}`})`}`);
      continue;
    }
    const [major, minor] = version.split('.').map(Number);
    if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
      problems.push(`${command}: is ${version}`);
      continue;
    }
    return { command, version };
  }
  throw new PythonNotFoundError(candidates, `none was usable: ${problems.join('; ')}`);
}

/** Patterns of pip output that no retry can fix: the registry has no file of a pinned package for this platform. */
const NO_WHEEL = /Could not find a version that satisfies the requirement|No matching distribution found/;
/** Network trouble looks like "no version" too, after pip's own retries. */
const NETWORK = /NewConnectionError|ConnectTimeout|ReadTimeout|Temporary failure in name resolution|Max retries exceeded|ProxyError|SSLError|Connection reset/;

interface StepOptions {
  /** Each line of the command's output. */
  onLine: (line: string) => void;
  /** Called when the command has printed nothing for `progressEverySeconds`. */
  onQuiet?: () => void;
  progressEverySeconds?: number;
}

async function runStep(step: string, command: string, args: string[], options: StepOptions): Promise<void> {
  const result = await capture(command, args, options);
  if (result.code === 0) return;
  const tail = lastLines(result.output, 25);
  const noWheel = NO_WHEEL.test(result.output) && !NETWORK.test(result.output);
  const hint = result.missing
    ? `${command} was not found`
    : noWheel
      ? `a pinned package has no wheel for this platform (${process.platform}/${process.arch}); the lock supports Linux, macOS and Windows on Python >= ${MIN_PYTHON.join('.')}`
      : /No space left on device/.test(result.output)
        ? `the disk holding ${pythonEnvRoot()} is full; free ~6 GB or set TEMPERED_PYTHON_ENV_DIR`
        : `exit ${result.code}`;
  throw new PythonEnvInstallError(step, tail, noWheel, hint);
}

interface Captured {
  code: number;
  output: string;
  missing: boolean;
}

/** Runs a command, keeping its combined output (the last 64 kB) and passing each line to `onLine`. */
function capture(command: string, args: string[], options: Partial<StepOptions> = {}): Promise<Captured> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let output = '';
    let partial = '';
    let lastOutputAt = Date.now();
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-65_536);
      lastOutputAt = Date.now();
      const lines = (partial + text).split(/\r?\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) options.onLine?.(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const everyMs = (options.progressEverySeconds ?? 30) * 1000;
    const onQuiet = options.onQuiet;
    const timer = onQuiet
      ? setInterval(() => {
          if (Date.now() - lastOutputAt >= everyMs) {
            lastOutputAt = Date.now();
            onQuiet();
          }
        }, Math.min(everyMs, 1000))
      : undefined;
    const finish = (result: Captured) => {
      if (timer) clearInterval(timer);
      resolve(result);
    };
    child.on('error', (err: NodeJS.ErrnoException) => finish({ code: -1, output: err.message, missing: err.code === 'ENOENT' }));
    child.on('close', (code, signal) => {
      if (partial) options.onLine?.(partial);
      finish({ code: code ?? -1, output: signal ? `${output}\n(killed by ${signal})` : output, missing: false });
    });
  });
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/** What a lock file holds: who builds the env. */
interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/**
 * Takes `lockPath` (created exclusively), waiting while another live process holds it; a holder
 * that died (same host, pid gone) or stopped touching it for STALE_LOCK_MS is taken over. Returns
 * the release function. The holder touches the file every few seconds while it builds.
 */
export async function acquireLock(lockPath: string, log: (line: string) => void, pollMs = 1000): Promise<() => Promise<void>> {
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
  let lastNotice = 0;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(JSON.stringify(me));
      await handle.close();
      const touch = setInterval(() => {
        const now = new Date();
        utimes(lockPath, now, now).catch(() => {});
      }, Math.min(STALE_LOCK_MS / 4, 15_000));
      touch.unref();
      return async () => {
        clearInterval(touch);
        await rm(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readLockOwner(lockPath);
    if (owner === 'gone') continue;
    if (await isStale(lockPath, owner)) {
      // Only remove the lock judged stale: another waiter may have taken it over meanwhile.
      const again = await readLockOwner(lockPath);
      if (JSON.stringify(again) === JSON.stringify(owner)) {
        log(`python env: taking over ${lockPath} from a build that is no longer running`);
        await rm(lockPath, { force: true });
      }
      continue;
    }
    if (Date.now() - lastNotice > 30_000) {
      lastNotice = Date.now();
      log(`python env: waiting for another process building it (${owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.since}` : lockPath})...`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

async function readLockOwner(lockPath: string): Promise<LockOwner | undefined | 'gone'> {
  try {
    return JSON.parse(await readFile(lockPath, 'utf8')) as LockOwner;
  } catch (err) {
    // Missing: released meanwhile. Unparsable: being written right now, or torn by a crash.
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : undefined;
  }
}

async function isStale(lockPath: string, owner: LockOwner | undefined): Promise<boolean> {
  if (owner && owner.host === os.hostname() && owner.pid !== process.pid && !isAlive(owner.pid)) return true;
  try {
    return Date.now() - (await stat(lockPath)).mtimeMs > STALE_LOCK_MS;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Environment for running `tempered_torch` in the env: the package on PYTHONPATH, and the Hugging Face libraries offline (Tempered never downloads from a hub at run time). */
export function pythonRunEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...env,
    PYTHONPATH: [PYTHON_DIR, env.PYTHONPATH].filter(Boolean).join(path.delimiter),
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    PYTHONUNBUFFERED: '1',
    // No __pycache__ beside Tempered's sources (they may be read-only, e.g. an installed package).
    PYTHONDONTWRITEBYTECODE: '1',
  };
}

/** What `python -m tempered_torch.check` reports. */
export interface EnvCheck {
  python: string;
  executable: string;
  /** Installed versions of torch, transformers, peft, accelerate, safetensors, tokenizers, gguf, numpy, sentencepiece. */
  versions: Record<string, string>;
  /** The device training would use. */
  device: 'cuda' | 'cpu';
  cuda: boolean;
  /** CUDA version torch was built for (null for a CPU-only build). */
  cudaVersion: string | null;
  gpus: string[];
  threads: number;
  /** Where the packaged pretrained models are (null: package not installed). */
  packagedModels: Record<string, string | null>;
}

/** Runs `tempered_torch.check` in the env: proves torch, transformers and peft import, and says which device they see. */
export async function checkPythonEnv(python: string): Promise<EnvCheck> {
  const result = await new Promise<Captured & { stdout: string }>((resolve) => {
    const child = spawn(python, ['-m', 'tempered_torch.check'], { stdio: ['ignore', 'pipe', 'pipe'], env: pythonRunEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-16_384)));
    child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: -1, output: err.message, missing: err.code === 'ENOENT', stdout }));
    child.on('close', (code) => resolve({ code: code ?? -1, output: stderr, missing: false, stdout }));
  });
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !line.startsWith('{')) {
    throw new PythonEnvInstallError('python -m tempered_torch.check', lastLines(result.output || result.stdout, 25), false, `exit ${result.code}; rebuild the env by deleting ${path.dirname(path.dirname(python))}`);
  }
  return JSON.parse(line) as EnvCheck;
}
