import { createRandom, seedFrom } from '../../activities/data/random';
import { classificationReport } from '../../activities/ml/metrics';
import type { PredictionRow as StoredPrediction } from '../../activities/training/predictions';

// How sure a lift is: a paired bootstrap over the test records. Both evaluations are resampled
// with the same record indices, so what varies is which records were drawn, not which model saw
// which; the 2.5th and 97.5th percentiles of the resampled differences bound the lift at 95%.

/** One record of an evaluation's `predictions` output (`text` may be absent in hand-made rows). */
export type PredictionRow = Omit<StoredPrediction, 'text'> & { text?: string };

/** accuracy and macro-F1 from the labels; rougeL as the mean of each record's `rougeL` (generations), as the corpus ROUGE-L is. */
export type BootstrapMetric = 'accuracy' | 'macroF1' | 'rougeL';

/** A 95% interval of candidate − baseline, or why there is none. */
export type BootstrapResult =
  | { ok: true; low: number; high: number; resamples: number; records: number }
  | { ok: false; reason: string };

export interface BootstrapOptions {
  resamples?: number;
  seed?: number;
}

/**
 * The paired bootstrap interval of `metric(candidate) − metric(baseline)`. The two evaluations must
 * cover the same records (by id, each once, with the same true label): anything else has no
 * paired interval, and the result says why.
 */
export function pairedBootstrap(candidate: readonly PredictionRow[], baseline: readonly PredictionRow[], metric: BootstrapMetric, options: BootstrapOptions = {}): BootstrapResult {
  const { resamples = 1000, seed = 1 } = options;
  const pairs = alignRecords(candidate, baseline);
  if (!pairs.ok) return pairs;
  const { truth, a, b } = pairs;
  const random = createRandom(seedFrom(seed, `bootstrap:${metric}`));
  const n = truth.length;
  if (metric === 'rougeL') return meanBootstrap(pairs.rows, random, resamples);
  const labels = [...new Set([...truth, ...a, ...b])].sort();
  const score = (yTrue: string[], yPred: string[]) => classificationReport(yTrue, yPred, labels)[metric];
  const differences: number[] = [];
  const [t, pa, pb] = [new Array<string>(n), new Array<string>(n), new Array<string>(n)];
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) {
      const j = random.int(n);
      t[i] = truth[j];
      pa[i] = a[j];
      pb[i] = b[j];
    }
    differences.push(score(t, pa) - score(t, pb));
  }
  differences.sort((x, y) => x - y);
  return { ok: true, low: quantile(differences, 0.025), high: quantile(differences, 0.975), resamples, records: n };
}

/** The interval of the mean per-record ROUGE-L difference, both sides resampled with the same records. */
function meanBootstrap(rows: ReadonlyArray<readonly [PredictionRow, PredictionRow]>, random: ReturnType<typeof createRandom>, resamples: number): BootstrapResult {
  const differences = rows.map(([c, b]) => (c.rougeL ?? NaN) - (b.rougeL ?? NaN));
  if (differences.some((d) => !Number.isFinite(d))) return { ok: false, reason: 'per-record ROUGE-L is not in both evaluations\' predictions (an evaluation from before it was stored)' };
  const n = differences.length;
  const means: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += differences[random.int(n)];
    means.push(sum / n);
  }
  means.sort((x, y) => x - y);
  return { ok: true, low: quantile(means, 0.025), high: quantile(means, 0.975), resamples, records: n };
}

function alignRecords(candidate: readonly PredictionRow[], baseline: readonly PredictionRow[]): { ok: true; truth: string[]; a: string[]; b: string[]; rows: Array<[PredictionRow, PredictionRow]> } | { ok: false; reason: string } {
  if (candidate.length === 0 || baseline.length === 0) return { ok: false, reason: 'an evaluation has no per-record predictions' };
  const byId = new Map<string, PredictionRow>();
  for (const row of baseline) {
    if (byId.has(row.id)) return { ok: false, reason: `record "${row.id}" appears twice in the baseline's predictions` };
    byId.set(row.id, row);
  }
  if (candidate.length !== baseline.length) return { ok: false, reason: `not evaluated on the same records (${candidate.length} vs ${baseline.length})` };
  const truth: string[] = [];
  const a: string[] = [];
  const b: string[] = [];
  const rows: Array<[PredictionRow, PredictionRow]> = [];
  const seen = new Set<string>();
  for (const row of candidate) {
    const other = byId.get(row.id);
    if (!other || seen.has(row.id)) return { ok: false, reason: `not evaluated on the same records (record "${row.id}" is only in the candidate's, or twice)` };
    if (other.label !== row.label) return { ok: false, reason: `record "${row.id}" has label "${row.label}" in one evaluation and "${other.label}" in the other` };
    seen.add(row.id);
    truth.push(row.label);
    a.push(row.predicted);
    b.push(other.predicted);
    rows.push([row, other]);
  }
  return { ok: true, truth, a, b, rows };
}

/** Linear interpolation between order statistics (numpy's default). `sorted` ascending. */
export function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}
