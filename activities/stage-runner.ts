import * as os from 'node:os';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { TASK_QUEUES } from '../pipelines/plan';
import type { ArtifactRef, Metrics, StageInput, StageOutcome, StageActivity } from '../workflows/types';
import type { GpuSlots } from './gpu-slots';
import { findReusable, rememberResult } from './stage-cache';
import { commitManifest, isNonRetryableStoreError, readCommittedManifest, type ArtifactStore } from './store';

/** Which process ran a stage: recorded in its metrics, so routing is visible after the fact. */
const WORKER_IDENTITY = `${process.pid}@${os.hostname()}`;

/** What a stage implementation sees: its input, the store, and ways to report progress. */
export interface StageContext {
  input: StageInput;
  store: ArtifactStore;
  /** Fires when the run is cancelled or the attempt times out; long loops check it. */
  signal: AbortSignal;
  attempt: number;
  /** Records progress as heartbeat details (what `status` shows); the SDK throttles the sends. Throws once the stage is cancelled. */
  progress(details: Record<string, unknown>): void;
  /** Details of the previous attempt's last heartbeat (e.g. its latest checkpoint), on a retry. */
  resumeDetails?: Record<string, unknown>;
  /** `<outputPrefix><name>`: where an output named `name` is written. */
  outputKey(name: string): string;
  /**
   * The GPU devices this attempt holds on a gpu worker (`resources.gpu` of them, as
   * `CUDA_VISIBLE_DEVICES` names them): its child processes get exactly these. Undefined on the
   * cpu queue. In-process compute (tfjs) cannot be confined to them.
   */
  devices?: readonly string[];
}

/** A stage's work: write outputs, return their refs and the metrics worth keeping. */
export type StageImplementation = (ctx: StageContext) => Promise<{ outputs: Record<string, ArtifactRef>; metrics: Metrics }>;


/** Errors a retry cannot fix say so with `nonRetryable = true` (data errors) or are store errors. */
export function isNonRetryable(err: unknown): boolean {
  return isNonRetryableStoreError(err) || (err as { nonRetryable?: unknown } | null)?.nonRetryable === true;
}

/** What a stage type adds to the stage protocol. */
export interface StageHooks {
  /**
   * For a stage that reads outside the store (files, S3 prefixes, packages): a digest of what its
   * sources resolve to now. It joins the cache key, so any change to the sources is a miss.
   */
  sourceFingerprint?(input: StageInput): Promise<string | undefined>;
}

/** What the worker running the stages adds to the stage protocol. */
export interface StageRunnerOptions {
  /** The gpu worker's devices: a gpu-queue attempt takes `input.gpus` of them before it runs. Default none (no device is assigned). */
  gpuSlots?: GpuSlots;
}

/**
 * Wraps a stage implementation as a Temporal activity with the stage protocol around it:
 * a retry of a committed stage returns the committed result (ARCHITECTURE.md, invariant 3); heartbeats carry
 * progress on a timer (invariant 5); a gpu-queue attempt holds its GPU devices while it computes
 * (invariant 7); the manifest is written last; errors are classified (invariant 6).
 */
export function defineStage(store: ArtifactStore, implementation: StageImplementation, hooks: StageHooks = {}, runner: StageRunnerOptions = {}): StageActivity {
  return async (input: StageInput): Promise<StageOutcome> => {
    const context = Context.current();
    const attempt = context.info.attempt;
    const started = Date.now();
    try {
      const committed = await readCommittedManifest(store, input.outputPrefix);
      if (committed) return { ...committed, attempt, cachedFrom: committed.metrics.cachedFrom as string | undefined };

      // Heartbeats from here on: a fingerprint can take a while (hashing a pretrained checkpoint,
      // creating the Python environment that resolves it).
      let details: Record<string, unknown> = { phase: 'checking the cache' };
      const intervalMs = Math.max(1000, Math.min(10_000, (context.info.heartbeatTimeoutMs ?? 30_000) / 3));
      const ticker = setInterval(() => context.heartbeat(details), intervalMs);
      let peakRss = process.memoryUsage().rss;
      const rssSampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 250);
      try {
        // Taken before the sources are read: a change during the read makes the next run miss, never hit stale data.
        const fingerprint = input.cache && hooks.sourceFingerprint ? await hooks.sourceFingerprint(input) : undefined;
        const reusable = await findReusable(store, input, fingerprint);
        if (reusable.result) {
          // Commit under this run too, pointing at the reused artifacts: the run stays self-describing.
          const result = await commit(store, input, reusable.result.outputs, { ...reusable.result.metrics, cachedFrom: reusable.fromRun });
          return { ...result, attempt, cachedFrom: reusable.fromRun };
        }
        // A cache hit needs no GPU; a computing attempt holds its devices until it ends, however it ends.
        const wanted = runner.gpuSlots ? gpusWanted(input, context.info.taskQueue) : 0;
        const lease =
          wanted > 0
            ? await runner.gpuSlots!.acquire(wanted, {
                signal: context.cancellationSignal,
                onWait({ free, total }) {
                  details = { phase: `waiting for ${wanted} GPU${wanted === 1 ? '' : 's'} (${free} of ${total} free on this worker)` };
                  context.heartbeat(details);
                },
              })
            : undefined;
        let computed: Awaited<ReturnType<StageImplementation>>;
        try {
          details = { phase: 'starting', ...(lease ? { devices: lease.devices.join(',') } : {}) };
          context.heartbeat(details);
          computed = await implementation({
            input,
            store,
            signal: context.cancellationSignal,
            attempt,
            progress(next) {
              // A cancelled stage stops at its next progress report, wherever it is.
              if (context.cancellationSignal.aborted) throw new CancelledFailure('stage cancelled');
              details = next;
              context.heartbeat(details);
            },
            resumeDetails: context.info.heartbeatDetails as Record<string, unknown> | undefined,
            outputKey: (name) => `${input.outputPrefix}${name}`,
            devices: lease?.devices,
          });
        } finally {
          lease?.release();
        }
        const { outputs, metrics } = computed;
        if (context.cancellationSignal.aborted) throw new CancelledFailure('stage cancelled');
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        const result = await commit(store, input, outputs, {
          ...metrics,
          wallTimeMs: Date.now() - started,
          peakRssBytes: peakRss,
          worker: { taskQueue: context.info.taskQueue, identity: WORKER_IDENTITY, ...(lease ? { devices: lease.devices.join(',') } : {}) },
          ...(reusable.miss.startsWith('earlier') ? { cacheMiss: reusable.miss } : {}),
        });
        if (input.cache) await rememberResult(store, input, result.manifest, fingerprint);
        return { ...result, attempt };
      } finally {
        clearInterval(ticker);
        clearInterval(rssSampler);
      }
    } catch (err) {
      throw classify(err, input, attempt);
    }
  };
}

/** GPU devices an attempt takes: the planned `resources.gpu`; 1 for a gpu-queue stage of a plan made before plans carried it. */
function gpusWanted(input: StageInput, taskQueue: string): number {
  return input.gpus ?? (taskQueue.endsWith(TASK_QUEUES.gpu) ? 1 : 0);
}

/** Writes the stage's manifest under this run: its outputs, metrics and lineage. */
function commit(store: ArtifactStore, input: StageInput, outputs: Record<string, ArtifactRef>, metrics: Metrics) {
  const { runId, pipeline, stage, type, cacheKey } = input;
  return commitManifest(store, input.outputPrefix, { runId, pipeline, stage, type, cacheKey, outputs, metrics, inputs: inputManifests(input) });
}

/** Lineage: the manifest of every upstream stage this one read. */
function inputManifests(input: StageInput): Record<string, ArtifactRef> {
  return Object.fromEntries(Object.entries(input.inputs).map(([name, r]) => [name, r.manifest]));
}

function classify(err: unknown, input: StageInput, attempt: number): unknown {
  if (err instanceof CancelledFailure || err instanceof ApplicationFailure) return err;
  if (context().cancellationSignal.aborted) return new CancelledFailure('stage cancelled');
  const error = err instanceof Error ? err : new Error(String(err));
  const where = `stage "${input.stage}" (${input.type})`;
  return ApplicationFailure.create({
    type: error.name === 'Error' ? 'StageError' : error.name,
    message: `${where}: ${error.message}`,
    nonRetryable: isNonRetryable(error),
    details: [{ attempt }],
    cause: error,
  });
}

function context(): Context {
  return Context.current();
}
