import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import * as os from 'node:os';
import type { ChildProcess } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { ArtifactRef, RunSummary, StageManifest } from '../../workflows/types';
import type { ArtifactStore } from '../../activities/store';
import { readServers, startServer } from '../../infra/servers';
import { getRunSummary } from '../../cli/runs';
import { spawnTempered } from './cli';

// Helpers of the fault-injection tests (test/integration/faults.test.ts): worker processes that can
// be SIGKILLed, the server's view of a running stage, fault-tolerant polling, artifact read-back.

/** A `tempered worker` child process. Its Temporal worker identity is `<pid>@<hostname>`. */
export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  identity: string;
  /** Resolves once the worker polls; rejects if it exits first. */
  ready: Promise<void>;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** The last lines it printed (for failure messages). */
  output(): string;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const workers = new Set<WorkerProcess>();

/** Starts `tempered worker --queue <queue>` with `env` (TEMPERED_STORE, TEMPERED_TASK_QUEUE_PREFIX). */
export function startWorkerProcess(env: NodeJS.ProcessEnv, queue: 'cpu' | 'gpu' | 'all' = 'cpu'): WorkerProcess {
  const child = spawnTempered(['worker', '--queue', queue], env);
  const lines: string[] = [];
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve((exit = { code, signal }))),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim()) lines.push(line);
      if (lines.length > 200) lines.splice(0, lines.length - 200);
      if (/worker polling/.test(d.toString())) resolve();
    };
    // Always drain both pipes: a full pipe would block the worker.
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(({ code, signal }) => reject(new Error(`worker ${child.pid} exited (${signal ?? code}) before polling:\n${lines.join('\n')}`)));
  });
  ready.catch(() => undefined); // observed by whoever awaits it
  const handle: WorkerProcess = {
    child,
    pid: child.pid!,
    identity: `${child.pid}@${os.hostname()}`,
    ready,
    exited,
    alive: () => exit === undefined,
    output: () => lines.join('\n'),
    async kill(signal = 'SIGKILL') {
      if (exit === undefined) child.kill(signal);
      await exited;
      workers.delete(handle);
    },
  };
  workers.add(handle);
  return handle;
}

/** SIGKILLs every worker process started here that still runs (afterAll). */
export async function killAllWorkers(): Promise<void> {
  await Promise.all([...workers].map((w) => w.kill('SIGKILL')));
}

/** The server's view of one stage's running activity (no worker needed to answer it). */
export interface PendingStage {
  state: 'scheduled' | 'started' | 'cancel-requested' | 'paused' | 'unknown';
  attempt: number;
  heartbeat?: Record<string, unknown>;
  lastStartedMs?: number;
  lastHeartbeatMs?: number;
  lastWorkerIdentity?: string;
  lastFailure?: string;
}

const STATE_NAMES: Record<number, PendingStage['state']> = {
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED]: 'scheduled',
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED]: 'started',
  [temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED]: 'cancel-requested',
};

function tsMs(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number | undefined {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return undefined;
  return Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

/** The pending activity of `stage` (activity id = stage name), or undefined when none is pending. */
export async function pendingStage(client: Client, workflowId: string, stage: string): Promise<PendingStage | undefined> {
  const description = await client.workflow.getHandle(workflowId).describe();
  const pending = (description.raw.pendingActivities ?? []).find((p) => p.activityId === stage);
  if (!pending) return undefined;
  const payload = pending.heartbeatDetails?.payloads?.[0];
  return {
    state: STATE_NAMES[pending.state ?? -1] ?? 'unknown',
    attempt: pending.attempt ?? 1,
    heartbeat: payload ? (defaultPayloadConverter.fromPayload(payload) as Record<string, unknown>) : undefined,
    lastStartedMs: tsMs(pending.lastStartedTime),
    lastHeartbeatMs: tsMs(pending.lastHeartbeatTime),
    lastWorkerIdentity: pending.lastWorkerIdentity ?? undefined,
    lastFailure: pending.lastFailure?.message ?? undefined,
  };
}

/**
 * Polls the server until `stage`'s activity satisfies `accept` (e.g. started, attempt 1, heartbeat
 * phase `cleaning`). Fails when the run ends first or after `timeoutMs`.
 */
export async function waitForStage(
  client: Client,
  workflowId: string,
  stage: string,
  accept: (p: PendingStage) => boolean,
  timeoutMs = 120_000,
): Promise<PendingStage> {
  const deadline = Date.now() + timeoutMs;
  let last: PendingStage | undefined;
  for (;;) {
    last = await pendingStage(client, workflowId, stage);
    if (last && accept(last)) return last;
    if (!last) {
      const { status } = await client.workflow.getHandle(workflowId).describe();
      if (status.name !== 'RUNNING') throw new Error(`run ${workflowId} ended (${status.name}) before stage "${stage}" reached the wanted state`);
    }
    if (Date.now() > deadline) throw new Error(`stage "${stage}" of ${workflowId} not in the wanted state after ${timeoutMs} ms; last seen ${JSON.stringify(last)}`);
    await sleep(50);
  }
}

/**
 * Polls until the run is no longer running. Errors (a server that is down, a query no worker
 * answers yet) are retried until `timeoutMs`.
 */
export async function waitForRunEnd(client: Client, workflowId: string, timeoutMs = 240_000): Promise<RunSummary> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let last: RunSummary | undefined;
  for (;;) {
    try {
      last = await getRunSummary(client, workflowId);
      if (last.status !== 'running') return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`run ${workflowId} still running after ${timeoutMs} ms: ${JSON.stringify(last?.stages)} (last error: ${String(lastError)})`);
    }
    await sleep(250);
  }
}

/** `{ "<stage>.<output>": sha256 }` of a summary: what two runs are compared by. */
export function outputDigests(summary: RunSummary): Record<string, string> {
  const digests: Record<string, string> = {};
  for (const [name, stage] of Object.entries(summary.stages)) {
    for (const output of stage.outputs) digests[`${name}.${output.name}`] = output.sha256;
  }
  return digests;
}

/**
 * Reads back every output and manifest of a finished run, hashing the bytes independently of the
 * store's own verification; returns what was read. Throws on any missing object or mismatch.
 */
export async function readBackRun(store: ArtifactStore, summary: RunSummary): Promise<{ objects: number; bytes: number; keys: Set<string> }> {
  const keys = new Set<string>();
  let objects = 0;
  let bytes = 0;
  for (const [name, stage] of Object.entries(summary.stages)) {
    const refs: ArtifactRef[] = [...stage.outputs.map((o) => ({ ...o, mediaType: '' })), ...(stage.manifest ? [stage.manifest] : [])];
    for (const ref of refs) {
      const body = await store.readBuffer(ref); // verifies sha256 and size itself
      const sha256 = createHash('sha256').update(body).digest('hex');
      if (sha256 !== ref.sha256 || body.length !== ref.bytes) {
        throw new Error(`${name}: ${ref.uri} reads back as sha256 ${sha256} (${body.length} bytes), expected ${ref.sha256} (${ref.bytes} bytes)`);
      }
      keys.add(store.keyFromUri(ref.uri));
      objects++;
      bytes += body.length;
    }
  }
  return { objects, bytes, keys };
}

/** The committed manifest of a stage (createdAt, metrics.worker), read and verified. */
export async function readManifest(store: ArtifactStore, summary: RunSummary, stage: string): Promise<StageManifest> {
  return store.readJson<StageManifest>(summary.stages[stage].manifest!);
}

/** Starts whichever local test server is not running (both are no-ops when healthy). */
export async function ensureServersUp(): Promise<void> {
  const stateDir = process.env.TEMPERED_TEST_STATE_DIR!;
  await startServer(stateDir, 'temporal');
  await startServer(stateDir, 'minio');
}

/** Pid of a local test server, from servers.json. */
export async function serverPid(which: 'temporal' | 'minio'): Promise<number> {
  const servers = await readServers(process.env.TEMPERED_TEST_STATE_DIR!, true);
  return servers![which].pid;
}

/** Resolves when `pid` no longer exists. */
export async function waitForExit(pid: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`process ${pid} still alive after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** One row of the fault table: printed as one line, and appended to `TEMPERED_FAULTS_REPORT` if set. */
export interface FaultRow {
  fault: string;
  completed: boolean;
  lostWork: string;
  recomputed: string;
  recovery: string;
  notes?: string;
}

export const faultRows: FaultRow[] = [];

export function reportFault(row: FaultRow): void {
  faultRows.push(row);
  process.stderr.write(
    `[faults] ${row.fault} | completed: ${row.completed ? 'yes' : 'NO'} | lost work: ${row.lostWork} | recomputed: ${row.recomputed} | time to recover: ${row.recovery}${row.notes ? ` | ${row.notes}` : ''}\n`,
  );
  if (process.env.TEMPERED_FAULTS_REPORT) appendFileSync(process.env.TEMPERED_FAULTS_REPORT, `${JSON.stringify(row)}\n`);
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
