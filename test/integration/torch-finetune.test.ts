import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../../infra/python-env';
import { newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary } from '../../workflows/types';
import { startHarness, waitForSummary, type Harness } from '../support/harness';
import { makeTinyBase, writeTinyMails } from '../support/torch-fixtures';

// The torch engine's finetune on real Temporal + MinIO and the real Python packages: a tiny BERT
// checkpoint built from a config in the test (no download) is fine-tuned to classify mails; the
// stored model loads with plain transformers, its base files are in the lineage, and a second run
// is a verified cache hit.

const run = promisify(execFile);
let h: Harness;
let python: string;
let dir: string;

beforeAll(async () => {
  python = (await ensurePythonEnv()).python; // minutes on a machine without the environment yet
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-'));
  await makeTinyBase(python, path.join(dir, 'tiny-base'));
  await writeTinyMails(dir, 48);
}, 1_800_000);

afterAll(async () => {
  await h?.close();
});

const spec = `
apiVersion: tempered.dev/v1
name: torch-tiny
seed: 5
stages:
  collect: { type: collect, sources: [{ path: "mail/*/*.txt" }], labelFromPath: "(?<label>ham|spam)/" }
  split: { type: split, input: collect, ratios: { train: 0.7, validation: 0.15, test: 0.15 } }
  tune:
    type: finetune
    input: split
    base: tiny-base
    objective: classify
    steps: 6
    batchSize: 4
    maxLength: 16
    optimizer: { lr: 0.001 }
    validateEvery: 3
    checkpointEvery: 2
  adapters:
    type: finetune
    input: split
    base: tiny-base
    objective: classify
    steps: 4
    batchSize: 4
    maxLength: 16
    lora: { rank: 4, targets: [query, value] }
  continued: { type: finetune, input: split, from: adapters, objective: classify, steps: 2, batchSize: 4, maxLength: 16, optimizer: { lr: 0.001 } }
  dapt: { type: finetune, input: split, base: tiny-base, objective: mlm, steps: 4, batchSize: 4, maxLength: 16, validateEvery: 2, checkpointEvery: 2, optimizer: { lr: 0.001 } }
  after-dapt: { type: finetune, input: split, from: dapt, objective: classify, steps: 2, batchSize: 4, maxLength: 16, optimizer: { lr: 0.001 } }
  evaluate-dapt: { type: evaluate, input: split, model: dapt }
  windowed: { type: finetune, input: split, base: tiny-base, objective: classify, steps: 2, batchSize: 4, maxLength: 8, longRecords: windows, windowOverlap: 2 }
  evaluate-windowed: { type: evaluate, input: split, model: windowed, robustness: false }
  parallel: { type: finetune, input: split, base: tiny-base, objective: classify, steps: 2, batchSize: 4, maxLength: 16, processes: 2 }
  sharded: { type: finetune, input: split, from: adapters, objective: classify, steps: 2, batchSize: 4, maxLength: 16, processes: 2, parallel: fsdp, lora: { rank: 4, targets: [query, value] }, optimizer: { lr: 0.001 } }
  early: { type: finetune, input: split, base: tiny-base, objective: classify, steps: 12, batchSize: 4, maxLength: 16, validateEvery: 2, earlyStopping: { metric: valF1, patience: 1 }, optimizer: { lr: 0.01 } }
  evaluate: { type: evaluate, input: split, model: tune }
  evaluate-adapters: { type: evaluate, input: split, model: adapters, robustness: false }
`;

async function runSpec(): Promise<RunSummary> {
  const plan = planPipeline(loadSpecText(spec, path.join(dir, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  return waitForSummary(h.client, workflowId, 600_000);
}

test('a pretrained checkpoint is fine-tuned by the torch engine and stored as a Hugging Face directory', async () => {
  const summary = await runSpec();
  expect(Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded').map(([n, s]) => `${n}: ${s.error}`)).toEqual([]);
  const tune = summary.stages.tune;
  expect(tune.config).toMatchObject({ engine: 'torch', base: 'tiny-base' });
  expect(tune.metrics).toMatchObject({ engine: 'torch', objective: 'classify', steps: 6, labels: ['ham', 'spam'], base: 'tiny-base', curve: { points: 6 } });
  const names = tune.outputs.map((o) => o.name);
  expect(names).toEqual(expect.arrayContaining(['hf/config.json', 'hf/model.safetensors', 'hf/tokenizer.json', 'torch-model.json', 'curves']));
  const descriptor = await h.store.readJson<{ engine: string; base: { files: Array<{ name: string; sha256: string }> } }>({ ...tune.outputs.find((o) => o.name === 'torch-model.json')!, mediaType: 'application/json' });
  expect(descriptor.engine).toBe('torch');
  expect(descriptor.base.files.map((f) => f.name)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));

  // Plain transformers loads what was stored, unchanged.
  const local = path.join(dir, 'downloaded');
  await mkdir(local, { recursive: true });
  for (const output of tune.outputs.filter((o) => o.name.startsWith('hf/'))) {
    await writeFile(path.join(local, output.name.slice(3)), await h.store.readBuffer({ ...output, mediaType: 'application/octet-stream' }));
  }
  const { stdout } = await run(python, ['-c', 'import sys, json; from transformers import AutoModelForSequenceClassification as M, AutoTokenizer as T; m = M.from_pretrained(sys.argv[1]); t = T.from_pretrained(sys.argv[1]); print(json.dumps({"labels": m.config.id2label, "logits": list(m(**t(["win money"], return_tensors="pt")).logits.shape)}))', local], { env: pythonRunEnv() });
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ labels: { '0': 'ham', '1': 'spam' }, logits: [1, 2] });

  // LoRA: only the adapters (and the new head) are stored, with a reference to the base.
  const adapterNames = summary.stages.adapters.outputs.map((o) => o.name);
  expect(adapterNames).toEqual(expect.arrayContaining(['hf/adapter_config.json', 'hf/adapter_model.safetensors']));
  expect(adapterNames).not.toContain('hf/model.safetensors');
  expect(summary.stages.adapters.metrics.trainableFraction).toBeLessThan(0.5);

  // Evaluation: predictions from torch, metrics from Tempered's own code, as for tfjs models.
  const evaluation = summary.stages.evaluate.metrics as Record<string, any>;
  expect(evaluation).toMatchObject({ engine: 'torch', objective: 'classify', split: 'test' });
  expect(evaluation.confusion.labels).toEqual(['ham', 'spam']);
  const rows = [] as Array<{ label: string; predicted: string }>;
  const ref = summary.stages.evaluate.outputs.find((o) => o.name === 'predictions')!;
  for (const line of (await h.store.readBuffer({ ...ref, mediaType: 'application/jsonl' })).toString('utf8').split('\n').filter(Boolean)) rows.push(JSON.parse(line));
  expect(rows).toHaveLength(evaluation.examples);
  expect(rows.filter((r) => r.label === r.predicted).length / rows.length).toBeCloseTo(evaluation.accuracy, 4);
  expect(evaluation.robustness.drop).toHaveProperty('macroF1');
  expect(summary.stages['evaluate-adapters'].metrics).toMatchObject({ engine: 'torch', examples: evaluation.examples });

  // Two-phase across objectives: masked-LM domain-adaptive pretraining of the encoder, then a classifier from it.
  expect(summary.stages.dapt.metrics).toMatchObject({ engine: 'torch', objective: 'mlm', steps: 4, curve: { points: 4 } });
  expect(Number.isFinite(summary.stages.dapt.metrics.finalLoss)).toBe(true);
  const dapt = summary.stages['evaluate-dapt'].metrics as Record<string, any>;
  expect(dapt).toMatchObject({ engine: 'torch', objective: 'mlm' });
  expect(dapt.perplexity).toBeGreaterThan(1);
  expect(dapt.perplexity).toBeCloseTo(Math.exp(dapt.loss), 2);
  expect(summary.stages['after-dapt'].metrics).toMatchObject({ engine: 'torch', from: 'dapt', labels: ['ham', 'spam'] });

  // Records longer than maxLength train as overlapping windows, and evaluation scores them whole.
  const windowed = await h.store.readJson<{ windows?: { overlap: number } }>({ ...summary.stages.windowed.outputs.find((o) => o.name === 'torch-model.json')!, mediaType: 'application/json' });
  expect(windowed.windows).toEqual({ overlap: 2 });
  expect(summary.stages['evaluate-windowed'].metrics).toMatchObject({ engine: 'torch', examples: evaluation.examples });

  // Data-parallel: two processes (torchrun, gloo on this CPU worker), rank 0 reporting.
  expect(summary.stages.parallel.metrics).toMatchObject({ engine: 'torch', processes: 2, steps: 2, curve: { points: 2 } });
  // Sharded (FSDP2): adapters over a model split across the two processes, gathered whole on rank 0 and stored merged.
  expect(summary.stages.sharded.metrics).toMatchObject({ engine: 'torch', processes: 2, parallel: 'fsdp', steps: 2, from: 'adapters' });
  expect(summary.stages.sharded.metrics.shardedUnits).toBeGreaterThan(1);
  expect(summary.stages.sharded.outputs.map((o) => o.name)).toContain('hf/model.safetensors');

  // Early stopping: the tfjs engine's rule and names; the model is the best validation's.
  const early = summary.stages.early.metrics as Record<string, any>;
  expect(early).toMatchObject({ engine: 'torch', bestStep: expect.any(Number), stoppedEarly: expect.any(Boolean) });
  expect(early.bestStep % 2).toBe(0);
  expect(early.bestStep).toBeLessThanOrEqual(early.steps);
  expect(early.steps).toBe(early.stoppedEarly ? early.bestStep + 2 : 12);
  expect(early.final.valF1).toBeCloseTo(early.bestMetric, 4);

  // A LoRA-only model continues as its base with the adapters merged: a whole model, the labels kept.
  expect(summary.stages.continued.metrics).toMatchObject({ engine: 'torch', from: 'adapters', labels: ['ham', 'spam'], trainableFraction: 1 });
  const continued = await h.store.readJson<{ adapter: boolean; from: string }>({ ...summary.stages.continued.outputs.find((o) => o.name === 'torch-model.json')!, mediaType: 'application/json' });
  expect(continued).toMatchObject({ adapter: false, from: 'adapters' });

  // The same spec and base again: a cache hit, whose outputs are the first run's.
  const again = await runSpec();
  expect(again.stages.tune).toMatchObject({ status: 'cached', cachedFrom: summary.runId });
  expect(again.stages.evaluate).toMatchObject({ status: 'cached', cachedFrom: summary.runId });
}, 900_000);

test('a torch fine-tune resumed from its checkpoint ends with the weights of one that never stopped (CPU)', async () => {
  // python/tests/finetune_resume.py: 6 steps with checkpoints at 2 and 4, then again from step 4.
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-resume-'));
  const { stdout } = await run(python, [path.join(PYTHON_DIR, 'tests', 'finetune_resume.py'), work], { env: pythonRunEnv() });
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ checkpoints: [2, 4], resumedFrom: 4, resumedSteps: [5, 6], identical: true });
}, 300_000);

test('causal-lm with LoRA: adapters are trained and stored, and predict scores each record with base + adapters', async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-lm-'));
  const { stdout } = await run(python, [path.join(PYTHON_DIR, 'tests', 'causal_lm_lora.py'), work], { env: pythonRunEnv() });
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
    finetuneExit: 0,
    predictExit: 0,
    adapterFiles: ['adapter_config.json', 'adapter_model.safetensors'],
    trainableFraction: expect.any(Number),
    scored: 20,
    allFinite: true,
  });
}, 300_000);
