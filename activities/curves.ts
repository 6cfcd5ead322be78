import type { ArtifactRef } from '../workflows/types';
import { readJsonl, writeJsonl, type ArtifactStore } from './store';

// Training curves are artifacts, not metrics (ARCHITECTURE.md, invariant 1): a per-step history
// is ~55 bytes a step and would ride in activity results, downstream inputs and the workflow
// result, so a long run would pass Temporal's 2 MB payload limit. A stage writes its curve as JSONL
// under its output prefix, returns it as the `curves` output, and keeps only a summary in metrics.

/** One point of a curve: the step and what was measured at it (loss, lr, valLoss, valF1, ...). */
export type CurvePoint = { step: number } & Record<string, number | undefined>;

/** The output name under which a stage returns its curve. */
export const CURVES_OUTPUT = 'curves';

/** Writes the curve as JSONL at `key`. */
export function writeCurves(store: ArtifactStore, key: string, points: readonly CurvePoint[]): Promise<ArtifactRef> {
  return writeJsonl(store, key, points);
}

/** Reads a curve back (verified). */
export async function readCurves(store: ArtifactStore, ref: ArtifactRef): Promise<CurvePoint[]> {
  const points: CurvePoint[] = [];
  for await (const point of readJsonl<CurvePoint>(store, ref)) points.push(point);
  return points;
}

/** What metrics keep of a curve: its length and its last value of each measure. */
export function curveSummary(points: readonly CurvePoint[]): { points: number; last: Record<string, number> } {
  const last: Record<string, number> = {};
  for (const point of points) for (const [k, v] of Object.entries(point)) if (typeof v === 'number' && Number.isFinite(v)) last[k] = v;
  return { points: points.length, last };
}

/** Progress fields that describe the run, not a measure at the step: kept out of curve points. */
const NOT_MEASURES = new Set(['step', 'totalSteps', 'epoch', 'phase']);

/**
 * The curve of a program's progress lines (the command protocol): every line with a numeric
 * `step` becomes a point with the line's other finite numbers (loss, lr, tokensPerSec, ...), so a
 * bring-your-own trainer gets the same curves and charts as the built-in one.
 */
export class CurveRecorder {
  readonly points: CurvePoint[] = [];

  add(details: Record<string, unknown>): void {
    const { step } = details;
    if (typeof step !== 'number' || !Number.isFinite(step)) return;
    const point: CurvePoint = { step };
    for (const [key, value] of Object.entries(details)) {
      if (!NOT_MEASURES.has(key) && typeof value === 'number' && Number.isFinite(value)) point[key] = value;
    }
    if (Object.keys(point).length > 1) this.points.push(point);
  }
}
