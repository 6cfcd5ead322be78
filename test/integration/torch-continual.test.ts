import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { readContinualState } from '../../activities/continual/state';
import { getAliases, getVersion, listVersions } from '../../activities/registry/model-registry';
import { ensurePythonEnv } from '../../infra/python-env';
import { newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary } from '../../workflows/types';
import { startHarness, waitForSummary, type Harness } from '../support/harness';
import { makeTinyBase } from '../support/torch-fixtures';

// Continual retraining with a torch champion on real Temporal + MinIO and the real Python packages:
// the first cycle fine-tunes a tiny BERT checkpoint (built in the test) and promotes it; the next
// cycle continues the registry's champion (`from: champion`, a Hugging Face checkpoint; LoRA
// adapters trained on it are stored merged into a whole model), and
// promote judges candidate and champion on every cycle's test split with torch predictions.

let h: Harness;
let dir: string;
const name = `torch-cont-${randomBytes(3).toString('hex')}`;
let clock = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

beforeAll(async () => {
  const { python } = await ensurePythonEnv();
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-continual-'));
  await makeTinyBase(python, path.join(dir, 'tiny-base'));
}, 1_800_000);

afterAll(async () => {
  await h?.close();
});

/** `count` ham and `count` spam mails in inbox/<label>-<batch>/, with a fresh mtime. */
async function release(batch: number, count: number): Promise<void> {
  clock += 60_000;
  for (const [label, words] of [['ham', 'meeting notes attached team lunch report'], ['spam', 'win free money prize now offer']] as const) {
    const folder = path.join(dir, 'inbox', `${label}-${batch}`);
    await mkdir(folder, { recursive: true });
    for (let i = 0; i < count; i++) {
      const file = path.join(folder, `${batch}-${i}.txt`);
      await writeFile(file, `${words} ${'the a '.repeat(i % 4)} number ${batch * 100 + i}`);
      await utimes(file, new Date(clock), new Date(clock));
    }
  }
}

const spec = `
apiVersion: tempered.dev/v1
name: ${name}
seed: 7
stages:
  collect: { type: collect, sources: [{ path: "inbox/*/*.txt" }], incremental: { by: mtime }, labelFromPath: "(?<label>ham|spam)-\\\\d+/" }
  split: { type: split, input: collect, groupNearDuplicates: false, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  initial: { type: finetune, input: split, base: tiny-base, objective: classify, steps: 4, batchSize: 8, maxLength: 16, optimizer: { lr: 0.003 } }
  champion: { type: champion, registry: ${name}, initial: initial }
  train: { type: finetune, input: split, from: champion, objective: classify, lora: { rank: 4, targets: [query, value] }, steps: 4, batchSize: 8, maxLength: 16, optimizer: { lr: 0.003 } }
  promote: { type: promote, input: split, candidate: train, champion: champion, collect: collect, gate: { minGain: -1, maxForgetting: 1 } }
`;

async function cycle(): Promise<RunSummary> {
  const { workflowId } = await startRun(h.client, planPipeline(loadSpecText(spec, path.join(dir, 'spec.yaml'))), newRunId());
  const summary = await waitForSummary(h.client, workflowId, 600_000);
  expect(Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded' && s.status !== 'cached').map(([n, s]) => `${n}: ${s.status} ${s.error ?? ''}`)).toEqual([]);
  return summary;
}

test('a torch model is promoted, continued by the next cycle from the registry, and judged against its champion on every cycle', async () => {
  await release(1, 15);
  const first = await cycle();
  expect(first.stages.train.config).toMatchObject({ engine: 'torch', from: 'champion' });
  expect(first.stages.champion.metrics).toMatchObject({ source: 'initial' });
  expect(first.stages.promote.metrics).toMatchObject({ cycle: 1, candidateVersion: 1, promoted: true });
  // LoRA on a model that is a stage's artifact is stored merged: a whole checkpoint the next cycle continues.
  expect(first.stages.train.metrics.trainableFraction).toBeLessThan(0.5);
  const v1 = await getVersion(h.store, name, 1);
  expect(await h.store.readJson(v1.outputs['torch-model.json'])).toMatchObject({ engine: 'torch', adapter: false, from: 'champion' });
  expect(Object.keys(v1.outputs)).toEqual(expect.arrayContaining(['hf/config.json', 'hf/model.safetensors']));
  expect(Object.keys(v1.outputs)).not.toContain('hf/adapter_model.safetensors');

  await release(2, 15);
  const second = await cycle();
  expect(second.stages.champion.metrics).toMatchObject({ source: 'registry', version: 1 });
  // The candidate continued the champion's checkpoint (its labels, in its order).
  expect(second.stages.train.metrics).toMatchObject({ engine: 'torch', from: 'champion', labels: ['ham', 'spam'] });
  const promote = second.stages.promote.metrics as Record<string, any>;
  expect(promote).toMatchObject({ cycle: 2, candidateVersion: 2 });
  const state = await readContinualState(h.store, name);
  const evaluations = state.cycles[1].evaluations;
  expect(evaluations.map((e) => e.cycle)).toEqual([1, 2]);
  for (const e of evaluations) {
    expect(e.candidate).toBeGreaterThanOrEqual(0);
    expect(e.candidate).toBeLessThanOrEqual(1);
    expect(e.champion).toBeGreaterThanOrEqual(0);
    expect(e.champion).toBeLessThanOrEqual(1);
  }
  expect(await listVersions(h.store, name)).toEqual([1, 2]);
  expect((await getAliases(h.store, name)).champion).toBe(promote.promoted ? 2 : 1);
}, 900_000);
