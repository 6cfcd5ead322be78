import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
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

  // The pid the program wrote is its PID namespace's; find it (and its INIT) by their environment instead.
  await readFile(pidFile, 'utf8');
  const pids = processesWithEnv(`PID_FILE=${pidFile}`);
  expect(pids.length).toBeGreaterThan(0);
  expect(pids.every(isAlive)).toBe(true);
  await h.client.workflow.getHandle(workflowId).cancel();
  const summary = await waitForSummary(h.client, workflowId, 30_000);
  expect(summary.status).toBe('cancelled');
  expect(summary.stages.slow.status).toBe('cancelled');
  for (const deadline = Date.now() + 15_000; pids.some(isAlive) && Date.now() < deadline; ) await sleep(100);
  expect(pids.filter(isAlive)).toEqual([]);
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

test("the worker's secret reaches neither history, the summary nor the store, whatever the program prints", async () => {
  const secret = process.env.AWS_SECRET_ACCESS_KEY!;
  expect(secret.length).toBeGreaterThanOrEqual(8);
  // Handed to the program on purpose, as a worker operator can: the worst case for what it prints.
  process.env.TEMPERED_COMMAND_PASS_ENV = 'AWS_SECRET_ACCESS_KEY';
  try {
    const plan = planOf(`
apiVersion: tempered.dev/v1
name: command-secrets-it
defaults: { retry: { maxAttempts: 2, initialInterval: 100ms } }
stages:
  leak:
    type: command
    command:
      - ${NODE}
      - -e
      - |
        const s = process.env.AWS_SECRET_ACCESS_KEY, fs = require('fs');
        console.log('my key is ' + s);
        console.log(JSON.stringify({ tempered: 'progress', step: 1, totalSteps: 1, note: s }));
        console.log(JSON.stringify({ tempered: 'metrics', key: s }));
        if (process.env.TEMPERED_ATTEMPT === '1') { console.error('crash with ' + s); process.exit(1); }
        fs.writeFileSync(process.env.TEMPERED_OUTPUTS + '/done.txt', 'ok');
    outputs: [done.txt]
`);
    const workflowId = await start(plan);
    const summary = await waitForSummary(h.client, workflowId, 60_000);
    expect(summary.stages.leak).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(summary.stages.leak.metrics).toMatchObject({ key: '[redacted]', lastProgress: { note: '[redacted]' } });

    const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
    const kept = [historyText(history), JSON.stringify(summary)];
    const logUri = summary.stages.leak.outputs.find((o) => o.name === 'log')!.uri;
    kept.push((await download(logUri)).toString(), (await download(logUri.replace(/log\.txt$/, 'attempts/1/log.txt'))).toString());
    expect(kept[0]).toContain('crash with [redacted]'); // the first attempt's failure, in history
    expect(kept[0]).toContain('"key":"[redacted]"'); // the stage's result payload, decoded
    expect(kept[2]).toContain('my key is [redacted]');
    for (const text of kept) expect(text).not.toContain(secret);
  } finally {
    delete process.env.TEMPERED_COMMAND_PASS_ENV;
  }
});

test('a directory output reaches the store file by file and a downstream command stage as a directory', async () => {
  const plan = planOf(`
apiVersion: tempered.dev/v1
name: command-dirs-it
stages:
  save:
    type: command
    command:
      - ${NODE}
      - -e
      - |
        const fs = require('fs'), out = process.env.TEMPERED_OUTPUTS;
        fs.mkdirSync(out + '/ckpt/step-2', { recursive: true });
        fs.writeFileSync(out + '/ckpt/config.json', '{"step":2}');
        fs.writeFileSync(out + '/ckpt/step-2/weights.bin', Buffer.alloc(1000, 7));
    outputs: [ckpt/]
  load:
    type: command
    input: save
    command:
      - ${NODE}
      - -e
      - |
        const fs = require('fs'), dir = process.env.TEMPERED_INPUTS + '/save/ckpt';
        const weights = fs.readFileSync(dir + '/step-2/weights.bin');
        fs.writeFileSync(process.env.TEMPERED_OUTPUTS + '/seen.json', JSON.stringify({ config: JSON.parse(fs.readFileSync(dir + '/config.json', 'utf8')), bytes: weights.length }));
    outputs: [seen.json]
`);
  const summary = await waitForSummary(h.client, await start(plan), 60_000);
  expect(summary.status).toBe('succeeded');
  const saved = summary.stages.save.outputs;
  expect(saved.map((o) => o.name).sort()).toEqual(['ckpt/config.json', 'ckpt/step-2/weights.bin', 'log']);
  const weights = saved.find((o) => o.name === 'ckpt/step-2/weights.bin')!;
  expect(createHash('sha256').update(await download(weights.uri)).digest('hex')).toBe(weights.sha256);
  const seen = summary.stages.load.outputs.find((o) => o.name === 'seen.json')!;
  expect(JSON.parse((await download(seen.uri)).toString())).toEqual({ config: { step: 2 }, bytes: 1000 });
});

/** Every string in a workflow history, payloads decoded: what a secret would have to hide in. */
function historyText(history: unknown): string {
  const parts: string[] = [];
  const visit = (value: unknown): void => {
    if (typeof value === 'string') parts.push(value);
    else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('utf8'));
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(history);
  return parts.join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Alive and not a zombie (a namespace's orphans may linger as zombies where PID 1 does not reap). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Processes whose environment holds `entry` (`NAME=value`). */
function processesWithEnv(entry: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(entry);
      } catch {
        return false;
      }
    })
    .map(Number);
}
