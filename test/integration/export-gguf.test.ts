import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ExportError } from '../../activities/export/errors';
import { exportGguf } from '../../activities/export/gguf';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../../infra/python-env';

// exportGguf's side of tempered_torch.export_gguf's contract (arguments, result line, exit 3), with
// the real Python packages. What the file holds, and that transformers reads back the same logits
// and token ids, is tested in python/tests/test_export_gguf.py.

const run = promisify(execFile);
let python: string;
let dir: string;

beforeAll(async () => {
  python = (await ensurePythonEnv()).python;
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-gguf-'));
  // A tiny Llama with a byte-level BPE tokenizer (GGUF's gpt2 vocabulary), and a tiny BERT.
  const make = `from pathlib import Path\nfrom tests.tiny_base import bpe_llama\nfrom tests.tiny_base import tiny_bert\nbpe_llama(Path(${JSON.stringify(path.join(dir, 'llama'))}), tied=True)\ntiny_bert(Path(${JSON.stringify(path.join(dir, 'bert'))}))`;
  await run(python, ['-c', make], { cwd: PYTHON_DIR, env: pythonRunEnv() });
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('writes F16 and a smaller Q8_0 and reports what it wrote', async () => {
  const f16 = await exportGguf(python, path.join(dir, 'llama'), path.join(dir, 'out', 'model.f16.gguf'), 'f16');
  const q8 = await exportGguf(python, path.join(dir, 'llama'), path.join(dir, 'out', 'model.q8_0.gguf'), 'q8_0');
  expect(f16).toEqual({ file: path.join(dir, 'out', 'model.f16.gguf'), type: 'f16', architecture: 'llama', tensors: 20, bytes: (await stat(f16.file)).size, tensorTypes: { F16: 15, F32: 5 } });
  expect(q8).toMatchObject({ type: 'q8_0', tensors: 20, tensorTypes: { F32: 5, Q8_0: 15 } });
  expect(q8.bytes).toBeLessThan(f16.bytes);
}, 120_000);

test('another architecture is an ExportError, not retried, naming it and what is supported', async () => {
  const failed = await exportGguf(python, path.join(dir, 'bert'), path.join(dir, 'bert.gguf'), 'f16').catch((err: unknown) => err);
  expect(failed).toBeInstanceOf(ExportError);
  expect((failed as ExportError).nonRetryable).toBe(true);
  expect((failed as ExportError).message).toMatch(/BertModel.*supports.*LlamaForCausalLM/);
  await expect(stat(path.join(dir, 'bert.gguf'))).rejects.toThrow();
}, 120_000);
