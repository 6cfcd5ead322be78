import { CURVES_OUTPUT, readCurves, type CurvePoint } from '../../activities/curves';
import type { ArtifactStore } from '../../activities/store';
import type { RunSummary } from '../../workflows/types';

/** Points a chart needs at most: beyond this a curve is thinned (validation points always kept). */
export const MAX_CHART_POINTS = 2000;

/**
 * The summary with each stage's curve (its `curves` output, read from the store) in its
 * `metrics.history`, where the report looks for it. Curves travel as artifacts, never in the
 * summary itself; a summary from before curves were artifacts already has its history.
 */
export async function withCurves(summary: RunSummary, store: ArtifactStore): Promise<RunSummary> {
  const stages = { ...summary.stages };
  for (const [name, stage] of Object.entries(stages)) {
    const output = stage.outputs.find((o) => o.name === CURVES_OUTPUT);
    if (!output || Array.isArray(stage.metrics.history)) continue;
    const points = await readCurves(store, { ...output, mediaType: 'application/jsonl' });
    stages[name] = { ...stage, metrics: { ...stage.metrics, history: thin(points, MAX_CHART_POINTS) } };
  }
  return { ...summary, stages };
}

/** At most about `max` points, evenly spaced, keeping the first, the last and every validation point. */
export function thin(points: CurvePoint[], max: number): CurvePoint[] {
  if (points.length <= max) return points;
  const every = Math.ceil(points.length / max);
  return points.filter((p, i) => i % every === 0 || i === points.length - 1 || p.valLoss !== undefined);
}
