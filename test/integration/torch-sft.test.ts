import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readJsonl } from '../../activities/store';
import { ensurePythonEnv, pythonRunEnv } from '../../infra/python-env';
import { writeRunReport } from '../../cli/report';
import { newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary } from '../../workflows/types';
import { startHarness, waitForSummary, type Harness } from '../support/harness';
import { makeTinyChatBase, writeTinyMailsWithSubjects } from '../support/torch-fixtures';

// The torch engine's sft on real Temporal + MinIO and the real Python packages: mails with a Subject
// (kept by clean's keepHeaders) become "write the subject line" conversations for a tiny Llama with
// a ChatML chat template (built from a config in the test, no download); LoRA and full fine-tunes
// are evaluated with BLEU/ROUGE on greedy generations, the stored adapter loads with plain
// transformers + peft, and report.compare gets a paired-bootstrap interval on ROUGE-L.

const run = promisify(execFile);
let h: Harness;
let python: string;
let dir: string;

beforeAll(async () => {
  python = (await ensurePythonEnv()).python;
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-sft-'));
  await makeTinyChatBase(python, path.join(dir, 'chat-base'));
  await writeTinyMailsWithSubjects(dir, 40);
}, 1_800_000);

afterAll(async () => {
  await h?.close();
});

const spec = `
apiVersion: tempered.dev/v1
name: torch-sft
seed: 3
report:
  compare: [{ name: full vs lora, candidate: evaluate-full, baseline: evaluate-lora }]
stages:
  collect: { type: collect, sources: [{ path: "mail/*.eml" }] }
  clean: { type: clean, input: collect, stripMailHeaders: true, keepHeaders: [subject], redact: false, nearDedup: false }
  split: { type: split, input: clean, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  lora:
    type: finetune
    input: split
    base: chat-base
    objective: sft
    sft: { prompt: "write the subject line of this mail {text}", response: "{meta.subject}", system: "team" }
    steps: 4
    batchSize: 4
    maxLength: 48
    lora: { rank: 2, alpha: 4 }
    optimizer: { lr: 0.01 }
    validateEvery: 2
    checkpointEvery: 2
  full:
    type: finetune
    input: split
    base: chat-base
    objective: sft
    sft: { prompt: "write the subject line of this mail {text}", response: "{meta.subject}", system: "team" }
    steps: 6
    batchSize: 4
    maxLength: 48
    optimizer: { lr: 0.01 }
  packed:
    type: finetune
    input: split
    base: chat-base
    objective: sft
    sft: { prompt: "write the subject line of this mail {text}", response: "{meta.subject}", system: "team" }
    packing: true
    gradientCheckpointing: true
    steps: 2
    batchSize: 2
    maxLength: 128
    lora: { rank: 2, alpha: 4 }
    optimizer: { lr: 0.01 }
  baseline:
    type: finetune
    input: split
    base: chat-base
    objective: sft
    sft: { prompt: "write the subject line of this mail {text}", response: "{meta.subject}", system: "team" }
    maxLength: 48
    lora: { rank: 2, alpha: 4 }
    steps: 0
  evaluate-lora: { type: evaluate, input: split, model: lora, metrics: [perplexity, bleu, rouge], maxNewTokens: 6 }
  evaluate-full: { type: evaluate, input: split, model: full, metrics: [perplexity, bleu, rouge], maxNewTokens: 6 }
  evaluate-baseline: { type: evaluate, input: split, model: baseline, metrics: [perplexity], maxNewTokens: 6 }
`;

async function runSpec(text: string): Promise<RunSummary> {
  const plan = planPipeline(loadSpecText(text, path.join(dir, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  return waitForSummary(h.client, workflowId, 600_000);
}

test('sft on conversations built from mails: LoRA adapters trained on the reply, evaluated with BLEU/ROUGE on generations', async () => {
  const summary = await runSpec(spec);
  expect(Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded').map(([n, s]) => `${n}: ${s.error}`)).toEqual([]);
  expect(summary.stages.clean.metrics).toMatchObject({ keptHeaders: { subject: 40 } });
  expect(summary.stages.lora.metrics).toMatchObject({ engine: 'torch', objective: 'sft', steps: 4, curve: { points: 4 } });

  const evaluation = summary.stages['evaluate-lora'].metrics as Record<string, any>;
  expect(evaluation).toMatchObject({ engine: 'torch', objective: 'sft', split: 'test', maxNewTokens: 6, generated: evaluation.examples });
  expect(evaluation.bleu).toBeGreaterThanOrEqual(0);
  expect(evaluation.rouge).toEqual({ rouge1: expect.any(Number), rouge2: expect.any(Number), rougeL: expect.any(Number) });
  expect(evaluation.perplexity).toBeCloseTo(Math.exp(evaluation.loss), 2);
  // Per record: the reference subject, the generation, the prompt's start and ROUGE-L.
  const rows: Array<{ id: string; label: string; predicted: string; text: string; rougeL: number }> = [];
  const ref = summary.stages['evaluate-lora'].outputs.find((o) => o.name === 'predictions')!;
  for await (const row of readJsonl<(typeof rows)[number]>(h.store, { ...ref, mediaType: 'application/jsonl' })) rows.push(row);
  expect(rows).toHaveLength(evaluation.examples);
  expect(new Set(rows.map((r) => r.label))).toEqual(new Set(['free money offer', 'meeting notes']));
  expect(rows[0].text).toMatch(/^write the subject line of this mail /);
  expect(rows.reduce((n, r) => n + r.rougeL, 0) / rows.length).toBeCloseTo(evaluation.rouge.rougeL, 4);

  // The full fine-tune learns the two subjects from its few steps; the comparison has an interval.
  const full = summary.stages['evaluate-full'].metrics as Record<string, any>;
  expect(full.rouge.rougeL).toBeGreaterThan(0.5);
  const report = await writeRunReport(summary, await mkdtemp(path.join(os.tmpdir(), 'tempered-sft-report-')), h.store);
  expect(report.model.lifts.find((l) => l.metric === 'rougeL')).toMatchObject({ comparison: 'full vs lora', interval: { ok: true, records: rows.length } });

  // Packing: several conversations per 128-token row; activation checkpointing on.
  const packed = summary.stages.packed.metrics as Record<string, any>;
  expect(packed).toMatchObject({ engine: 'torch', objective: 'sft', steps: 2, gradientCheckpointing: true });
  expect(packed.packedConversations).toBeGreaterThan(packed.packedRows);
  expect(packed.packingEfficiency).toBeGreaterThan(0.5);
  // steps 0: the base stored untrained (adapters at zero), scored like any model.
  expect(summary.stages.baseline.metrics).toMatchObject({ engine: 'torch', steps: 0, finalLoss: null });
  expect(summary.stages['evaluate-baseline'].metrics.perplexity).toBeGreaterThan(1);

  // The stored adapter loads with plain transformers + peft over the base, and generates.
  const local = path.join(dir, 'adapter');
  await mkdir(local, { recursive: true });
  for (const output of summary.stages.lora.outputs.filter((o) => o.name.startsWith('hf/'))) {
    await writeFile(path.join(local, output.name.slice(3)), await h.store.readBuffer({ ...output, mediaType: 'application/octet-stream' }));
  }
  expect(summary.stages.lora.outputs.map((o) => o.name)).toEqual(expect.arrayContaining(['hf/adapter_config.json', 'hf/adapter_model.safetensors', 'hf/tokenizer_config.json']));
  const load = [
    'import sys, json',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    'from peft import PeftModel',
    'm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sys.argv[2]), sys.argv[1])',
    't = AutoTokenizer.from_pretrained(sys.argv[1])',
    'ids = t.apply_chat_template([{"role": "user", "content": "win free money"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)',
    'out = m.generate(**ids, max_new_tokens=3, do_sample=False)',
    'print(json.dumps({"template": bool(t.chat_template), "new": out.shape[1] - ids["input_ids"].shape[1]}))',
  ].join('\n');
  const { stdout } = await run(python, ['-c', load, local, path.join(dir, 'chat-base')], { env: pythonRunEnv() });
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ template: true });
}, 900_000);

test('a record without the field a template names fails the stage at once, not retried, naming it', async () => {
  const broken = spec.replace('keepHeaders: [subject], ', '').replace(/\n {2}full:[\s\S]*$/, '\n');
  const summary = await runSpec(broken.replace('report:\n  compare: [{ name: full vs lora, candidate: evaluate-full, baseline: evaluate-lora }]\n', ''));
  expect(summary.stages.lora.status).toBe('failed');
  expect(summary.stages.lora.error).toMatch(/record "[^"]+" has no "meta.subject" for the sft response template/);
  expect(summary.stages.lora.attempts ?? 1).toBe(1);
}, 300_000);
