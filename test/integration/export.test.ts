import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { EXPORT_MANIFEST } from '../../activities/export';
import { registerVersion, promote } from '../../activities/registry/model-registry';
import { createStore, sha256Hex } from '../../activities/store';
import { newRunId, startRun } from '../../cli/runs';
import { ensurePythonEnv, pythonRunEnv } from '../../infra/python-env';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary, StageManifest } from '../../workflows/types';
import { tempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';
import { makeTinyBpeBase, makeTinyChatBase, writeTinyMailsWithSubjects } from '../support/torch-fixtures';

// `tempered models export` on real Temporal + MinIO and the real Python packages: torch models
// trained by the pipeline (LoRA adapters and a whole fine-tune of a tiny Llama built from a config)
// are registered, exported as a Hugging Face checkpoint (adapters merged), as PEFT adapters and to
// an S3 prefix, and loaded back with plain transformers / peft, which must compute what Tempered's
// own model computes.

const run = promisify(execFile);
let h: Harness;
let python: string;
let dir: string;
let summary: RunSummary;
let env: NodeJS.ProcessEnv;

const spec = `
apiVersion: tempered.dev/v1
name: export
seed: 5
stages:
  collect: { type: collect, sources: [{ path: "mail/*.eml" }] }
  clean: { type: clean, input: collect, stripMailHeaders: true, keepHeaders: [subject], redact: false, nearDedup: false }
  split: { type: split, input: clean, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  lora:
    type: finetune
    input: split
    base: chat-base
    objective: sft
    sft: { prompt: "write the subject line of this mail {text}", response: "{meta.subject}" }
    steps: 3
    batchSize: 4
    maxLength: 48
    lora: { rank: 2, alpha: 4 }
    optimizer: { lr: 0.05 }
  full: { type: finetune, input: split, base: chat-base, objective: causal-lm, steps: 2, batchSize: 4, maxLength: 32, optimizer: { lr: 0.01 } }
  int8: { type: quantize, input: split, model: full }
  bpe: { type: finetune, input: split, base: bpe-base, objective: causal-lm, steps: 2, batchSize: 4, maxLength: 32, optimizer: { lr: 0.01 } }
`;

beforeAll(async () => {
  python = (await ensurePythonEnv()).python;
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-export-'));
  await makeTinyChatBase(python, path.join(dir, 'chat-base'));
  await makeTinyBpeBase(python, path.join(dir, 'bpe-base'));
  await writeTinyMailsWithSubjects(dir, 24);
  const plan = planPipeline(loadSpecText(spec, path.join(dir, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  summary = await waitForSummary(h.client, workflowId, 600_000);
  expect(Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded').map(([n, s]) => `${n}: ${s.error}`)).toEqual([]);
  for (const stage of ['lora', 'full', 'int8', 'bpe']) {
    const manifest = await h.store.readJson<StageManifest>(summary.stages[stage].manifest!);
    const version = await registerVersion(h.store, `tiny-${stage}`, { outputs: manifest.outputs, metrics: manifest.metrics, lineage: { runId: summary.runId, pipeline: 'export', stage } });
    await promote(h.store, `tiny-${stage}`, version.version);
  }
  env = { TEMPERED_STORE: `s3://${h.bucket}` };
}, 1_800_000);

afterAll(async () => {
  await h?.close();
});

/** Logits of the next token after a few texts, from a model directory loaded with plain transformers: PEFT adapters over `base`, or the GGUF file `base` names in the directory. */
async function logits(modelDir: string, base?: string): Promise<number[][]> {
  const script = [
    'import sys, json, torch',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    'model_dir, base = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)',
    'gguf = {"gguf_file": base} if base and base.endswith(".gguf") else {}',
    'if base and not gguf:',
    '    from peft import PeftModel',
    '    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), model_dir)',
    'else:',
    '    model = AutoModelForCausalLM.from_pretrained(model_dir, **gguf)',
    'tok = AutoTokenizer.from_pretrained(model_dir, **gguf)',
    'model.eval()',
    'out = []',
    'for text in ["win free money prize", "meeting notes attached team lunch report", "the mail"]:',
    '    ids = tok(text, return_tensors="pt")',
    '    with torch.no_grad(): out.append(model(**ids).logits[0, -1].tolist())',
    'print(json.dumps(out))',
  ].join('\n');
  const { stdout } = await run(python, ['-c', script, modelDir, ...(base ? [base] : [])], { env: pythonRunEnv(), maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as number[][];
}

function maxDifference(a: number[][], b: number[][]): number {
  return Math.max(...a.flatMap((row, i) => row.map((x, j) => Math.abs(x - b[i][j]))));
}

test('LoRA adapters export merged as a plain checkpoint and as PEFT adapters, both computing what base + adapters compute', async () => {
  const hf = path.join(dir, 'out-hf');
  // Run from the spec's directory: the adapters' base, `chat-base`, is a path relative to it.
  const result = await tempered(['models', 'export', 'tiny-lora@champion', '--format', 'hf', '--out', hf, '--json'], env, 300_000, dir);
  expect(result.code).toBe(0);
  const exported = JSON.parse(result.stdout) as { model: string; version: number; engine: string; architecture: string; files: Array<{ name: string; bytes: number; sha256: string }>; notes: string[] };
  expect(exported).toMatchObject({ model: 'tiny-lora', version: 1, engine: 'torch', architecture: 'LlamaForCausalLM' });
  expect(exported.files.map((f) => f.name)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
  expect(exported.files.map((f) => f.name)).not.toContain('adapter_config.json');
  // Every file is as the manifest says.
  for (const file of exported.files) expect(sha256Hex(await readFile(path.join(hf, file.name)))).toBe(file.sha256);
  const manifest = JSON.parse(await readFile(path.join(hf, EXPORT_MANIFEST), 'utf8'));
  expect(manifest.source).toMatchObject({ model: 'tiny-lora', version: 1, lineage: { runId: summary.runId, stage: 'lora' } });

  const peft = path.join(dir, 'out-peft');
  expect((await tempered(['models', 'export', 'tiny-lora', '--format', 'peft', '--out', peft], env, 300_000, dir)).code).toBe(0);
  const adapterConfig = JSON.parse(await readFile(path.join(peft, 'adapter_config.json'), 'utf8'));
  expect(adapterConfig.base_model_name_or_path).toBeNull(); // a directory base: named in the notes, not as a path of the training machine

  const merged = await logits(hf);
  const overBase = await logits(peft, path.join(dir, 'chat-base'));
  const baseAlone = await logits(path.join(dir, 'chat-base'));
  expect(maxDifference(merged, overBase)).toBeLessThan(1e-4);
  expect(maxDifference(merged, baseAlone)).toBeGreaterThan(1e-3); // the adapters trained
}, 600_000);

test('a whole model exports to an S3 prefix as stored; what cannot be exported is refused, naming the fix', async () => {
  const target = `s3://${h.bucket}/exports/tiny-full/`;
  const result = await tempered(['models', 'export', 'tiny-full@1', '--format', 'hf', '--out', target, '--json'], env, 300_000);
  expect(result.code).toBe(0);
  const exported = JSON.parse(result.stdout) as { files: Array<{ name: string; sha256: string }> };
  const bucket = createStore({ kind: 's3', bucket: h.bucket, prefix: 'exports/tiny-full/', endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true });
  try {
    const keys = await bucket.list('');
    expect(keys.sort()).toEqual([...exported.files.map((f) => f.name), EXPORT_MANIFEST].sort());
    const weights = await bucket.readKey('model.safetensors', 'application/octet-stream');
    expect(sha256Hex(weights!.body)).toBe(exported.files.find((f) => f.name === 'model.safetensors')!.sha256);
  } finally {
    await bucket.close();
  }

  const refusals = await Promise.all([
    tempered(['models', 'export', 'tiny-full', '--format', 'peft', '--out', path.join(dir, 'x1')], env),
    tempered(['models', 'export', 'tiny-int8', '--format', 'hf', '--out', path.join(dir, 'x2')], env),
    tempered(['models', 'export', 'tiny-full@7', '--format', 'hf', '--out', path.join(dir, 'x3')], env),
    tempered(['models', 'export', 'tiny-full', '--format', 'hf', '--out', path.join(dir, 'out-hf')], env),
  ]);
  expect(refusals.map((r) => r.code)).toEqual([2, 2, 2, 2]);
  expect(refusals[0].stderr).toMatch(/not LoRA adapters over a base: use --format hf/);
  expect(refusals[1].stderr).toMatch(/int8 model .* export the float model it was quantized from/);
  expect(refusals[2].stderr).toMatch(/model "tiny-full" has no version 7; versions: 1/);
  expect(refusals[3].stderr).toMatch(/is not empty; give a new or empty directory/);
}, 600_000);

test('a Llama model exports to GGUF F16 and Q8_0 that transformers reads back to the logits of its checkpoint', async () => {
  const hf = path.join(dir, 'bpe-hf');
  expect((await tempered(['models', 'export', 'tiny-bpe', '--format', 'hf', '--out', hf], env, 300_000)).code).toBe(0);
  const reference = await logits(hf);
  const scale = Math.max(...reference.flat().map(Math.abs));
  const sizes: Record<string, number> = {};
  for (const type of ['f16', 'q8_0'] as const) {
    const out = path.join(dir, `bpe-${type}`);
    const result = await tempered(['models', 'export', 'tiny-bpe', '--format', 'gguf', '--type', type, '--out', out, '--json'], env, 300_000);
    expect(result.code).toBe(0);
    const exported = JSON.parse(result.stdout) as { files: Array<{ name: string; bytes: number }> };
    const file = exported.files.find((f) => f.name.endsWith('.gguf'))!;
    expect(file.name).toBe(`model.${type}.gguf`);
    sizes[type] = file.bytes;
    // F16 keeps each weight within 2^-11 of itself; Q8_0 rounds to 1/127 of each 32-weight block's largest.
    expect(maxDifference(await logits(out, file.name), reference)).toBeLessThan((type === 'f16' ? 5e-3 : 5e-2) * scale);
  }
  expect(sizes.q8_0).toBeLessThan(sizes.f16);
  const wordLevel = await tempered(['models', 'export', 'tiny-lora', '--format', 'gguf', '--out', path.join(dir, 'x4')], env, 300_000, dir);
  expect(wordLevel.code).toBe(2);
  expect(wordLevel.stderr).toMatch(/WordLevel/); // the tiny chat base's word-level tokenizer has no GGUF vocabulary
}, 600_000);
