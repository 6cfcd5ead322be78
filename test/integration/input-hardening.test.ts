import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createS3SourceReader } from '../../activities/data/s3-source';
import { StoreConfigError } from '../../activities/store/errors';
import { S3ArtifactStore } from '../../activities/store/s3-store';
import { newRunId, startRun, workflowIdOf } from '../../cli/runs';
import { applyLocalStoreEnv, connectClient, temporalSettings } from '../../infra/config';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { tempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// Inputs that used to reach Temporal or S3 and go wrong there, on the real dev server and MinIO.

const endpoint = () => process.env.TEMPERED_TEST_S3_ENDPOINT!;

describe('a plan that skipped validation', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ queues: ['cpu'] });
  }, 60_000);
  afterAll(async () => h?.close());

  test('fails the run at once, naming the stage and the field, instead of retrying its workflow task forever', async () => {
    const plan = planPipeline(
      loadSpecText(
        `apiVersion: tempered.dev/v1
name: unvalidated
stages:
  no-timeout: { type: noop }
  no-heartbeat: { type: noop }
  fine: { type: noop }
  after-it: { type: noop, after: [no-timeout] }
`,
        path.join(os.tmpdir(), 'unvalidated.yaml'),
      ),
    );
    // What an API client could send: values `tempered validate` refuses.
    const stage = (name: string) => plan.stages.find((s) => s.name === name)!;
    stage('no-timeout').activity.startToCloseTimeoutMs = 0;
    stage('no-heartbeat').activity.heartbeatTimeoutMs = 0;
    stage('no-heartbeat').activity.retry.maximumAttempts = 0;
    const started = Date.now();
    const { workflowId } = await startRun(h.client, plan, newRunId());
    const summary = await waitForSummary(h.client, workflowId, 30_000);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(summary.status).toBe('failed');
    expect(summary.stages['no-timeout']).toMatchObject({ status: 'failed', attempts: 0 });
    expect(summary.stages['no-timeout'].error).toMatch(/^stage "no-timeout" was not scheduled, its activity options are invalid .*: timeout must be from 1s to 30d, found 0ms/);
    expect(summary.stages['no-heartbeat'].error).toMatch(/heartbeatTimeout must be from 2s to 1h, found 0ms: 0 turns lost-worker detection off.*retry\.maxAttempts must be from 1 to 100, found 0/);
    expect(summary.stages.fine.status).toBe('succeeded');
    expect(summary.stages['after-it'].status).toBe('skipped');
    // The run fails as a whole with a non-retryable failure, not a workflow task stuck in retries.
    const description = await h.client.workflow.getHandle(workflowId).describe();
    expect(description.status.name).toBe('FAILED');
  }, 60_000);
});

describe('the S3 store', () => {
  test('does not create a mistyped bucket: the write fails naming the bucket and the fix', async () => {
    const bucket = `typo-${randomBytes(4).toString('hex')}`;
    const store = new S3ArtifactStore({ bucket, endpoint: endpoint(), createBucket: false });
    try {
      const write = store.put('runs/x/a.json', '{}', 'application/json');
      await expect(write).rejects.toBeInstanceOf(StoreConfigError);
      await expect(store.put('runs/x/a.json', '{}', 'application/json')).rejects.toThrow(
        new RegExp(`S3 bucket "${bucket}" does not exist at ${endpoint()}; check TEMPERED_STORE for a typo, create the bucket .* or set TEMPERED_STORE_CREATE_BUCKET=1`),
      );
      await expect(store.client.send(new HeadBucketCommand({ Bucket: bucket }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    } finally {
      await store.close();
    }
  });

  test('creates it when asked (the local MinIO, or TEMPERED_STORE_CREATE_BUCKET=1)', async () => {
    const store = new S3ArtifactStore({ bucket: `made-${randomBytes(4).toString('hex')}`, endpoint: endpoint(), createBucket: true });
    try {
      const ref = await store.put('runs/x/a.json', '{}', 'application/json');
      expect(await store.readJson(ref)).toEqual({});
    } finally {
      await store.close();
    }
  });
});

describe('the local store settings', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  });

  test("replacing the user's AWS settings says so in one line, naming them but not their values", async () => {
    delete process.env.TEMPERED_STORE;
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIAUSERSOWNKEY', AWS_SECRET_ACCESS_KEY: 'users-own-secret', AWS_SESSION_TOKEN: 'users-own-token' });
    const lines: string[] = [];
    const described = await applyLocalStoreEnv(process.env.TEMPERED_TEST_STATE_DIR, (line) => lines.push(line));
    expect(described).toMatch(/^s3:\/\/tempered at http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/uses the local MinIO .* your AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN are ignored here\. Set TEMPERED_STORE=/);
    expect(lines[0]).not.toMatch(/users-own|AKIAUSERSOWNKEY/);
    expect(process.env.AWS_ACCESS_KEY_ID).not.toBe('AKIAUSERSOWNKEY');
    expect(process.env.AWS_SESSION_TOKEN).toBeUndefined();
    expect(process.env.TEMPERED_STORE_CREATE_BUCKET).toBe('1');
  });

  test('says nothing when nothing of the user is replaced', async () => {
    delete process.env.TEMPERED_STORE;
    delete process.env.TEMPERED_S3_ENDPOINT;
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    const lines: string[] = [];
    await applyLocalStoreEnv(process.env.TEMPERED_TEST_STATE_DIR, (line) => lines.push(line));
    expect(lines).toEqual([]);
  });
});

describe("an S3 source's own endpoint", () => {
  let server: http.Server;
  let foreign: string;
  const seen: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>p/a.txt</Key></Contents></ListBucketResult>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    foreign = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise((resolve) => server.close(resolve)));

  const listFrom = async (reader: ReturnType<typeof createS3SourceReader>, sourceEndpoint: string) => {
    const keys: string[] = [];
    for await (const object of reader.list('s3://some-bucket/p', undefined, sourceEndpoint)) keys.push(object.key);
    return keys;
  };

  test("gets unsigned requests: the worker's access key id never goes where a spec points", async () => {
    seen.length = 0;
    const reader = createS3SourceReader({ endpoint: endpoint(), signedEndpoints: [] });
    expect(await listFrom(reader, foreign)).toEqual(['p/a.txt']);
    expect(seen).toHaveLength(1);
    expect(seen[0].authorization).toBeUndefined();
    expect(JSON.stringify(seen[0])).not.toContain(process.env.AWS_ACCESS_KEY_ID!);
  });

  test('is signed only when the worker lists it', async () => {
    seen.length = 0;
    const reader = createS3SourceReader({ endpoint: endpoint(), signedEndpoints: [`${foreign}/`] });
    await listFrom(reader, foreign);
    expect(String(seen[0].authorization)).toContain(`Credential=${process.env.AWS_ACCESS_KEY_ID}/`);
  });

  test("an unsigned request a private bucket refuses says how to sign it", async () => {
    const reader = createS3SourceReader({ endpoint: 'http://127.0.0.1:1', signedEndpoints: [] });
    // The test MinIO is "foreign" to this reader: its buckets are private.
    await expect(listFrom(reader, endpoint())).rejects.toThrow(/was refused by http:\/\/127\.0\.0\.1:\d+ \(HTTP 403\) to an unsigned request.*TEMPERED_S3_SIGNED_ENDPOINTS=/);
  });
});

test('run --local polls task queues of its own process only', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-local-queue-'));
  try {
    const spec = path.join(dir, 'local.yaml');
    await writeFile(spec, 'apiVersion: tempered.dev/v1\nname: local-queue\nstages:\n  wait: { type: noop }\n');
    const runId = newRunId();
    const { code, stdout, stderr } = await tempered(['run', spec, '--local', '--json', '--run-id', runId], { TEMPERED_STORE: `file://${dir}/store` }, 180_000);
    expect({ code, stderr: code === 0 ? 'ok' : stderr }).toEqual({ code: 0, stderr: 'ok' });
    expect(JSON.parse(stdout).status).toBe('succeeded');
    const client = await connectClient(await temporalSettings());
    try {
      const description = await client.workflow.getHandle(workflowIdOf('local-queue', runId)).describe();
      expect(description.taskQueue).toMatch(/^local-[0-9a-f]{8}-cpu$/);
    } finally {
      await client.connection.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 240_000);
