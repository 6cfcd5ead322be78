import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { newRunId, startRun } from '../../cli/runs';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// A real pipeline on the real Temporal dev server and MinIO, with workers in this process.

let h: Harness;
let dataDir: string;

beforeAll(async () => {
  h = await startHarness();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tempered-data-'));
  const mails = Array.from({ length: 60 }, (_, i) => ({
    file: `${i % 3 === 0 ? 'spam' : 'ham'}-1/${String(i).padStart(3, '0')}.txt`,
    text: `Subject: message ${i}\n\nHello number ${i}, ${i % 3 === 0 ? 'win a prize now' : 'meeting notes attached'} ${'lorem ipsum '.repeat(i % 7)}; write to user${i}@example.com`,
  }));
  for (const { file, text } of mails) {
    await import('node:fs/promises').then((fs) => fs.mkdir(path.join(dataDir, path.dirname(file)), { recursive: true }));
    await writeFile(path.join(dataDir, file), text);
  }
});

afterAll(async () => {
  await h?.close();
});

async function run(yaml: string) {
  const plan = planPipeline(loadSpecText(yaml, path.join(dataDir, 'spec.yaml')));
  const runId = newRunId();
  const { workflowId } = await startRun(h.client, plan, runId);
  return { summary: await waitForSummary(h.client, workflowId), workflowId, runId, plan };
}

test('a data pipeline completes and its outputs in MinIO match their sha256', async () => {
  const { summary } = await run(`
apiVersion: tempered.dev/v1
name: data-it
stages:
  collect:
    type: collect
    sources: [{ path: "*/*.txt" }]
    labelFromPath: "(?<label>ham|spam)-\\\\d+/"
  clean:
    type: clean
    input: collect
    stripMailHeaders: true
  split:
    type: split
    input: clean
  augment:
    type: augment
    input: split
`);
  expect(summary.status).toBe('succeeded');
  expect(Object.values(summary.stages).map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
  expect(summary.stages.collect.metrics.records).toBe(60);
  expect(summary.stages.split.outputs.map((o) => o.name).sort()).toEqual(['test', 'train', 'validation']);
  // augment passes validation/test through untouched and adds copies to train only
  expect(summary.stages.augment.outputs.find((o) => o.name === 'test')!.sha256).toBe(summary.stages.split.outputs.find((o) => o.name === 'test')!.sha256);
  const train = summary.stages.augment.outputs.find((o) => o.name === 'train')!;
  expect(train.bytes).toBeGreaterThan(summary.stages.split.outputs.find((o) => o.name === 'train')!.bytes);

  const s3 = new S3Client({ endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1' });
  for (const stage of Object.values(summary.stages)) {
    for (const output of stage.outputs) {
      const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(output.uri)!;
      const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
      expect(body.length).toBe(output.bytes);
      expect(createHash('sha256').update(body).digest('hex')).toBe(output.sha256);
    }
  }
  // sensitive data was redacted before anything was stored downstream of clean
  const cleaned = summary.stages.clean.outputs[0];
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(cleaned.uri)!;
  const text = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
  expect(text).not.toMatch(/@example\.com/);
  s3.destroy();
});

test('bad input fails the run at once, without retries', async () => {
  const started = Date.now();
  const { summary } = await run(`
apiVersion: tempered.dev/v1
name: bad-input-it
defaults: { retry: { maxAttempts: 5, initialInterval: 2s } }
stages:
  collect:
    type: collect
    sources: [{ path: "no-such-dir/*.txt" }]
  clean:
    type: clean
    input: collect
`);
  expect(summary.status).toBe('failed');
  expect(summary.stages.collect.status).toBe('failed');
  expect(summary.stages.collect.attempts).toBe(1);
  expect(summary.stages.collect.error).toMatch(/no-such-dir/);
  expect(summary.stages.clean.status).toBe('skipped');
  // five attempts 2 s apart would take > 8 s
  expect(Date.now() - started).toBeLessThan(8000);
});

test('a transient failure is retried per the stage policy', async () => {
  const { summary } = await run(`
apiVersion: tempered.dev/v1
name: retry-it
stages:
  recovers:
    type: noop
    failAttempts: 2
    retry: { maxAttempts: 3, initialInterval: 100ms }
  gives-up:
    type: noop
    failAttempts: 5
    retry: { maxAttempts: 2, initialInterval: 100ms }
`);
  expect(summary.stages.recovers.status).toBe('succeeded');
  expect(summary.stages.recovers.attempts).toBe(3);
  expect(summary.stages['gives-up'].status).toBe('failed');
  expect(summary.stages['gives-up'].attempts).toBe(2);
  expect(summary.stages['gives-up'].error).toMatch(/injected transient failure on attempt 2/);
  expect(summary.status).toBe('failed');
});

test('independent stages run in parallel', async () => {
  const { summary } = await run(`
apiVersion: tempered.dev/v1
name: parallel-it
stages:
  left: { type: noop, sleepMs: 1500 }
  right: { type: noop, sleepMs: 1500 }
  join: { type: noop, after: [left, right] }
`);
  expect(summary.status).toBe('succeeded');
  const span = (name: string) => [Date.parse(summary.stages[name].startedAt!), Date.parse(summary.stages[name].endedAt!)];
  const [l0, l1] = span('left');
  const [r0, r1] = span('right');
  expect(Math.max(l0, r0)).toBeLessThan(Math.min(l1, r1)); // the intervals overlap
  expect(span('join')[0]).toBeGreaterThanOrEqual(Math.max(l1, r1));
});

test('starting a running run id again attaches instead of starting a second run', async () => {
  const plan = planPipeline(loadSpecText(`
apiVersion: tempered.dev/v1
name: attach-it
stages:
  wait: { type: noop, sleepMs: 2000 }
`, path.join(dataDir, 'spec.yaml')));
  const runId = newRunId();
  const first = await startRun(h.client, plan, runId);
  const second = await startRun(h.client, plan, runId);
  expect(first.attached).toBe(false);
  expect(second).toEqual({ workflowId: first.workflowId, attached: true });
  const summary = await waitForSummary(h.client, first.workflowId);
  expect(summary.status).toBe('succeeded');
  const executions = [];
  for await (const e of h.client.workflow.list({ query: `WorkflowId = '${first.workflowId}'` })) executions.push(e);
  expect(executions).toHaveLength(1);
});

test('cancelling a run cancels its running stage', async () => {
  const plan = planPipeline(loadSpecText(`
apiVersion: tempered.dev/v1
name: cancel-it
stages:
  long: { type: noop, sleepMs: 120000, heartbeatTimeout: 3s }
  after-long: { type: noop, after: [long] }
`, path.join(dataDir, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const handle = h.client.workflow.getHandle(workflowId);
  for (let i = 0; i < 100; i++) {
    const progress = await handle.query('progress') as { stages: Record<string, { status: string }> };
    if (progress.stages.long.status === 'running') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const cancelledAt = Date.now();
  await handle.cancel();
  const summary = await waitForSummary(h.client, workflowId, 30_000);
  expect(summary.status).toBe('cancelled');
  expect(summary.stages.long.status).toBe('cancelled');
  expect(summary.stages['after-long'].status).toBe('cancelled');
  expect(Date.now() - cancelledAt).toBeLessThan(15_000); // not the 120 s the stage would have slept
});

test('collect reads an S3 prefix', async () => {
  await h.store.put('sources/mail/ham-1/a.txt', 'A perfectly ordinary message about the quarterly meeting.', 'text/plain');
  await h.store.put('sources/mail/spam-1/b.txt', 'Congratulations, you have won a prize, claim it now.', 'text/plain');
  await h.store.put('sources/mail/notes.md', 'not selected by the include glob', 'text/markdown');
  const { summary } = await run(`
apiVersion: tempered.dev/v1
name: s3-collect-it
stages:
  collect:
    type: collect
    sources: [{ s3: "s3://${h.bucket}/sources/mail/", include: "**/*.txt" }]
    labelFromPath: "(?<label>ham|spam)-\\\\d+/"
`);
  expect(summary.status).toBe('succeeded');
  expect(summary.stages.collect.metrics).toMatchObject({ records: 2, labels: { ham: 1, spam: 1 } });
});
