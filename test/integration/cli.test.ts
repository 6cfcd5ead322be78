import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { RunSummary } from '../../workflows/types';
import { spawnTempered, tempered } from '../support/cli';

// The tempered command end to end, as separate processes, on the real servers from globalSetup.

let dir: string;
let env: NodeJS.ProcessEnv;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-cli-'));
  env = { TEMPERED_STORE: `s3://cli-${randomBytes(4).toString('hex')}` };
  await writeFile(path.join(dir, 'a.txt'), 'The first document has enough words to survive cleaning.');
  await writeFile(path.join(dir, 'b.txt'), 'A second, different document about whales and ships at sea.');
  await writeFile(
    path.join(dir, 'data.yaml'),
    `apiVersion: tempered.dev/v1
name: cli-data
stages:
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  clean: { type: clean, input: collect }
`,
  );
  await writeFile(
    path.join(dir, 'routed.yaml'),
    `apiVersion: tempered.dev/v1
name: cli-routed
stages:
  prepare: { type: noop }
  train: { type: noop, after: [prepare], resources: { gpu: 1 }, sleepMs: 200 }
`,
  );
  await writeFile(
    path.join(dir, 'slow.yaml'),
    `apiVersion: tempered.dev/v1
name: cli-slow
stages:
  wait: { type: noop, sleepMs: 60000, resources: { gpu: 1 }, heartbeatTimeout: 5s }
`,
  );
});

afterAll(async () => {
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('close', r)))));
});

test('run --local --json prints the summary; status and list find the run', async () => {
  const result = await tempered(['run', path.join(dir, 'data.yaml'), '--local', '--json'], env);
  expect(result.code).toBe(0);
  const summary = JSON.parse(result.stdout) as RunSummary;
  expect(summary).toMatchObject({ pipeline: 'cli-data', status: 'succeeded', workflowId: `cli-data--${summary.runId}` });
  expect(Object.keys(summary.stages)).toEqual(['collect', 'clean']);
  for (const stage of Object.values(summary.stages)) {
    expect(stage).toMatchObject({ status: 'succeeded', attempts: 1, cached: false });
    expect(stage.outputs[0].uri).toMatch(new RegExp(`^${env.TEMPERED_STORE}/runs/cli-data/${summary.runId}/`));
    expect(stage.outputs[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(stage.outputs[0].bytes).toBeGreaterThan(0);
  }
  expect(summary.stages.collect.metrics.records).toBe(2);

  const status = await tempered(['status', summary.runId, '--json'], env);
  expect(status.code).toBe(0);
  expect(JSON.parse(status.stdout)).toEqual(summary);

  const list = await tempered(['list', '--json'], env);
  expect((JSON.parse(list.stdout) as Array<{ runId: string }>).map((r) => r.runId)).toContain(summary.runId);
});

test('run warns when no worker polls a queue it needs, and cancel stops the run', async () => {
  // Queues of their own: other tests' workers polled the unprefixed ones on this server.
  const isolated = { ...env, TEMPERED_TASK_QUEUE_PREFIX: `cancel-${randomBytes(3).toString('hex')}-` };
  const started = await tempered(['run', path.join(dir, 'slow.yaml')], isolated);
  expect(started.code).toBe(0);
  expect(started.stderr).toMatch(/no worker polls the "cancel-\w+-cpu" queue.*tempered worker --queue cpu/);
  expect(started.stderr).toMatch(/no worker polls the "cancel-\w+-gpu" queue.*tempered worker --queue gpu/);
  const runId = started.stdout.trim();

  // No worker yet: the request is recorded, and cancel says the run has not ended and why.
  const cancelled = await tempered(['cancel', runId, '--wait', '0'], isolated);
  expect(cancelled.code).toBe(1);
  expect(cancelled.stdout).toMatch(/still running after 0 s: no worker polls task queue "cancel-\w+-cpu"/);
  // The workflow task runs when a worker comes; cancellation is then delivered at once.
  const gpu = spawnTempered(['worker', '--queue', 'all'], isolated);
  workers.push(gpu);
  let status: RunSummary | undefined;
  for (let i = 0; i < 100 && status?.status !== 'cancelled'; i++) {
    await new Promise((r) => setTimeout(r, 300));
    status = JSON.parse((await tempered(['status', runId, '--json'], isolated)).stdout) as RunSummary;
  }
  expect(status?.status).toBe('cancelled');
  gpu.kill('SIGTERM');
});

test('separate worker processes per queue: gpu stages run on the gpu worker', async () => {
  const cpu = spawnTempered(['worker', '--queue', 'cpu'], env);
  const gpu = spawnTempered(['worker', '--queue', 'gpu'], env);
  workers.push(cpu, gpu);
  const result = await tempered(['run', path.join(dir, 'routed.yaml'), '--json'], env);
  expect(result.code).toBe(0);
  const summary = JSON.parse(result.stdout) as RunSummary;
  expect(summary.status).toBe('succeeded');
  const ranOn = (stage: string) => summary.stages[stage].metrics.worker as { taskQueue: string; identity: string };
  expect(ranOn('prepare').taskQueue).toBe('cpu');
  expect(ranOn('train').taskQueue).toBe('gpu');
  expect(ranOn('train').identity).not.toBe(ranOn('prepare').identity);
  expect(ranOn('train').identity).toBe(`${gpu.pid}@${os.hostname()}`);
});
