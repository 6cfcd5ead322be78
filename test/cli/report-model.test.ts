import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { buildCharts, binaryTicks, confusionChart, lossRows, robustnessRows, sizeQualityRows, smoothingWindow, trailingMean } from '../../cli/report/charts';
import { describeMetrics } from '../../cli/report/format-values';
import { openCommand } from '../../cli/report/open-report';
import { buildReportModel, computeLifts, confusionRows, outputBase, relativeUri, type Evaluation } from '../../cli/report/report-model';
import { finishSvg } from '../../cli/report/svg-render';
import type { RunSummary, StageProgress } from '../../workflows/types';

// The pure parts of the report: what each chart plots, the lift, and how stage metrics are read.

const summary: RunSummary = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/report/summary.json'), 'utf8'));

function stage(type: string, metrics: Record<string, unknown>, extra: Partial<StageProgress> = {}): StageProgress {
  return { status: 'succeeded', type, taskQueue: 'cpu', attempts: 1, cached: false, outputs: [], metrics, ...extra };
}

function runOf(stages: Record<string, StageProgress>): RunSummary {
  return { runId: 'r1', workflowId: 'p--r1', pipeline: 'p', status: 'succeeded', stages };
}

describe('report model of the fixture run', () => {
  const model = buildReportModel(summary);

  test('finds every training, evaluate, distill and quantize stage in plan order', () => {
    expect(model.training.map((t) => t.name)).toEqual(['general-finetune', 'domain-two-phase', 'domain-single-phase', 'distill-student']);
    expect(model.evaluations.map((e) => e.name)).toEqual(['evaluate-two-phase', 'evaluate-single-phase', 'evaluate-student', 'evaluate-student-int8']);
    expect(model.distillations).toEqual([
      { name: 'distill-student', teacherParameters: 671346, studentParameters: 185666, compression: 3.6159, teacherMetric: 0.9512, studentMetric: 0.9347, studentTeacherRatio: 0.9827, speedup: 3.12 },
    ]);
    expect(model.quantizations).toEqual([
      {
        name: 'quantize-student',
        bytesBefore: 742664,
        bytesAfter: 201448,
        reduction: 0.7287,
        metric: 'macroF1',
        metricBefore: 0.9371,
        metricAfter: 0.9355,
        metricDelta: -0.0016,
        predictionAgreement: 0.9961,
        latencyBeforeMs: 5.52,
        latencyAfterMs: 5.49,
      },
    ]);
    expect(model.training.find((t) => t.name === 'domain-two-phase')).toMatchObject({ steps: 180, bestStep: 120, stoppedEarly: true, resumedFromStep: 100, trainableFraction: 0.0248 });
  });

  test('two-phase lift over single-phase, absolute and relative, on accuracy and macro-F1', () => {
    expect(model.lifts).toHaveLength(2);
    const [accuracy, macroF1] = model.lifts;
    expect(accuracy).toMatchObject({ metric: 'accuracy', candidate: 'evaluate-two-phase', baseline: 'evaluate-single-phase', candidateValue: 0.9621, baselineValue: 0.918, worse: false });
    // The fixture's summary has no stored predictions: the lift says why it has no interval.
    expect(accuracy.interval).toMatchObject({ ok: false, reason: expect.stringContaining('per-record predictions are not available') });
    expect(accuracy.absolute).toBeCloseTo(0.0441, 10);
    expect(accuracy.relative).toBeCloseTo(0.0441 / 0.918, 10);
    expect(macroF1.metric).toBe('macroF1');
    expect(macroF1.absolute).toBeCloseTo(0.9528 - 0.8947, 10);
  });

  test('the charts the fixture has data for, in page order', () => {
    expect(buildCharts(model).map((c) => c.id)).toEqual([
      'loss-curves',
      'learning-rate',
      'evaluation-comparison',
      'size-quality',
      'robustness',
      'confusion-evaluate-two-phase',
      'confusion-evaluate-single-phase',
      'confusion-evaluate-student',
      'confusion-evaluate-student-int8',
    ]);
  });

  test('confusion heat map plots one cell per (true, predicted) pair, with counts and row shares', () => {
    const evaluation = model.evaluations[0];
    const rows = confusionRows(evaluation.confusion!);
    expect(rows).toEqual([
      { actual: 'ham', predicted: 'ham', count: 1357, share: 1357 / 1384 },
      { actual: 'ham', predicted: 'spam', count: 27, share: 27 / 1384 },
      { actual: 'spam', predicted: 'ham', count: 46, share: 46 / 544 },
      { actual: 'spam', predicted: 'spam', count: 498, share: 498 / 544 },
    ]);
    const chart = confusionChart(evaluation)!;
    expect(chart.spec.data).toEqual({ values: rows });
    expect(chart.spec.title).toBe('Confusion matrix: evaluate-two-phase');
  });

  test('loss curves: train loss at every step, validation loss where validated, best step flagged', () => {
    const rows = lossRows(model.training.filter((t) => t.name === 'domain-two-phase'));
    expect(rows.filter((r) => r.series === 'train loss')).toHaveLength(180); // stopped early at 180 of 200
    expect(rows.filter((r) => r.series === 'validation loss').map((r) => r.step)).toEqual([20, 40, 60, 80, 100, 120, 140, 160, 180]);
    expect(rows.filter((r) => r.best)).toEqual([expect.objectContaining({ step: 120, series: 'train loss' })]);
  });

  test('size/quality scatter and robustness bars take one row per evaluation and metric', () => {
    expect(sizeQualityRows(model.evaluations)).toEqual([
      { stage: 'evaluate-two-phase', model: 'domain-two-phase', modelBytes: 2685384, macroF1: 0.9528 },
      { stage: 'evaluate-single-phase', model: 'domain-single-phase', modelBytes: 2685384, macroF1: 0.8947 },
      { stage: 'evaluate-student', model: 'distill-student', modelBytes: 742664, macroF1: 0.9362 },
      { stage: 'evaluate-student-int8', model: 'quantize-student', modelBytes: 201448, macroF1: 0.9335 },
    ]);
    const robustness = robustnessRows(model.evaluations);
    expect(robustness).toHaveLength(8);
    expect(robustness[0].stage).toBe('evaluate-two-phase');
    expect(robustness[0].change).toBeCloseTo(-2.31, 10); // percentage points: it fell
  });
});

describe('computeLifts', () => {
  const evaluation = (name: string, accuracy?: number, macroF1?: number): Evaluation => ({ name, accuracy, macroF1 });

  test('pairs names that differ only by two-phase vs single-phase, wherever it appears', () => {
    const lifts = computeLifts([evaluation('two-phase-eval', 0.9), evaluation('single-phase-eval', 0.8), evaluation('eval-two-phase-small', 0.6, 0.5), evaluation('eval-single-phase-small', 0.5, 0.4)]);
    expect(lifts.map((l) => [l.candidate, l.baseline, l.metric])).toEqual([
      ['two-phase-eval', 'single-phase-eval', 'accuracy'],
      ['eval-two-phase-small', 'eval-single-phase-small', 'accuracy'],
      ['eval-two-phase-small', 'eval-single-phase-small', 'macroF1'],
    ]);
    expect(lifts[0].absolute).toBeCloseTo(0.1, 10);
    expect(lifts[0].relative).toBeCloseTo(0.125, 10);
  });

  test('declared comparisons replace name pairing; a worse candidate is flagged, with the direction of each metric', () => {
    const evaluations: Evaluation[] = [
      { name: 'int8', accuracy: 0.9, macroF1: 0.85, perplexity: 12 },
      { name: 'float', accuracy: 0.92, macroF1: 0.85, perplexity: 10 },
      { name: 'evaluate-two-phase', accuracy: 0.5 },
      { name: 'evaluate-single-phase', accuracy: 0.4 },
    ];
    const lifts = computeLifts(evaluations, [{ name: 'int8 vs float', candidate: 'int8', baseline: 'float' }]);
    expect(lifts.map((l) => [l.comparison, l.metric, l.worse])).toEqual([
      ['int8 vs float', 'accuracy', true],
      ['int8 vs float', 'macroF1', false],
      ['int8 vs float', 'perplexity', true], // higher perplexity is worse
    ]);
    expect(computeLifts(evaluations, [{ candidate: 'int8', baseline: 'float', metrics: ['macroF1'] }]).map((l) => [l.comparison, l.metric])).toEqual([['int8 vs float', 'macroF1']]);
  });

  test('with both evaluations\' predictions, the lift carries a paired bootstrap interval', () => {
    const rows = (correct: number) => Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, label: i % 2 ? 'spam' : 'ham', predicted: i < correct ? (i % 2 ? 'spam' : 'ham') : i % 2 ? 'ham' : 'spam' }));
    const [good, bad] = [{ name: 'good', accuracy: 0.95, predictions: rows(190) }, { name: 'bad', accuracy: 0.6, predictions: rows(120) }];
    const [lift] = computeLifts([good, bad], [{ candidate: 'good', baseline: 'bad', metrics: ['accuracy'] }]);
    expect(lift.interval).toMatchObject({ ok: true, records: 200, resamples: 1000 });
    const interval = lift.interval as { low: number; high: number };
    expect(interval.low).toBeGreaterThan(0);
    expect(interval.low).toBeLessThan(0.35);
    expect(interval.high).toBeGreaterThan(0.35);
    // evaluations of different splits are not paired, whatever their records are called
    const [onTest, onValidation] = [{ ...good, split: 'test' }, { ...bad, split: 'validation' }];
    expect(computeLifts([onTest, onValidation], [{ candidate: 'good', baseline: 'bad', metrics: ['accuracy'] }])[0].interval).toEqual({
      ok: false,
      reason: 'not evaluated on the same records: "good" scored the test split, "bad" the validation split',
    });
  });

  test('no lift without an exact counterpart or without a shared metric', () => {
    expect(computeLifts([evaluation('evaluate-two-phase', 0.9), evaluation('evaluate-single-phase-v2', 0.8)])).toEqual([]);
    expect(computeLifts([evaluation('evaluate-two-phase', 0.9), evaluation('evaluate-single-phase', undefined, 0.8)])).toEqual([]);
    expect(computeLifts([evaluation('evaluate-two-phase', 0.9)])).toEqual([]);
  });
});

describe('sections without data', () => {
  test('a data-only run has no charts and no ML sections', () => {
    const model = buildReportModel(runOf({ collect: stage('collect', { records: 10 }), clean: stage('clean', { input: 10, output: 9 }) }));
    expect(model).toMatchObject({ training: [], evaluations: [], distillations: [], quantizations: [], lifts: [] });
    expect(buildCharts(model)).toEqual([]);
  });

  test('malformed metrics are skipped, not trusted', () => {
    const model = buildReportModel(
      runOf({
        ft: stage('finetune', { history: 'not an array' }),
        ft2: stage('finetune', { history: [{ step: 1 }, { step: 2, loss: 'x' }, { step: 3, loss: 0.5, valLoss: null }] }),
        ev: stage('evaluate', { accuracy: 0.7, confusion: { labels: ['a', 'b'], matrix: [[1, 2]] }, modelBytes: 'big' }),
        failed: stage('evaluate', {}, { status: 'failed', error: 'gate failed' }),
      }),
    );
    expect(model.training).toEqual([expect.objectContaining({ name: 'ft2', history: [{ step: 3, loss: 0.5 }] })]);
    expect(model.evaluations).toEqual([{ name: 'ev', accuracy: 0.7 }]);
    expect(buildCharts(model).map((c) => c.id)).toEqual(['loss-curves', 'evaluation-comparison']);
  });
});

test('stage table paths are relative to the run directory; cached outputs point into the run they came from', () => {
  const base = outputBase(summary);
  expect(base).toBe('s3://tempered-artifacts/runs/spam-domain-adaptation/20260314-090000-7f3a2c/');
  expect(relativeUri(summary.stages['domain-clean'].outputs[0].uri, base)).toBe('domain-clean/records.jsonl');
  expect(relativeUri(summary.stages['general-collect'].outputs[0].uri, base)).toBe('../20260307-090000-c41e9b/general-collect/records.jsonl');
  expect(relativeUri('file:///data/x.jsonl', base)).toBe('file:///data/x.jsonl');
  expect(relativeUri('s3://other-bucket/runs/x.jsonl', base)).toBe('s3://other-bucket/runs/x.jsonl');
});

test('data stage metrics read as counts by reason, zero reasons left out', () => {
  expect(describeMetrics(summary.stages['domain-clean'].metrics)).toEqual(
    expect.arrayContaining([
      ['input', '12,044'],
      ['output', '9,640'],
      ['removed', 'tooShort 37, tooLong 186, exactDuplicate 1,305, nearDuplicate 876'],
      ['redacted', 'emails 14,382, phones 1,207, ips 2,216, cards 3'],
    ]),
  );
  expect(describeMetrics(summary.stages['general-clean'].metrics)).toContainEqual(['redacted', 'none']);
  expect(describeMetrics({ bytes: 63112448, wallTimeMs: 51873, latencyMs: 5.52 })).toEqual([
    ['bytes', '60.2 MiB'],
    ['wallTimeMs', '51.9 s'],
    ['latencyMs', '5.52 ms'],
  ]);
});

test('inlined SVGs get chart-scoped ids and a labelled graphics-document root', () => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10"><defs><linearGradient id="gradient_0"/><clipPath id="clip1"/></defs><rect fill="url(#gradient_0)" clip-path="url(#clip1)"/></svg>';
  const out = finishSvg(svg, { id: 'confusion-a', description: 'rows are "true" labels' });
  expect(out).toMatch(/^<svg role="graphics-document" aria-roledescription="visualization" aria-label="rows are &quot;true&quot; labels" data-chart="confusion-a" xmlns=/);
  expect(out).toContain('id="confusion-a-gradient_0"');
  expect(out).toContain('fill="url(#confusion-a-gradient_0)" clip-path="url(#confusion-a-clip1)"');
});

test('size axis ticks are powers of two inside the domain', () => {
  expect(binaryTicks(100_000, 5_400_000)).toEqual([131072, 262144, 524288, 1048576, 2097152, 4194304]);
});

test('--open uses the platform opener', () => {
  expect(openCommand('/r/index.html', 'linux')).toEqual(['xdg-open', ['/r/index.html']]);
  expect(openCommand('/r/index.html', 'darwin')).toEqual(['open', ['/r/index.html']]);
  expect(openCommand('C:\\r\\index.html', 'win32')).toEqual(['cmd', ['/c', 'start', '', 'C:\\r\\index.html']]);
});

test('train loss is smoothed by a trailing mean over ~4% of the steps', () => {
  expect(trailingMean([1, 2, 3, 4, 5], 2)).toEqual([1, 1.5, 2.5, 3.5, 4.5]);
  expect(trailingMean([3, 1], 1)).toEqual([3, 1]);
  expect([10, 180, 300].map(smoothingWindow)).toEqual([1, 7, 12]);
  const rows = lossRows(buildReportModel(summary).training.filter((t) => t.name === 'general-finetune'));
  const train = rows.filter((r) => r.series === 'train loss');
  expect(train[11].smoothed).toBeCloseTo(train.slice(0, 12).reduce((s, r) => s + r.loss, 0) / 12, 10);
  expect(rows.filter((r) => r.series === 'validation loss').every((r) => r.smoothed === undefined)).toBe(true);
});
