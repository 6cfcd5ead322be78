import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { StageType } from '../pipelines/schema';
import type { ArtifactRef, Metrics, StageInput } from '../workflows/types';
import type { StoreConfig } from './store';
import type { StageContext, StageImplementation } from './stage-runner';

// Stage compute off the worker's event loop (ARCHITECTURE.md, invariant 9). The Temporal worker's
// workflow activations, queries and heartbeats share the main thread's event loop; a synchronous
// tfjs step, a BPE merge loop or a MinHash pass there delays them all — by seconds on a busy
// machine, long enough for a query to expire or a workflow task to be retried. So each stage
// attempt runs its implementation in a fresh worker thread, and the main thread keeps only the
// stage protocol (cache, commit, heartbeats, cancellation).
//
// Threads rather than child processes: the store, tfjs and the data code load into a thread as
// they are, messages are structured clones rather than a hand-written wire format, memory counts
// in the worker's own RSS (what the stage metrics and memory checks see), and `terminate()` ends a
// cancelled attempt even mid-kernel. The thread opens its own store from the same config; the
// credentials come from the environment it inherits, as they do for the main thread.

/** What the thread is started with: everything it needs, structured-cloneable. */
export interface ComputeThreadData {
  type: StageType;
  input: StageInput;
  attempt: number;
  resumeDetails?: Record<string, unknown>;
  store: StoreConfig;
  /** The GPU devices the attempt holds (`StageContext.devices`). */
  devices?: readonly string[];
}

/** Thread → main thread. */
export type ComputeThreadMessage =
  | { kind: 'progress'; details: Record<string, unknown> }
  | { kind: 'done'; outputs: Record<string, ArtifactRef>; metrics: Metrics }
  | { kind: 'failed'; error: SerializedError };

/** Main thread → thread. */
export type ComputeThreadCommand = { kind: 'cancel' };

/** An error as it crosses the thread boundary: what classification and the message need. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  nonRetryable: boolean;
  cancelled?: boolean;
  /** Set when the stage threw an ApplicationFailure: its own type and details. */
  failureType?: string;
  details?: unknown[];
}

/** How long a cancelled attempt may take to stop by itself before its thread is terminated. */
const CANCEL_GRACE_MS = 5_000;

/**
 * Runs the stage type's implementation in a new worker thread and relays its progress to `ctx`.
 * Resolves with its result; rejects with its error (classification kept) or a CancelledFailure.
 */
export function runInThread(type: StageType, ctx: StageContext, store: StoreConfig): ReturnType<StageImplementation> {
  const data: ComputeThreadData = { type, input: ctx.input, attempt: ctx.attempt, resumeDetails: ctx.resumeDetails, store, devices: ctx.devices };
  const thread = startThread(data);
  // Stage code has no business on stdout (`--json` output): its console goes to stderr.
  thread.stdout.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  return new Promise((resolve, reject) => {
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const finish = (action: () => void) => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
      action();
      void thread.terminate();
    };
    const onAbort = () => {
      thread.postMessage({ kind: 'cancel' } satisfies ComputeThreadCommand);
      killTimer = setTimeout(() => finish(() => reject(new CancelledFailure('stage cancelled'))), CANCEL_GRACE_MS);
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort);

    thread.on('message', (message: ComputeThreadMessage) => {
      if (message.kind === 'progress') {
        try {
          ctx.progress(message.details);
        } catch (err) {
          finish(() => reject(err));
        }
      } else if (message.kind === 'done') {
        finish(() => resolve({ outputs: message.outputs, metrics: message.metrics }));
      } else {
        finish(() => reject(deserializeError(message.error)));
      }
    });
    // An uncaught error or a crash in the thread (out of memory): infrastructure, so retryable.
    thread.on('error', (err) => finish(() => reject(new ComputeThreadError(`the compute thread failed: ${err.message}`))));
    thread.on('exit', (code) =>
      finish(() => reject(ctx.signal.aborted ? new CancelledFailure('stage cancelled') : new ComputeThreadError(`the compute thread exited with code ${code} before finishing`))),
    );
  });
}

/** The thread died without a result: retried like any infrastructure fault. */
export class ComputeThreadError extends Error {
  override readonly name = 'ComputeThreadError';
}

function startThread(data: ComputeThreadData): Worker {
  const options = { workerData: data, stdout: true };
  const compiled = path.join(__dirname, 'compute-thread-main.js');
  if (fs.existsSync(compiled)) return new Worker(compiled, options);
  // Running from TypeScript sources (tests, tsx): the thread compiles them the same way.
  const source = path.join(__dirname, 'compute-thread-main.ts');
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(source)});`, { ...options, eval: true });
}

export function serializeError(err: unknown, nonRetryable: boolean): SerializedError {
  if (err instanceof CancelledFailure) return { name: err.name, message: err.message, nonRetryable: true, cancelled: true };
  if (err instanceof ApplicationFailure) {
    return { name: err.name, message: err.message, stack: err.stack, nonRetryable: err.nonRetryable === true, failureType: err.type ?? undefined, details: err.details ?? undefined };
  }
  const error = err instanceof Error ? err : new Error(String(err));
  return { name: error.name, message: error.message, stack: error.stack, nonRetryable };
}

function deserializeError(error: SerializedError): Error {
  if (error.cancelled) return new CancelledFailure(error.message);
  if (error.failureType !== undefined) {
    return ApplicationFailure.create({ type: error.failureType, message: error.message, nonRetryable: error.nonRetryable, details: error.details });
  }
  const rebuilt = Object.assign(new Error(error.message), { nonRetryable: error.nonRetryable });
  // `name` is an own property so classification sees the stage's error class (e.g. GateFailed).
  Object.defineProperty(rebuilt, 'name', { value: error.name, enumerable: false, configurable: true, writable: true });
  if (error.stack) rebuilt.stack = error.stack;
  return rebuilt;
}
