import * as path from 'node:path';
import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getRunInput, getRunSummary, newRunId, startRun } from '../../cli/runs';
import { planResume } from '../../cli/resume';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline, type PlanOptions } from '../../pipelines/plan';
import { tempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// The stage cache and `resume`, on real Temporal + MinIO.

let h: Harness;
let dir: string;
beforeAll(async () => {
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-resume-'));
  for (let i = 0; i < 12; i++) await writeFile(path.join(dir, `${i}.txt`), `Document number ${i} says something different about topic ${i * 7}.`);
});
afterAll(async () => {
  await h?.close();
});

const spec = (extra = '') => `
apiVersion: tempered.dev/v1
name: resume-it
stages:
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  clean: { type: clean, input: collect }
  split: { type: split, input: clean }
  flaky: { type: noop, after: [split]${extra}, retry: { maxAttempts: 1 } }
`;

async function run(yaml: string, options: PlanOptions = {}, reuse?: Parameters<typeof startRun>[3]) {
  const plan = planPipeline(loadSpecText(yaml, path.join(dir, 'spec.yaml')), options);
  const runId = newRunId();
  const { workflowId } = await startRun(h.client, plan, runId, reuse);
  return { runId, workflowId, plan, summary: await waitForSummary(h.client, workflowId) };
}

const s3 = () => new S3Client({ endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1' });

test('an identical stage is served from the cache, verified; --no-cache computes everything', async () => {
  const first = await run(spec());
  expect(first.summary.status).toBe('succeeded');
  const second = await run(spec());
  for (const name of ['collect', 'clean', 'split', 'flaky']) {
    expect(second.summary.stages[name]).toMatchObject({ status: 'cached', cached: true, cachedFrom: first.runId });
    expect(second.summary.stages[name].outputs).toEqual(first.summary.stages[name].outputs);
  }
  const fresh = await run(spec(), { noCache: true });
  expect(Object.values(fresh.summary.stages).map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
});

test('a corrupted artifact is not reused: the stage recomputes it and says why', async () => {
  const first = await run(spec(', sleepMs: 1'));
  const cleaned = first.summary.stages.clean.outputs[0];
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(cleaned.uri)!;
  const client = s3();
  const body = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
  body[Math.floor(body.length / 2)] ^= 0x01; // one flipped bit
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  client.destroy();

  const again = await run(spec(', sleepMs: 1'));
  expect(again.summary.stages.collect.status).toBe('cached');
  expect(again.summary.stages.clean.status).toBe('succeeded');
  expect(again.summary.stages.clean.metrics.cacheMiss).toMatch(/failed verification .*sha256/);
  expect(again.summary.stages.clean.outputs[0].sha256).toBe(cleaned.sha256); // recomputed, same bytes
  expect(again.summary.stages.clean.outputs[0].uri).not.toBe(cleaned.uri);
});

test('resume after a failure reuses finished stages and runs only the failed one', async () => {
  const failed = await run(spec(', failAttempts: 1, sleepMs: 2'), { noCache: true });
  expect(failed.summary.status).toBe('failed');
  expect(failed.summary.stages.flaky.status).toBe('failed');

  const dry = await tempered(['resume', failed.runId, '--dry-run', '--spec', path.join(dir, 'fixed.yaml')], {}).catch((e) => e);
  expect(dry.code).toBe(2); // fixed.yaml does not exist yet: named, nothing started
  await writeFile(path.join(dir, 'fixed.yaml'), spec(', sleepMs: 2'));
  const printed = await tempered(['resume', failed.runId, '--dry-run', '--spec', path.join(dir, 'fixed.yaml')], { TEMPERED_STORE: `s3://${h.bucket}` });
  expect(printed.code).toBe(0);
  expect(printed.stderr).toMatch(/reuse\s+collect\s+succeeded in run/);
  expect(printed.stderr).toMatch(/run\s+flaky\s+its spec changed/);

  const previous = await getRunInput(h.client, failed.workflowId);
  const fixed = planPipeline(loadSpecText(spec(', sleepMs: 2'), path.join(dir, 'spec.yaml')), { noCache: true });
  const { reuse } = planResume({ plan: previous.plan, summary: await getRunSummary(h.client, failed.workflowId) }, fixed);
  const resumed = await run(spec(', sleepMs: 2'), { noCache: true }, reuse);
  expect(resumed.summary.status).toBe('succeeded');
  for (const name of ['collect', 'clean', 'split']) {
    expect(resumed.summary.stages[name]).toMatchObject({ status: 'cached', cachedFrom: failed.runId });
    expect(resumed.summary.stages[name].outputs).toEqual(failed.summary.stages[name].outputs);
  }
  expect(resumed.summary.stages.flaky).toMatchObject({ status: 'succeeded', attempts: 1 });
});

test('an artifact corrupted between stages: the consumer fails naming it, and resume recomputes it and completes', async () => {
  const yaml = `
apiVersion: tempered.dev/v1
name: corrupt-it
stages:
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  pause: { type: noop, after: [collect], sleepMs: 4000 }
  clean: { type: clean, input: collect, after: [pause], retry: { maxAttempts: 3 } }
`;
  const plan = planPipeline(loadSpecText(yaml, path.join(dir, 'spec.yaml')), { noCache: true });
  const runId = newRunId();
  const { workflowId } = await startRun(h.client, plan, runId);
  let collected: { uri: string; sha256: string } | undefined;
  for (let i = 0; i < 200 && !collected; i++) {
    const s = await getRunSummary(h.client, workflowId);
    collected = s.stages.collect.outputs[0];
    if (!collected) await new Promise((r) => setTimeout(r, 100));
  }
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(collected!.uri)!;
  const client = s3();
  const body = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
  body[0] ^= 0x20;
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  client.destroy();

  const failed = await waitForSummary(h.client, workflowId);
  expect(failed.status).toBe('failed');
  expect(failed.stages.clean).toMatchObject({ status: 'failed', attempts: 1 });
  expect(failed.stages.clean.error).toContain(collected!.uri);
  expect(failed.stages.clean.error).toMatch(/sha256/);

  const { reuse, decisions } = planResume({ plan, summary: failed }, plan);
  expect(decisions.find((d) => d.stage === 'collect')!.action).toBe('reuse');
  const resumed = await run(yaml, { noCache: true }, reuse);
  expect(resumed.summary.status).toBe('succeeded');
  // the corrupted artifact failed verification, so collect was recomputed rather than reused
  expect(resumed.summary.stages.collect.status).toBe('succeeded');
  expect(resumed.summary.stages.collect.metrics.cacheMiss).toMatch(/failed verification/);
  expect(resumed.summary.stages.collect.outputs[0].sha256).toBe(collected!.sha256);
  expect(resumed.summary.stages.pause.status).toBe('cached');
});
