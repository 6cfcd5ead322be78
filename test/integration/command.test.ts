import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadSpecFile, loadSpecText } from '../../pipelines/load';
import { planPipeline, type Plan } from '../../pipelines/plan';
import { getRunSummary, newRunId, startRun } from '../../cli/runs';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// The `command` stage on the real Temporal dev server and MinIO, with workers in this process:
// the shipped bring-your-own-trainer example (needs python3 on PATH), then the protocol's
// heartbeats, cancellation and failure classification with small Node programs.

const NODE = JSON.stringify(process.execPath);

let h: Harness;
let s3: S3Client;
let dir: string;

beforeAll(async () => {
  h = await startHarness();
  s3 = new S3Client({ endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1' });
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-command-it-'));
});

afterAll(async () => {
  s3?.destroy();
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function start(plan: Plan) {
  const { workflowId } = await startRun(h.client, plan, newRunId());
  return workflowId;
}

const planOf = (yaml: string): Plan => planPipeline(loadSpecText(yaml, path.join(dir, 'spec.yaml')));

async function download(uri: string): Promise<Buffer> {
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri)!;
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

test('the byo-trainer example trains a spam classifier in Python, end to end', async () => {
  const plan = planPipeline(await loadSpecFile(path.join(__dirname, '../../pipelines/examples/byo-trainer.yaml')));
  const summary = await waitForSummary(h.client, await start(plan), 180_000);
  expect(summary.stages.train.error).toBeUndefined();
  expect(summary.status).toBe('succeeded');

  const train = summary.stages.train;
  expect(train.outputs.map((o) => o.name).sort()).toEqual(['curves', 'log', 'metrics.json', 'model.json']);
  // its progress lines became the loss curve
  expect(train.metrics.curve).toMatchObject({ points: expect.any(Number), last: { loss: expect.any(Number) } });
  const output = (name: string) => train.outputs.find((o) => o.name === name)!;
  const model = await download(output('model.json').uri);
  expect(model.length).toBe(output('model.json').bytes);
  expect(createHash('sha256').update(model).digest('hex')).toBe(output('model.json').sha256);
  const parsed = JSON.parse(model.toString('utf8')) as { type: string; positiveLabel: string; weights: Record<string, number> };
  expect(parsed).toMatchObject({ type: 'logistic-regression', positiveLabel: 'spam' });
  expect(Object.keys(parsed.weights).length).toBeGreaterThan(1000);

  // The script's metrics line became stage metrics; a majority-class guess scores ~0.71 on this split.
  const metrics = train.metrics as Record<string, number> & { lastProgress: Record<string, number> };
  expect(metrics.accuracy).toBeGreaterThan(0.85);
  expect(metrics.f1).toBeGreaterThan(0.7);
  expect(metrics.exitCode).toBe(0);
  expect(metrics.inputFiles).toBe(3); // train, validation, test
  expect(JSON.parse((await download(output('metrics.json').uri)).toString())).toMatchObject({ accuracy: metrics.accuracy, f1: metrics.f1 });
  // Its progress lines reached the stage (the heartbeat itself is observed in the next test).
  expect(metrics.progressLines).toBeGreaterThan(10);
  expect(metrics.lastProgress.step).toBe(metrics.lastProgress.totalSteps);
  const log = (await download(output('log').uri)).toString();
  expect(log).toMatch(/^epoch 10: validation loss/m);
});

test("a program's progress lines show in the heartbeat, and cancelling the run stops the program", async () => {
  const pidFile = path.join(dir, 'pid');
  const plan = planOf(`
apiVersion: tempered.dev/v1
name: command-cancel-it
stages:
  slow:
    type: command
    command:
      - ${NODE}
      - -e
      - |
        require('fs').writeFileSync(process.env.PID_FILE, String(process.pid));
        let step = 0;
        setInterval(() => console.log(JSON.stringify({ tempered: 'progress', step: ++step, totalSteps: 100000, loss: 1 / step })), 100);
    env: { PID_FILE: ${JSON.stringify(pidFile)} }
    heartbeatTimeout: 2s
`);
  const workflowId = await start(plan);
  let heartbeat: { phase?: string; step?: number; totalSteps?: number } | undefined;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(200)) {
    const hb = (await getRunSummary(h.client, workflowId)).stages.slow?.heartbeat as typeof heartbeat;
    if (typeof hb?.step === 'number' && hb.step > 0) {
      heartbeat = hb;
      break;
    }
  }
  expect(heartbeat).toMatchObject({ phase: 'running', totalSteps: 100000 });

  const pid = Number(await readFile(pidFile, 'utf8'));
  expect(isAlive(pid)).toBe(true);
  await h.client.workflow.getHandle(workflowId).cancel();
  const summary = await waitForSummary(h.client, workflowId, 30_000);
  expect(summary.status).toBe('cancelled');
  expect(summary.stages.slow.status).toBe('cancelled');
  for (const deadline = Date.now() + 15_000; isAlive(pid) && Date.now() < deadline; ) await sleep(100);
  expect(isAlive(pid)).toBe(false);
});

test('a failing program is retried; a program that skips a declared output fails at once', async () => {
  const plan = planOf(`
apiVersion: tempered.dev/v1
name: command-failures-it
defaults: { retry: { maxAttempts: 3, initialInterval: 100ms } }
stages:
  flaky:
    type: command
    command:
      - ${NODE}
      - -e
      - |
        if (process.env.TEMPERED_ATTEMPT === '1') { console.error('CUDA error: an illegal memory access was encountered'); process.exit(1); }
        require('fs').writeFileSync(process.env.TEMPERED_OUTPUTS + '/result.txt', 'ok');
    outputs: [result.txt]
  forgetful:
    type: command
    command: [${NODE}, -e, "console.log('done, I think')"]
    outputs: [model.json]
`);
  const summary = await waitForSummary(h.client, await start(plan), 60_000);
  expect(summary.stages.flaky).toMatchObject({ status: 'succeeded', attempts: 2 });
  expect((await download(summary.stages.flaky.outputs.find((o) => o.name === 'result.txt')!.uri)).toString()).toBe('ok');
  // the failed first attempt left its log, with the error, beside the outputs
  const logUri = summary.stages.flaky.outputs.find((o) => o.name === 'log')!.uri;
  expect((await download(logUri.replace(/log\.txt$/, 'attempts/1/log.txt'))).toString()).toMatch(/CUDA error/);
  expect(summary.stages.forgetful).toMatchObject({ status: 'failed', attempts: 1 });
  expect(summary.stages.forgetful.error).toMatch(/did not write declared output "model.json"/);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
