import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { getRunSummary, newRunId, startRun } from '../../cli/runs';
import { formatSummary } from '../../cli/format';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// GPU slots on a multi-GPU worker, on the real Temporal dev server and MinIO, without a GPU: the
// gpu worker is told it has devices 0,1,2 (TEMPERED_GPUS=0,1,2), and command stages print the
// CUDA_VISIBLE_DEVICES they were given.

const NODE = JSON.stringify(process.execPath);
// Own queues: other test files' workers (one device by default) must not take these stages.
const PREFIX = `gpu-slots-${randomBytes(3).toString('hex')}-`;

let h: Harness;
let s3: S3Client;
let dir: string;

beforeAll(async () => {
  const saved = process.env.TEMPERED_GPUS;
  process.env.TEMPERED_GPUS = '0,1,2';
  try {
    h = await startHarness({ queuePrefix: PREFIX });
  } finally {
    if (saved === undefined) delete process.env.TEMPERED_GPUS;
    else process.env.TEMPERED_GPUS = saved;
  }
  s3 = new S3Client({ endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1' });
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-gpu-slots-it-'));
});

afterAll(async () => {
  s3?.destroy();
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function start(yaml: string): Promise<string> {
  const plan = planPipeline(loadSpecText(yaml, path.join(dir, 'spec.yaml')), { queuePrefix: PREFIX });
  return (await startRun(h.client, plan, newRunId())).workflowId;
}

async function devicesOf(uri: string): Promise<string> {
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri)!;
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray()).toString();
}

/** A command stage that writes its CUDA_VISIBLE_DEVICES, marks itself started, and holds its devices until the test releases them. */
const holder = (name: string, gpus: number) => `
  ${name}:
    type: command
    resources: { gpu: ${gpus} }
    command:
      - ${NODE}
      - -e
      - |
        const fs = require('fs'), dir = process.env.GATE_DIR;
        fs.writeFileSync(process.env.TEMPERED_OUTPUTS + '/devices.txt', process.env.CUDA_VISIBLE_DEVICES ?? 'unset');
        fs.writeFileSync(dir + '/${name}.started', '');
        const until = Date.now() + 60000;
        const wait = () => (fs.existsSync(dir + '/release') || Date.now() > until ? process.exit(0) : setTimeout(wait, 50));
        wait();
    env: { GATE_DIR: ${JSON.stringify(dir)} }
    outputs: [devices.txt]`;

test('concurrent stages hold disjoint devices; a 2-GPU stage waits for 2 free and says so', async () => {
  const workflowId = await start(`
apiVersion: tempered.dev/v1
name: gpu-slots-it
stages:${holder('a', 1)}${holder('b', 1)}
  both-started:
    type: command
    command:
      - ${NODE}
      - -e
      - |
        const fs = require('fs'), dir = process.env.GATE_DIR, until = Date.now() + 60000;
        const wait = () => (fs.existsSync(dir + '/a.started') && fs.existsSync(dir + '/b.started') ? process.exit(0) : Date.now() > until ? process.exit(1) : setTimeout(wait, 50));
        wait();
    env: { GATE_DIR: ${JSON.stringify(dir)} }
${holder('pair', 2).replace('resources:', 'after: [both-started]\n    resources:')}
`);
  // a and b run at once (each holds a device); pair, asking for 2 with 1 free, waits and says so.
  let waiting: unknown;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && !waiting; await sleep(200)) {
    const summary = await getRunSummary(h.client, workflowId);
    const phase = (summary.stages.pair?.heartbeat as { phase?: string } | undefined)?.phase;
    if (phase?.startsWith('waiting')) waiting = phase;
    if (summary.status !== 'running') break;
  }
  expect(waiting).toBe('waiting for 2 GPUs (1 of 3 free on this worker)');
  expect(existsSync(path.join(dir, 'pair.started'))).toBe(false);
  await writeFile(path.join(dir, 'release'), '');

  const summary = await waitForSummary(h.client, workflowId, 60_000);
  expect(summary.status).toBe('succeeded');
  const devices = async (stage: string) => devicesOf(summary.stages[stage].outputs.find((o) => o.name === 'devices.txt')!.uri);
  const [a, b, pair] = [await devices('a'), await devices('b'), await devices('pair')];
  expect([a, b].sort()).toEqual(['0', '1']);
  // Granted as soon as a or b gave its device back: two distinct devices of the worker's three.
  expect(pair).toMatch(/^[012],[012]$/);
  expect(new Set(pair.split(',')).size).toBe(2);
  expect(summary.stages.pair.metrics.worker).toMatchObject({ taskQueue: `${PREFIX}gpu`, devices: pair });
});

test('a stage asking for more GPUs than the worker has fails each attempt, retryably, naming the worker\'s devices', async () => {
  const workflowId = await start(`
apiVersion: tempered.dev/v1
name: gpu-slots-too-big-it
stages:
  big:
    type: command
    resources: { gpu: 4 }
    retry: { maxAttempts: 2, initialInterval: 3s }
    command: [${NODE}, -e, "console.log(process.env.CUDA_VISIBLE_DEVICES)"]
`);
  // Between attempts, status says why the stage does not run.
  let shown = '';
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && !shown; await sleep(200)) {
    const summary = await getRunSummary(h.client, workflowId);
    if (summary.waiting) shown = formatSummary(summary);
    if (summary.status !== 'running') break;
  }
  expect(shown).toMatch(/waiting: stage "big" waits for a gpu worker with enough GPUs; the last attempt's worker had too few: stage "big" \(command\): asks for 4 GPUs/);
  expect(shown).toMatch(/big {2}queued {2}last attempt: stage "big" \(command\): asks for 4 GPUs \(resources.gpu: 4\) but this worker has 3 \(devices 0,1,2\)/);

  const summary = await waitForSummary(h.client, workflowId, 30_000);
  expect(summary.stages.big).toMatchObject({ status: 'failed', attempts: 2 });
  expect(summary.stages.big.error).toMatch(
    /asks for 4 GPUs \(resources.gpu: 4\) but this worker has 3 \(devices 0,1,2\); the attempt is retried so that a gpu worker with at least 4 GPUs can take it/,
  );
});
