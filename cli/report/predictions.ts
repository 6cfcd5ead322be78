import { readJsonl, type ArtifactStore } from '../../activities/store';
import { PREDICTIONS_OUTPUT } from '../../activities/training/predictions';
import type { RunSummary } from '../../workflows/types';
import type { PredictionRow } from './bootstrap';

/**
 * The summary with each evaluation's per-record predictions (its `predictions` output, read and
 * verified from the store) in `metrics.predictions`, where the report looks for them: the lifts'
 * bootstrap intervals and the sample predictions come from them. Like curves, they are artifacts,
 * never part of the run summary itself.
 */
export async function withPredictions(summary: RunSummary, store: ArtifactStore): Promise<RunSummary> {
  const stages = { ...summary.stages };
  for (const [name, stage] of Object.entries(stages)) {
    const output = stage.outputs.find((o) => o.name === PREDICTIONS_OUTPUT);
    if (stage.type !== 'evaluate' || !output) continue;
    const rows: PredictionRow[] = [];
    for await (const row of readJsonl<PredictionRow>(store, { ...output, mediaType: 'application/jsonl' })) rows.push(row);
    stages[name] = { ...stage, metrics: { ...stage.metrics, predictions: rows } };
  }
  return { ...summary, stages };
}
