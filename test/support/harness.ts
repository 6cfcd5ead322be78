import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { createStore, type ArtifactStore } from '../../activities/store';
import { connectClient, temporalSettings, type TemporalSettings } from '../../infra/config';
import { bundleWorkflows, installWorkerRuntime, startWorkers, type RunningWorkers } from '../../infra/worker';
import { getRunSummary } from '../../cli/runs';
import type { RunSummary } from '../../workflows/types';

// Integration tests: real Temporal and MinIO from globalSetup, real workers in this process.

/** A connected client, an S3 store in a fresh bucket, and workers on both queues. */
export interface Harness {
  settings: TemporalSettings;
  client: Client;
  store: ArtifactStore;
  bucket: string;
  workers: RunningWorkers;
  close(): Promise<void>;
}

let bundle: ReturnType<typeof bundleWorkflows> | undefined;

/** `queues`: the pools this process's workers poll (default both); `queuePrefix`: their names' prefix (default none); `gpus`: the gpu worker's devices (default as a worker finds them). */
export async function startHarness(options: { queues?: Array<'cpu' | 'gpu'>; queuePrefix?: string; gpus?: number | string[] } = {}): Promise<Harness> {
  installWorkerRuntime({ level: 'ERROR' }); // tests fail workflows on purpose: keep WARNs out
  const settings = await temporalSettings();
  const bucket = `t-${randomBytes(6).toString('hex')}`;
  const store = createStore({ kind: 's3', bucket, prefix: '', endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true });
  bundle ??= bundleWorkflows();
  const workers = await startWorkers({ settings, store, workflowBundle: await bundle, queues: options.queues, queuePrefix: options.queuePrefix, gpus: options.gpus });
  const client = await connectClient(settings);
  return {
    settings,
    client,
    store,
    bucket,
    workers,
    async close() {
      await client.connection.close();
      await workers.shutdown();
      await store.close();
    },
  };
}

/** Polls the run until it is no longer running. */
export async function waitForSummary(client: Client, workflowId: string, timeoutMs = 120_000): Promise<RunSummary> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const summary = await getRunSummary(client, workflowId);
    if (summary.status !== 'running') return summary;
    if (Date.now() > deadline) throw new Error(`run ${workflowId} still running after ${timeoutMs} ms: ${JSON.stringify(summary.stages)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
