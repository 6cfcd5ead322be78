import type { ContinualState, CycleRecord } from '../activities/continual/state';
import { decodeWatermark, type Watermark } from '../activities/data/watermark';
import type { ArtifactStore } from '../activities/store';
import { formatBytes } from './format';
import { formatCount, formatPercent, formatPoints } from './report/format-values';

// `tempered cycles <pipeline>`: the completed retrain cycles of a continual pipeline, where its
// incremental collect stands, and what its replay reservoir holds. Formatting is pure; the
// watermark is the one thing read besides the state, since the state only points at it.

/** The watermark the state points at, decoded; undefined before the first completed cycle. */
export async function readWatermark(store: ArtifactStore, state: ContinualState): Promise<Watermark | undefined> {
  if (!state.watermark) return undefined;
  return decodeWatermark(await store.readBuffer(state.watermark), state.watermark.uri);
}

/** One line per completed cycle, oldest first, then the watermark and the reservoir. */
export function formatCycles(state: ContinualState, watermark?: Watermark): string {
  if (state.cycles.length === 0) {
    return [
      `no completed cycles of "${state.pipeline}" yet: a cycle completes when a run's promote stage does.`,
      `Start one with "tempered schedule trigger <scheduleId>" (a scheduled pipeline) or "tempered run <spec>".`,
    ].join('\n');
  }
  const metric = metricName(state.cycles[state.cycles.length - 1].metric);
  const header = ['cycle', 'run', 'new records', 'candidate', 'champion', `${metric} (new split)`, 'gain', 'forgetting', 'decision', 'reason'];
  const rows = state.cycles.map((c) => [
    String(c.cycle),
    c.runId,
    formatCount(c.newRecords),
    `v${c.candidateVersion}`,
    c.championVersion === undefined ? '-' : `v${c.championVersion}`,
    newSplitMetric(c),
    c.gain === undefined ? '-' : formatPoints(c.gain),
    c.forgetting === undefined ? '-' : formatPoints(c.forgetting.mean),
    c.promoted ? 'promoted' : 'kept out',
    c.reason,
  ]);
  const last = state.cycles[state.cycles.length - 1];
  return [
    `${state.pipeline}: ${state.cycles.length} completed ${state.cycles.length === 1 ? 'cycle' : 'cycles'}, the last by run ${last.runId} at ${last.completedAt}`,
    ...alignColumns([header, ...rows], RIGHT_ALIGNED),
    `watermark: ${describeWatermark(watermark)}${state.watermark && watermark ? ` (${formatBytes(state.watermark.bytes)} stored)` : ''}`,
    `reservoir: ${describeReservoir(state)}`,
  ].join('\n');
}

/** Which columns of the cycle table hold numbers. */
const RIGHT_ALIGNED = [true, false, true, true, true, true, true, true, false, false];

/** The candidate's metric on its own cycle's split: the last evaluation, since a cycle evaluates its new split last. */
function newSplitMetric(c: CycleRecord): string {
  const value = c.evaluations.find((e) => e.cycle === c.cycle)?.candidate;
  if (value === undefined) return '-';
  return c.metric === 'accuracy' || c.metric === 'macroF1' ? formatPercent(value) : String(Number(value.toPrecision(4)));
}

/** `by mtime, 2 files seen, the newest modified 2026-03-14T09:00:00.000Z` or `by id, 12,044 ids seen`. */
export function describeWatermark(watermark: Watermark | undefined): string {
  if (!watermark) return 'none yet (the next cycle reads every record)';
  if (watermark.by === 'id') return `by id, ${formatCount(watermark.ids?.length ?? 0)} ids seen`;
  if (watermark.at === undefined) return `by ${watermark.by}, no file seen yet`;
  const newest = new Date(watermark.at).toISOString();
  if (!watermark.files) return `by ${watermark.by}, a high-water mark at ${newest} from an earlier version (the next completed cycle records each file instead)`;
  const files = Object.keys(watermark.files).length;
  return `by ${watermark.by}, ${formatCount(files)} ${files === 1 ? 'file' : 'files'} seen, the newest modified ${newest}`;
}

/** `500/500 records, 212.4 KiB (12,000 train records offered so far)` */
export function describeReservoir(state: ContinualState): string {
  const r = state.reservoir;
  if (!r) return 'none (replay is off, or no cycle has completed)';
  return `${formatCount(r.records)}/${formatCount(r.size)} records, ${formatBytes(r.ref.bytes)} (${formatCount(r.seen)} train records offered so far)`;
}

/** Pads every column to its widest cell; the last column is left ragged. */
function alignColumns(rows: readonly string[][], rightAligned: readonly boolean[]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : rightAligned[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}

function metricName(metric: string): string {
  return metric === 'macroF1' ? 'macro-F1' : metric;
}
