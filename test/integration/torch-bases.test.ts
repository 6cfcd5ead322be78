import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { BaseNotFoundError, resolveBase } from '../../activities/torch/base';
import { ensurePythonEnv } from '../../infra/python-env';
import { makeTinyBase } from '../support/torch-fixtures';

// Bases by Hugging Face id, resolved in the worker's Hugging Face cache with the real
// huggingface_hub (offline): a snapshot found by id and revision, its files hashed; a model not in
// the cache refused with how to get it there. (s3:// bases: test/integration/torch-compress.test.ts.)

let python: string;
let dir: string;
const saved = process.env.HF_HUB_CACHE;

beforeAll(async () => {
  python = (await ensurePythonEnv()).python;
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-hf-cache-'));
  // The cache layout huggingface_hub writes: models--<org>--<name>/{refs/main, snapshots/<commit>/}.
  const commit = 'a'.repeat(40);
  const snapshot = path.join(dir, 'hub', 'models--acme--tiny-bert', 'snapshots', commit);
  await mkdir(snapshot, { recursive: true });
  await makeTinyBase(python, snapshot);
  await mkdir(path.join(dir, 'hub', 'models--acme--tiny-bert', 'refs'), { recursive: true });
  await writeFile(path.join(dir, 'hub', 'models--acme--tiny-bert', 'refs', 'main'), commit);
  process.env.HF_HUB_CACHE = path.join(dir, 'hub');
}, 1_800_000);

afterAll(() => {
  if (saved === undefined) delete process.env.HF_HUB_CACHE;
  else process.env.HF_HUB_CACHE = saved;
});

test('hf:<org>/<name> resolves to its snapshot in the Hugging Face cache, by main or by revision, every file hashed', async () => {
  const base = await resolveBase('hf:acme/tiny-bert', '/specs', python);
  expect(base.dir).toBe(path.join(dir, 'hub', 'models--acme--tiny-bert', 'snapshots', 'a'.repeat(40)));
  expect(base.files.map((f) => f.name)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
  const config = base.files.find((f) => f.name === 'config.json')!;
  expect(config.bytes).toBe((await readFile(path.join(base.dir, 'config.json'))).length);
  expect((await resolveBase(`hf:acme/tiny-bert@${'a'.repeat(40)}`, '/specs', python)).dir).toBe(base.dir);
}, 120_000);

test('a model not in the cache is refused, naming the cache and how to fill it; nothing is downloaded', async () => {
  const error = await resolveBase('hf:acme/not-here', '/specs', python).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BaseNotFoundError);
  expect((error as Error).message).toContain(`is not in this worker's Hugging Face cache (${path.join(dir, 'hub')})`);
  expect((error as Error).message).toContain('huggingface-cli download acme/not-here');
  expect((error as { nonRetryable: boolean }).nonRetryable).toBe(true);
  await expect(resolveBase('hf:not a model id', '/specs', python)).rejects.toThrow(/is not a Hugging Face model id/);
  // A cache folder copied elsewhere is still found through HF_HUB_CACHE.
  await cp(path.join(dir, 'hub'), path.join(dir, 'moved'), { recursive: true });
  process.env.HF_HUB_CACHE = path.join(dir, 'moved');
  expect((await resolveBase('hf:acme/tiny-bert', '/specs', python)).dir).toContain(path.join(dir, 'moved'));
  process.env.HF_HUB_CACHE = path.join(dir, 'hub');
}, 120_000);
