import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { LOCK_FILE, PYTHON_DIR, checkPythonEnv, ensurePythonEnv, pythonRunEnv, type PythonEnv } from '../../infra/python-env';
import { tempered } from '../support/cli';

// The torch engine's real environment: built from python/requirements.lock by pip from the package
// registry (the first time on a machine: minutes and ~6 GB, torch with its CUDA libraries; then
// reused from the per-machine cache), then proved to work: the check module, and the Python tests
// that train tiny models on CPU and load the two packaged pretrained models.

const run = promisify(execFile);
const FIRST_INSTALL_MS = 20 * 60_000;

/** The version the lock pins for `name` (the line without a marker, or the first). */
function pinned(lock: string, name: string): string {
  const match = new RegExp(`^${name}==([^\\s;]+)`, 'm').exec(lock);
  if (!match) throw new Error(`${name} is not pinned in ${LOCK_FILE}`);
  return match[1];
}

let env: PythonEnv;

beforeAll(async () => {
  env = await ensurePythonEnv({ log: (line) => process.stderr.write(`[python env] ${line}\n`) });
}, FIRST_INSTALL_MS);

test('the env holds the locked torch, transformers and peft, and says which device it trains on', async () => {
  const check = await checkPythonEnv(env.python);
  const lock = await readFile(LOCK_FILE, 'utf8');
  for (const name of ['torch', 'transformers', 'peft', 'accelerate', 'safetensors', 'gguf']) {
    expect({ name, version: check.versions[name] }).toEqual({ name, version: pinned(lock, name) });
  }
  expect(check.device).toBe(check.cuda ? 'cuda' : 'cpu');
  expect(check.executable.startsWith(env.dir)).toBe(true);
  for (const [name, where] of Object.entries(check.packagedModels)) {
    expect({ name, where }).toEqual({ name, where: expect.stringContaining(env.dir) });
    await access(where!);
  }
}, 60_000);

test('it trains tiny models on CPU, round-trips them through save_pretrained/from_pretrained, and loads MiniLM and SmolLM2 offline', async () => {
  const { stderr } = await run(env.python, ['-m', 'unittest', 'discover', '-s', path.join(PYTHON_DIR, 'tests'), '-t', PYTHON_DIR], {
    cwd: PYTHON_DIR,
    env: pythonRunEnv(),
    timeout: 8 * 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  // unittest reports on stderr: "Ran N tests in S" then "OK".
  const ran = /Ran (\d+) tests? in [\d.]+s\s+OK/.exec(stderr);
  expect(ran?.[0]).toBeDefined();
  expect(Number(ran![1])).toBeGreaterThanOrEqual(6);
}, 10 * 60_000);

test('`tempered setup python --json` reuses the env and prints one JSON document', async () => {
  const result = await tempered(['setup', 'python', '--json'], {}, 120_000);
  expect(result.code).toBe(0);
  const document = JSON.parse(result.stdout) as PythonEnv & { check: { versions: Record<string, string> } };
  expect(document).toMatchObject({ dir: env.dir, python: env.python, lockSha256: env.lockSha256, created: false });
  expect(document.check.versions.torch).toBe(pinned(await readFile(LOCK_FILE, 'utf8'), 'torch'));
}, 150_000);
