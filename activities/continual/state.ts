import type { ArtifactRef } from '../../workflows/types';
import { decodeWatermark, type Watermark } from '../data/watermark';
import type { ArtifactStore } from '../store';

// The state of a continual pipeline, kept in the store beside its runs as an append-only log:
//   continual/<pipeline>/cycles/<n>.json   the whole state after cycle n (watermark, reservoir,
//                                          every cycle's record), created by the `promote` stage
//                                          when cycle n completes. Creation is atomic and only
//                                          succeeds if no cycle n exists (`ArtifactStore.create`), so
//                                          of two cycles that read the same data exactly one commits;
//                                          the watermark and the replay reservoir advance together,
//                                          and only when a cycle has completed (a failed cycle changes
//                                          nothing). Objects are never rewritten: every earlier state
//                                          stays readable.
// The current state is the highest n. Incremental collect and replay read it at a cycle's start.

/** The bounded replay reservoir: a uniform sample of every completed cycle's train split. */
export interface ReservoirState {
  /** gzip JSONL of the sampled records. */
  ref: ArtifactRef;
  /** Records in it (at most `size`). */
  records: number;
  /** Train records offered to it over all cycles (reservoir sampling needs the count). */
  seen: number;
  /** Its bound when written. */
  size: number;
}

/** The metric of one model on one cycle's test split. */
export interface SplitEvaluation {
  /** The cycle whose test split this is. */
  cycle: number;
  candidate: number;
  /** The champion's value, when there was a champion. */
  champion?: number;
  examples: number;
}

/** One completed cycle. */
export interface CycleRecord {
  cycle: number;
  runId: string;
  completedAt: string;
  /** New records collect read this cycle. */
  newRecords: number;
  /** This cycle's test split: every later cycle evaluates on it too. */
  testSplit: ArtifactRef;
  metric: string;
  /** Registry model name. */
  registry: string;
  /** Registry version the candidate was registered as. */
  candidateVersion: number;
  /** Champion the candidate was compared with (none in the first cycle). */
  championVersion?: number;
  promoted: boolean;
  /** Why it was promoted or kept out, in words. */
  reason: string;
  /** On every test split so far, this cycle's last. */
  evaluations: SplitEvaluation[];
  /** Candidate minus champion on the new split. */
  gain?: number;
  /** Champion minus candidate on earlier splits (positive = forgotten). */
  forgetting?: { mean: number; max: number };
  watermark: ArtifactRef;
  reservoir?: ReservoirState;
}

export interface ContinualState {
  apiVersion: 'tempered.dev/v1';
  pipeline: string;
  /** Watermark after the last completed cycle. */
  watermark?: ArtifactRef;
  /** Replay reservoir after the last completed cycle. */
  reservoir?: ReservoirState;
  cycles: CycleRecord[];
}

const cyclesPrefix = (pipeline: string) => `continual/${pipeline}/cycles/`;

/** Key of the state after cycle `n` (zero-padded, so keys sort by cycle). */
export const cycleStateKey = (pipeline: string, n: number) => `${cyclesPrefix(pipeline)}${String(n).padStart(6, '0')}.json`;

/** The pipeline's state after its last completed cycle; an empty one before the first. */
export async function readContinualState(store: ArtifactStore, pipeline: string): Promise<ContinualState> {
  const numbers = (await store.list(cyclesPrefix(pipeline))).map((k) => /\/(\d+)\.json$/.exec(k)?.[1]).filter((n): n is string => n !== undefined).map(Number);
  if (numbers.length === 0) return { apiVersion: 'tempered.dev/v1', pipeline, cycles: [] };
  const key = cycleStateKey(pipeline, Math.max(...numbers));
  const found = await store.readKey(key, 'application/json');
  if (!found) throw new Error(`the continual state ${store.uriFor(key)} was listed but could not be read; retry`);
  try {
    return JSON.parse(found.body.toString('utf8')) as ContinualState;
  } catch (err) {
    throw Object.assign(
      new Error(
        `the continual state ${found.ref.uri} is not JSON (${(err as Error).message}); delete that one object to go back to the cycle before it (its data is then read again by the next cycle)`,
      ),
      { name: 'MalformedStateError', nonRetryable: true },
    );
  }
}

/**
 * Commits `state` as the state after its last cycle, unless that cycle was committed already.
 * Returns false when another writer committed that cycle first.
 */
export async function commitContinualState(store: ArtifactStore, state: ContinualState): Promise<boolean> {
  const n = state.cycles[state.cycles.length - 1].cycle;
  return (await store.create(cycleStateKey(state.pipeline, n), JSON.stringify(state, null, 2), 'application/json')) !== undefined;
}

/** Where the last completed cycle left the source: its watermark (none before the first) and how many cycles had completed. */
export async function previousWatermark(store: ArtifactStore, pipeline: string): Promise<{ watermark?: Watermark; completedCycles: number }> {
  const { watermark, cycles } = await readContinualState(store, pipeline);
  return { watermark: watermark ? decodeWatermark(await store.readBuffer(watermark), watermark.uri) : undefined, completedCycles: cycles.length };
}
