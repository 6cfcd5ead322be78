import type { CollectOptions } from '../../pipelines/stage-types';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Context } from '@temporalio/activity';
import { optionsOf } from '../stage-options';
import type { StageInput } from '../../workflows/types';
import { readContinualState } from '../continual/state';
import type { ArtifactStore } from '../store';

export {
  describeIdentity,
  fingerprintListing,
  fingerprintSources,
  isRacy,
  RACY_WINDOW_MS,
  type FileGroup,
  type FingerprintClock,
  type SourceFingerprintContext,
} from './listing-fingerprint';

// A collect reads outside the store, so its config and (absent) input digests cannot tell whether
// its data changed. Its cache key also takes this fingerprint of what its sources resolve to now
// (ARCHITECTURE.md, invariant 4), taken from a listing — paths, sizes, times, ETags — without
// reading the data, through the resolver collect itself reads with (source-files.ts).

/** The running activity's heartbeat and cancellation, or undefined outside one (unit tests). */
function activityContext(): { heartbeat(): void; signal: AbortSignal } | undefined {
  try {
    const context = Context.current();
    return { heartbeat: () => context.heartbeat({ phase: 'listing sources' }), signal: context.cancellationSignal };
  } catch {
    return undefined;
  }
}

/** What fingerprintInThread hands the thread: structured-cloneable. */
interface FingerprintThreadData {
  options: CollectOptions;
  baseDir: string;
  continualState?: string;
}

type FingerprintThreadMessage = { fingerprint: string } | { error: { name: string; message: string; stack?: string; nonRetryable: boolean } };

/**
 * fingerprintSources in a worker thread of its own. Globbing matches every path against a
 * picomatch regex (and an S3 listing every key against `include`), which a pattern such as
 * `*a*a*a*a*b` makes take seconds per long name; sorting and hashing a big listing is CPU work
 * too. On the worker's main thread that would stall workflow tasks, queries and heartbeats
 * (ARCHITECTURE.md, invariant 9); in a thread it costs only this stage's time, and a cancelled
 * stage ends the thread.
 */
export function fingerprintInThread(data: FingerprintThreadData, signal?: AbortSignal): Promise<string> {
  const body = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { fingerprintSources } = require(${JSON.stringify(path.join(__dirname, `listing-fingerprint${path.extname(__filename)}`))});
    fingerprintSources(workerData.options, { baseDir: workerData.baseDir, continualState: workerData.continualState }).then(
      (fingerprint) => parentPort.postMessage({ fingerprint }),
      (e) => parentPort.postMessage({ error: { name: e && e.name || 'Error', message: String(e && e.message || e), stack: e && e.stack, nonRetryable: !!(e && e.nonRetryable === true) } }),
    );`;
  // From TypeScript sources (tests, tsx) the thread compiles them the way compute-thread.ts does.
  const code = __filename.endsWith('.ts') ? `require('tsx/cjs/api').register();${body}` : body;
  return new Promise<string>((resolve, reject) => {
    const thread = new Worker(code, { eval: true, workerData: data });
    let settled = false;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      settle();
      void thread.terminate();
    };
    const onAbort = () => finish(() => reject(new Error('stage cancelled while listing its sources')));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);
    thread.on('message', (message: FingerprintThreadMessage) =>
      finish(() => {
        if ('fingerprint' in message) return resolve(message.fingerprint);
        const { name, message: text, stack, nonRetryable } = message.error;
        const error = Object.assign(new Error(text), { nonRetryable });
        // `name` as an own property, so the stage's failure keeps the error's class (EmptySourceError, …).
        Object.defineProperty(error, 'name', { value: name, enumerable: false, configurable: true, writable: true });
        if (stack) error.stack = stack;
        reject(error);
      }),
    );
    thread.on('error', (err) => finish(() => reject(err)));
    thread.on('exit', (code) => finish(() => reject(new Error(`the source-listing thread exited with code ${code} before finishing`))));
  });
}

/**
 * The `sourceFingerprint` hook of the collect stage (activities/index.ts). An incremental collect's
 * output also depends on the previous cycle's watermark, so its fingerprint names that too: the
 * plan never caches one, and should a plan do so anyway, no cycle is served another's result.
 */
export function collectSourceFingerprint(store: ArtifactStore): (input: StageInput) => Promise<string> {
  return async (input) => {
    const options = optionsOf(input, 'collect');
    let continualState: string | undefined;
    if (options.incremental) {
      const state = await readContinualState(store, input.pipeline);
      continualState = `watermark=${state.watermark?.sha256 ?? 'none'} cycles=${state.cycles.length}`;
    }
    // The stage's heartbeats start after the cache lookup: keep the attempt alive through a long
    // listing or the racy wait.
    const activity = activityContext();
    activity?.heartbeat();
    const ticker = activity && setInterval(activity.heartbeat, 1000);
    try {
      return await fingerprintInThread({ options, baseDir: input.baseDir, ...(continualState === undefined ? {} : { continualState }) }, activity?.signal);
    } finally {
      if (ticker) clearInterval(ticker);
    }
  };
}
