import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { curveSummary, writeCurves, type CurvePoint } from '../../activities/curves';
import { FileArtifactStore } from '../../activities/store';
import { lossRows } from '../../cli/report/charts';
import { MAX_CHART_POINTS, thin, withCurves } from '../../cli/report/curves';
import { renderReportHtml } from '../../cli/report/html';
import { buildReportModel } from '../../cli/report/report-model';
import type { RunSummary, StageProgress } from '../../workflows/types';

// Curves are artifacts: a summary names them, the report reads them from the store and thins them.

const points = (n: number, valEvery = 0): CurvePoint[] =>
  Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: 1 / (i + 1), lr: 1e-3, ...(valEvery && (i + 1) % valEvery === 0 ? { valLoss: 2 / (i + 1) } : {}) }));

test('a 200,000-step curve reaches the report thinned, validation points kept, while the summary stays small', async () => {
  const store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-curves-')));
  const curve = points(200_000, 10_000);
  const ref = await writeCurves(store, 'runs/r/train/curves.jsonl', curve);
  const stage: StageProgress = {
    status: 'succeeded', type: 'finetune', taskQueue: 'gpu', attempts: 1, cached: false,
    outputs: [{ name: 'curves', uri: ref.uri, sha256: ref.sha256, bytes: ref.bytes }],
    metrics: { curve: { points: curve.length } },
  };
  const summary: RunSummary = { runId: 'r', workflowId: 'p--r', pipeline: 'p', status: 'succeeded', stages: { train: stage } };
  expect(JSON.stringify(summary).length).toBeLessThan(1000);

  const history = (await withCurves(summary, store)).stages.train.metrics.history as CurvePoint[];
  expect(history.length).toBeLessThanOrEqual(MAX_CHART_POINTS + 20);
  expect(history.length).toBeGreaterThan(MAX_CHART_POINTS / 2);
  expect(history[0].step).toBe(1);
  expect(history[history.length - 1].step).toBe(200_000);
  expect(history.filter((p) => p.valLoss !== undefined).map((p) => p.step)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 10_000));
  // the summary given in is not changed
  expect(summary.stages.train.metrics.history).toBeUndefined();
});

test('a short curve is not thinned, and a summary that already carries its history keeps it', async () => {
  expect(thin(points(50), MAX_CHART_POINTS)).toHaveLength(50);
  const store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-curves-')));
  const old: StageProgress = { status: 'succeeded', type: 'finetune', taskQueue: 'gpu', attempts: 1, cached: true, outputs: [], metrics: { history: [{ step: 1, loss: 0.5 }] } };
  const summary: RunSummary = { runId: 'r', workflowId: 'p--r', pipeline: 'p', status: 'succeeded', stages: { old } };
  expect((await withCurves(summary, store)).stages.old.metrics.history).toEqual([{ step: 1, loss: 0.5 }]);
});

test("a bring-your-own trainer's curve (a command stage's progress lines) gets the same loss chart and training row", async () => {
  const store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-curves-')));
  const ref = await writeCurves(store, 'runs/r/byo/curves.jsonl', points(30, 10));
  const byo: StageProgress = {
    status: 'succeeded', type: 'command', taskQueue: 'gpu', attempts: 1, cached: false,
    outputs: [{ name: 'curves', uri: ref.uri, sha256: ref.sha256, bytes: ref.bytes }],
    metrics: { curve: { points: 30 } },
    config: { command: ['python', 'train.py'], env: { MODE: 'fast' } },
  };
  const summary: RunSummary = { runId: 'r', workflowId: 'p--r', pipeline: 'p', status: 'succeeded', stages: { byo } };
  const model = buildReportModel(await withCurves(summary, store));
  expect(model.training.map((t) => [t.name, t.type, t.history.length])).toEqual([['byo', 'command', 30]]);
  const rows = lossRows(model.training);
  expect(rows.filter((r) => r.series === 'train loss')).toHaveLength(30);
  expect(rows.filter((r) => r.series === 'validation loss').map((r) => r.step)).toEqual([10, 20, 30]);
  const page = renderReportHtml(model, []);
  expect(page).toContain('<h3>Training stages</h3>');
  // the options table is the built-in trainers': a command's command line and environment stay out
  expect(page).not.toContain('Training configuration');
});

test('a curve summary keeps the length and the last value of each measure', () => {
  expect(curveSummary([{ step: 1, loss: 2 }, { step: 2, loss: 1, valLoss: 3 }, { step: 3, loss: 0.5 }])).toEqual({ points: 3, last: { step: 3, loss: 0.5, valLoss: 3 } });
});
