import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readCurves } from '../../activities/curves';
import { getRunSummary, newRunId, startRun } from '../../cli/runs';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../../infra/python-env';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { spawnTempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// The torch engine under a lost worker: the GPU worker process running a torch fine-tune is
// SIGKILLed. Its Python process ends too (it watches its parent); a new worker resumes from the
// checkpoint in the store and ends with the weights of an uninterrupted run; upstream stages ran once.

let h: Harness;
let env: NodeJS.ProcessEnv;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  const python = (await ensurePythonEnv()).python;
  h = await startHarness({ queues: ['cpu'] }); // workflows and data stages here; training in child processes
  env = { TEMPERED_STORE: `s3://${h.bucket}` };
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-loss-'));
  await promisify(execFile)(python, [path.join(PYTHON_DIR, 'tests', 'tiny_base.py'), path.join(dir, 'tiny-base')], { env: pythonRunEnv() });
  for (let i = 0; i < 60; i++) {
    const spam = i % 3 === 0;
    await mkdir(path.join(dir, 'mail', spam ? 'spam' : 'ham'), { recursive: true });
    await writeFile(path.join(dir, 'mail', spam ? 'spam' : 'ham', `${i}.txt`), `${spam ? 'win free money prize now offer' : 'meeting notes attached team lunch report'} ${'the a '.repeat(i % 7)} ${i}`);
  }
}, 1_800_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await h?.close();
});

const spec = (name: string) => `
apiVersion: tempered.dev/v1
name: ${name}
seed: 13
defaults: { cache: false } # both runs must compute: the second is compared with the first
stages:
  collect: { type: collect, sources: [{ path: "mail/*/*.txt" }], labelFromPath: "(?<label>ham|spam)/" }
  split: { type: split, input: collect }
  train:
    type: finetune
    input: split
    base: tiny-base
    objective: classify
    steps: 400
    batchSize: 8
    maxLength: 24
    validateEvery: 100
    checkpointEvery: 25
    heartbeatTimeout: 4s
    retry: { initialInterval: 200ms }
    resources: { gpu: 1 }
`;

function gpuWorker(): ChildProcess {
  const child = spawnTempered(['worker', '--queue', 'gpu'], env);
  children.push(child);
  return child;
}

test('a worker SIGKILLed mid-training: the torch stage resumes from its checkpoint and ends with identical weights', async () => {
  const first = gpuWorker();
  const start = async (name: string) => {
    const plan = planPipeline(loadSpecText(spec(name), path.join(dir, 'spec.yaml')));
    return (await startRun(h.client, plan, newRunId())).workflowId;
  };
  const reference = await waitForSummary(h.client, await start(`tloss-ref-${randomBytes(2).toString('hex')}`), 600_000);
  expect(reference.status).toBe('succeeded');

  const workflowId = await start(`tloss-kill-${randomBytes(2).toString('hex')}`);
  let killedAt = 0;
  for (let i = 0; i < 6000 && killedAt === 0; i++) {
    const hb = (await getRunSummary(h.client, workflowId)).stages.train.heartbeat as { step?: number; checkpointStep?: number } | undefined;
    if (typeof hb?.checkpointStep === 'number' && hb.checkpointStep >= 50 && typeof hb.step === 'number' && hb.step < 380) {
      killedAt = hb.step;
      first.kill('SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(killedAt).toBeGreaterThan(0);
  gpuWorker();
  const summary = await waitForSummary(h.client, workflowId, 600_000);
  expect(summary.status).toBe('succeeded');
  const train = summary.stages.train;
  expect(train.attempts).toBe(2);
  const resumedFrom = train.metrics.resumedFromStep as number;
  expect(resumedFrom).toBeGreaterThanOrEqual(50);
  expect(killedAt - resumedFrom).toBeLessThanOrEqual(25 + 25); // at most about one checkpoint interval lost
  for (const stage of ['collect', 'split']) expect(summary.stages[stage].attempts).toBe(1);

  const weights = (s: typeof summary) => s.stages.train.outputs.find((o) => o.name === 'hf/model.safetensors')!.sha256;
  expect(weights(summary)).toBe(weights(reference));
  const curveOf = async (s: typeof summary) => readCurves(h.store, { ...s.stages.train.outputs.find((o) => o.name === 'curves')!, mediaType: 'application/jsonl' });
  expect((await curveOf(summary)).map((p) => p.step)).toEqual((await curveOf(reference)).map((p) => p.step));
  process.stderr.write(`[torch-worker-loss] killed at step ${killedAt}, resumed from ${resumedFrom}\n`);
}, 1_200_000);
