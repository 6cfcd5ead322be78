import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  MARKER_FILE,
  PythonEnvInstallError,
  PythonNotFoundError,
  acquireLock,
  ensurePythonEnv,
  lockKey,
  pythonEnvRoot,
  venvPython,
  type EnvMarker,
} from '../../infra/python-env';

// The env's bookkeeping without a real pip: a fake `python` (a shell script) answers the version
// probe, makes a "venv" holding a copy of itself, and plays pip as each test asks through FAKE_*
// variables. test/integration/python-env.test.ts builds the real env.

const FAKE_PYTHON = `#!/usr/bin/env bash
if [ "$1" = "-c" ]; then
  case "$2" in *version_info*) echo "\${FAKE_VERSION:-3.11.9}"; exit 0;; esac
  exit "\${FAKE_IMPORT_EXIT:-0}"
fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  echo venv >> "$FAKE_CALLS"
  sleep "\${FAKE_VENV_SECONDS:-0}"
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
  exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo pip >> "$FAKE_CALLS"
  echo "Collecting torch==2.15.0 (from -r requirements.lock (line 9))"
  echo "  Downloading torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl (539.1 MB)"
  echo "  Downloading tqdm-4.70.1-py3-none-any.whl (78 kB)"
  if [ -n "$FAKE_PIP_ERROR" ]; then echo "$FAKE_PIP_ERROR" >&2; exit 1; fi
  echo "Installing collected packages: tqdm, torch"
  sleep "\${FAKE_UNPACK_SECONDS:-0}"
  exit 0
fi
exit 3
`;

let work: string;
let fakePython: string;
let lockFile: string;
let calls: string;
const saved = { ...process.env };

beforeEach(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'tempered-pyenv-'));
  fakePython = path.join(work, 'fake-python');
  await writeFile(fakePython, FAKE_PYTHON);
  await chmod(fakePython, 0o755);
  lockFile = path.join(work, 'requirements.lock');
  await writeFile(lockFile, 'torch==2.15.0 \\\n    --hash=sha256:aaaa\ntqdm==4.70.1 \\\n    --hash=sha256:bbbb\n');
  calls = path.join(work, 'calls');
  process.env.FAKE_CALLS = calls;
});

afterEach(() => {
  for (const key of Object.keys(process.env)) if (key.startsWith('FAKE_')) delete process.env[key];
  Object.assign(process.env, saved);
});

const root = () => path.join(work, 'envs');
const callsMade = async () => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('keying', () => {
  test('an env is named by the first 16 hex digits of the lock sha256; any change to the lock names another', () => {
    const a = lockKey('torch==2.15.0\n');
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(a.key).toBe(a.sha256.slice(0, 16));
    expect(lockKey('torch==2.15.0\n')).toEqual(a);
    expect(lockKey('torch==2.15.1\n').key).not.toBe(a.key);
  });

  test('envs live under TEMPERED_PYTHON_ENV_DIR, else the XDG cache, else ~/.cache', () => {
    expect(pythonEnvRoot({ TEMPERED_PYTHON_ENV_DIR: '/srv/py', XDG_CACHE_HOME: '/x' })).toBe('/srv/py');
    expect(pythonEnvRoot({ XDG_CACHE_HOME: '/x' })).toBe('/x/tempered/python');
    expect(pythonEnvRoot({})).toBe(path.join(os.homedir(), '.cache', 'tempered', 'python'));
    expect(venvPython('/e', 'linux')).toBe('/e/bin/python');
    expect(venvPython('/e', 'win32')).toBe(path.join('/e', 'Scripts', 'python.exe'));
  });
});

describe('ensurePythonEnv', () => {
  test('builds once (venv, pip, import check, marker last) and reuses the env while the marker matches the lock', async () => {
    const lines: string[] = [];
    const first = await ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: (l) => lines.push(l) });
    const { sha256, key } = lockKey(await readFile(lockFile));
    expect(first).toMatchObject({ dir: path.join(root(), key), python: path.join(root(), key, 'bin', 'python'), lockSha256: sha256, pythonVersion: '3.11.9', created: true });
    const marker = JSON.parse(await readFile(path.join(first.dir, MARKER_FILE), 'utf8')) as EnvMarker;
    expect(marker.lockSha256).toBe(sha256);
    expect(await callsMade()).toEqual(['venv', 'pip']);
    // Progress: large wheels get a line, small ones are only counted.
    expect(lines).toContainEqual(expect.stringMatching(/wheel 1: torch-2.15.0.*539.1 MB/));
    expect(lines.some((l) => l.includes('tqdm'))).toBe(false);
    expect(lines.some((l) => l.includes('unpacking 2 wheels'))).toBe(true);
    expect(lines.at(-1)).toMatch(/ready in \d+ s/);

    // Reused without running any Python: not even the interpreter given.
    const again = await ensurePythonEnv({ lockFile, root: root(), python: '/nonexistent/python3', log: () => {} });
    expect(again).toMatchObject({ dir: first.dir, created: false, installSeconds: 0 });
    expect(await callsMade()).toEqual(['venv', 'pip']);
    expect((await readdir(root())).sort()).toEqual([key]);
  });

  test('a marked env whose interpreter is gone is rebuilt', async () => {
    const first = await ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} });
    await rm(first.python);
    await expect(ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} })).resolves.toMatchObject({ dir: first.dir, created: true });
    expect(await callsMade()).toEqual(['venv', 'pip', 'venv', 'pip']);
  });

  test('a quiet pip still shows progress', async () => {
    process.env.FAKE_UNPACK_SECONDS = '1.5';
    const lines: string[] = [];
    await ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: (l) => lines.push(l), progressEverySeconds: 0.5 });
    expect(lines.filter((l) => l.includes('still installing')).length).toBeGreaterThanOrEqual(2);
  });

  test('a folder without a matching marker (a killed build, another lock) is rebuilt from scratch', async () => {
    const { key } = lockKey(await readFile(lockFile));
    const dir = path.join(root(), key);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'half-written.whl'), '');
    await writeFile(path.join(dir, MARKER_FILE), JSON.stringify({ lockSha256: 'something-else' }));
    const env = await ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} });
    expect(env.created).toBe(true);
    expect(await readdir(dir)).not.toContain('half-written.whl');
  });

  test('two callers at once: one builds, the other waits for it and reuses its env', async () => {
    process.env.FAKE_VENV_SECONDS = '1';
    const options = { lockFile, root: root(), python: fakePython, log: () => {} };
    const [a, b] = await Promise.all([ensurePythonEnv(options), ensurePythonEnv(options)]);
    expect(a.dir).toBe(b.dir);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(await callsMade()).toEqual(['venv', 'pip']);
    expect(await readdir(root())).not.toContain(`${lockKey(await readFile(lockFile)).key}.lock`);
  });

  test('no usable Python: a non-retryable error naming what was tried and how to fix it', async () => {
    const missing = ensurePythonEnv({ lockFile, root: root(), python: path.join(work, 'no-python'), log: () => {} });
    await expect(missing).rejects.toThrow(PythonNotFoundError);
    await expect(missing).rejects.toMatchObject({ nonRetryable: true, message: expect.stringMatching(/Python >= 3\.11.*not found.*apt-get install python3 python3-venv.*TEMPERED_PYTHON.*tempered setup python/s) });

    process.env.FAKE_VERSION = '3.9.18';
    await expect(ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} })).rejects.toThrow(/fake-python: is 3\.9\.18/);
  });

  test('pip failing: retryable with the tail of its output; no wheel for this platform: not retryable', async () => {
    process.env.FAKE_PIP_ERROR = 'ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n    torch==2.15.0 from https://files/torch.whl:\n        Expected sha256 aaaa';
    const hashes = ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} });
    await expect(hashes).rejects.toThrow(PythonEnvInstallError);
    await expect(hashes).rejects.toMatchObject({ nonRetryable: false, step: 'pip install', message: expect.stringContaining('DO NOT MATCH THE HASHES') });

    process.env.FAKE_PIP_ERROR = 'ERROR: Could not find a version that satisfies the requirement torch==2.15.0 (from versions: none)\nERROR: No matching distribution found for torch==2.15.0';
    await expect(ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} })).rejects.toMatchObject({
      nonRetryable: true,
      message: expect.stringMatching(/no wheel for this platform.*No matching distribution found for torch/s),
    });

    process.env.FAKE_PIP_ERROR = "WARNING: Retrying after connection broken by 'NewConnectionError'\nERROR: Could not find a version that satisfies the requirement torch==2.15.0";
    await expect(ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} })).rejects.toMatchObject({ nonRetryable: false });

    // None of the failed builds left a marker: the next call builds again.
    delete process.env.FAKE_PIP_ERROR;
    await expect(ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} })).resolves.toMatchObject({ created: true });
  });

  test('an install whose libraries do not import is not marked ready', async () => {
    process.env.FAKE_IMPORT_EXIT = '1';
    await expect(ensurePythonEnv({ lockFile, root: root(), python: fakePython, log: () => {} })).rejects.toMatchObject({ step: 'import check' });
    const { key } = lockKey(await readFile(lockFile));
    expect(await readdir(path.join(root(), key))).not.toContain(MARKER_FILE);
  });
});

describe('acquireLock', () => {
  test('a lock left by a process that died is taken over', async () => {
    const dead = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '0']);
      child.on('exit', () => resolve(child.pid!));
    });
    const lockPath = path.join(work, 'env.lock');
    await writeFile(lockPath, JSON.stringify({ pid: dead, host: os.hostname(), since: '2026-01-01T00:00:00Z' }));
    const lines: string[] = [];
    const release = await acquireLock(lockPath, (l) => lines.push(l), 10);
    expect(JSON.parse(await readFile(lockPath, 'utf8'))).toMatchObject({ pid: process.pid });
    expect(lines.join('\n')).toContain('no longer running');
    await release();
    await expect(readFile(lockPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a lock held by a live process is waited for, with a line saying whose it is', async () => {
    const lockPath = path.join(work, 'env.lock');
    const first = await acquireLock(lockPath, () => {}, 10);
    const lines: string[] = [];
    let acquired = false;
    const second = acquireLock(lockPath, (l) => lines.push(l), 10).then((release) => {
      acquired = true;
      return release;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(acquired).toBe(false);
    expect(lines.join('\n')).toContain(`waiting for another process building it (pid ${process.pid}`);
    await first();
    await (await second)();
  });
});
