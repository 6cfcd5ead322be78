// Vega-Lite is ESM-only and its types resolve only through its `exports` map; the attribute lets
// this CommonJS project (moduleResolution node) see them. Types only: nothing is required here.
import type { TopLevelSpec } from 'vega-lite' with { 'resolution-mode': 'import' };
import { confusionRows, cycleModelLabel, forgettingMatrix, type Evaluation, type Promotion, type ReportModel, type TrainingStage } from './report-model';

// The report's figures as Vega-Lite specs, built from the report model. Pure: rendering is
// svg-render.ts's job, so tests can check the data each chart plots without drawing it.

/** One figure: `id` names its file (`<id>.svg`) and its anchor in the page. */
export interface ChartSpec {
  id: string;
  title: string;
  /** What the chart shows, for screen readers (the SVG's aria-label) and the caption. */
  description: string;
  spec: TopLevelSpec;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Shared look: sans-serif text (no canvas is needed to lay it out), white background. */
const CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  padding: 8,
  title: { anchor: 'start', fontSize: 14, fontWeight: 600, offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 500, gridColor: '#e5e7eb', domainColor: '#9ca3af', tickColor: '#9ca3af' },
  // Without a canvas Vega overestimates text widths, so its default 160 px limit truncates stage names.
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 500, labelLimit: 0 },
  header: { labelFontSize: 12, labelFontWeight: 600 },
  view: { stroke: '#e5e7eb' },
} as const;

/** Every chart the model has data for, in page order. */
export function buildCharts(model: ReportModel): ChartSpec[] {
  const charts: Array<ChartSpec | undefined> = [
    lossCurvesChart(model.training),
    learningRateChart(model.training),
    evaluationComparisonChart(model.evaluations),
    sizeQualityChart(model.evaluations),
    robustnessChart(model.evaluations),
    ...model.evaluations.map(confusionChart),
    ...model.promotions.flatMap((p) => [forgettingChart(p), gainForgettingChart(p)]),
  ];
  return charts.filter((c): c is ChartSpec => c !== undefined);
}

/** Rows of the loss-curves chart: train loss (raw and smoothed) and validation loss of every training stage. */
export function lossRows(training: readonly TrainingStage[]): LossRow[] {
  return training.flatMap((t) => {
    const smoothed = trailingMean(
      t.history.map((p) => p.loss),
      smoothingWindow(t.history.length),
    );
    return t.history.flatMap((p, i) => {
      const rows: LossRow[] = [{ stage: t.name, step: p.step, series: 'train loss', loss: p.loss, smoothed: smoothed[i], best: p.step === t.bestStep }];
      if (p.valLoss !== undefined) rows.push({ stage: t.name, step: p.step, series: 'validation loss', loss: p.valLoss, best: false });
      return rows;
    });
  });
}

export interface LossRow {
  stage: string;
  step: number;
  series: 'train loss' | 'validation loss';
  loss: number;
  /** Train rows: the trailing mean the chart draws over the noisy per-step loss. */
  smoothed?: number;
  /** The stage's best (kept) step. */
  best: boolean;
}

/** Points averaged for the smoothed train loss: ~4% of the history, so every curve looks alike whatever its length. */
export function smoothingWindow(points: number): number {
  return Math.max(1, Math.round(points / 25));
}

/** Mean of each value and the `window − 1` before it (fewer at the start). */
export function trailingMean(values: readonly number[], window: number): number[] {
  let sum = 0;
  return values.map((v, i) => {
    sum += v - (i >= window ? values[i - window] : 0);
    return sum / Math.min(i + 1, window);
  });
}

/** Small multiples, one per training stage: a causal-LM loss (~4–8 nats) and a classifier's (<1) need their own y scales. */
export function lossCurvesChart(training: readonly TrainingStage[]): ChartSpec | undefined {
  if (training.length === 0) return undefined;
  const title = 'Training loss';
  const series = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain: ['train loss', 'validation loss'], range: ['#4c78a8', '#f58518'] },
    legend: { symbolOpacity: 1 }, // not the faint raw line's
  } as const;
  const x = { field: 'step', type: 'quantitative', title: 'step' } as const;
  const train = { filter: "datum.series === 'train loss'" };
  return {
    id: 'loss-curves',
    title,
    description: `Loss by step for ${training.map((t) => t.name).join(', ')}: train loss per step (faint) and its trailing mean, validation loss at each validation; the dashed rule marks each stage's best step.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      data: { values: lossRows(training) },
      facet: { field: 'stage', type: 'nominal', title: null, sort: training.map((t) => t.name) },
      columns: 2,
      spec: {
        width: 300,
        height: 160,
        encoding: { x, color: series },
        layer: [
          { transform: [train], mark: { type: 'line', strokeWidth: 1, opacity: 0.3 }, encoding: { y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } } } },
          { transform: [train], mark: { type: 'line', strokeWidth: 1.8 }, encoding: { y: { field: 'smoothed', type: 'quantitative' } } },
          {
            transform: [{ filter: "datum.series === 'validation loss'" }],
            mark: { type: 'line', strokeWidth: 1.8, point: { filled: true, size: 28 } },
            encoding: { y: { field: 'loss', type: 'quantitative' } },
          },
          { transform: [{ filter: 'datum.best' }], mark: { type: 'rule', strokeDash: [4, 3], color: '#6b7280' }, encoding: { x, color: { value: '#6b7280' } } },
        ],
      },
      resolve: { scale: { x: 'independent', y: 'independent' } },
    },
  };
}

export function learningRateChart(training: readonly TrainingStage[]): ChartSpec | undefined {
  const rows = training.flatMap((t) => t.history.flatMap((p) => (p.lr === undefined ? [] : [{ stage: t.name, step: p.step, lr: p.lr }])));
  if (rows.length === 0) return undefined;
  const title = 'Learning-rate schedule';
  return {
    id: 'learning-rate',
    title,
    description: `Learning rate by step for ${[...new Set(rows.map((r) => r.stage))].join(', ')}.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width: 560,
      height: 140,
      data: { values: rows },
      mark: { type: 'line', strokeWidth: 1.6 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: { field: 'lr', type: 'quantitative', title: 'learning rate', axis: { format: '.1e' } },
        color: { field: 'stage', type: 'nominal', title: 'stage', sort: training.map((t) => t.name) },
      },
    },
  };
}

/** Accuracy and macro-F1 of every evaluate stage, side by side. */
export function comparisonRows(evaluations: readonly Evaluation[]): Array<{ stage: string; metric: string; value: number }> {
  return evaluations.flatMap((e) => [
    ...(e.accuracy === undefined ? [] : [{ stage: e.name, metric: 'accuracy', value: e.accuracy }]),
    ...(e.macroF1 === undefined ? [] : [{ stage: e.name, metric: 'macro-F1', value: e.macroF1 }]),
  ]);
}

export function evaluationComparisonChart(evaluations: readonly Evaluation[]): ChartSpec | undefined {
  const rows = comparisonRows(evaluations);
  if (rows.length === 0) return undefined;
  const title = 'Accuracy and macro-F1 by evaluation';
  const stages = [...new Set(rows.map((r) => r.stage))];
  return {
    id: 'evaluation-comparison',
    title,
    description: `Accuracy and macro-F1 on the test split for ${stages.join(', ')}.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width: 140 * stages.length,
      height: 220,
      data: { values: rows },
      encoding: {
        x: { field: 'stage', type: 'nominal', title: null, sort: stages, axis: { labelAngle: 0, labelLimit: 0 } },
        xOffset: { field: 'metric', type: 'nominal', sort: ['accuracy', 'macro-F1'] },
        y: { field: 'value', type: 'quantitative', title: null, scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      },
      layer: [
        { mark: { type: 'bar', width: { band: 0.9 } }, encoding: { color: { field: 'metric', type: 'nominal', title: null, scale: { range: ['#4c78a8', '#54a24b'] } } } },
        { mark: { type: 'text', dy: -6, fontSize: 11 }, encoding: { text: { field: 'value', type: 'quantitative', format: '.1%' } } },
      ],
    },
  };
}

/** Model size against macro-F1: what compression cost. */
export function sizeQualityRows(evaluations: readonly Evaluation[]): Array<{ stage: string; model: string; modelBytes: number; macroF1: number }> {
  return evaluations.flatMap((e) =>
    e.modelBytes === undefined || e.macroF1 === undefined || e.modelBytes <= 0 ? [] : [{ stage: e.name, model: e.model ?? e.name, modelBytes: e.modelBytes, macroF1: e.macroF1 }],
  );
}

export function sizeQualityChart(evaluations: readonly Evaluation[]): ChartSpec | undefined {
  const rows = sizeQualityRows(evaluations);
  if (rows.length === 0) return undefined;
  const title = 'Model size vs macro-F1';
  const bytes = rows.map((r) => r.modelBytes);
  const domain: [number, number] = [Math.min(...bytes) / 2, Math.max(...bytes) * 2];
  const f1 = rows.map((r) => r.macroF1);
  const spread = Math.max(0.02, Math.max(...f1) - Math.min(...f1));
  return {
    id: 'size-quality',
    title,
    description: `Model size in bytes (log scale) against macro-F1 for ${rows.map((r) => r.stage).join(', ')}.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width: 480,
      height: 240,
      data: { values: rows },
      encoding: {
        x: {
          field: 'modelBytes',
          type: 'quantitative',
          title: 'model size (log scale)',
          scale: { type: 'log', domain },
          axis: { values: binaryTicks(domain[0], domain[1]), labelExpr: "datum.value >= 1048576 ? format(datum.value / 1048576, '~g') + ' MiB' : format(datum.value / 1024, '~g') + ' KiB'" },
        },
        y: {
          field: 'macroF1',
          type: 'quantitative',
          title: 'macro-F1',
          scale: { domain: [Math.max(0, Math.min(...f1) - spread * 0.3), Math.min(1, Math.max(...f1) + spread * 0.3)] },
          axis: { format: '.1%' },
        },
      },
      layer: [
        { mark: { type: 'point', filled: true, size: 90, color: '#4c78a8' } },
        { mark: { type: 'text', align: 'left', dx: 8, dy: -6, fontSize: 11 }, encoding: { text: { field: 'stage', type: 'nominal' } } },
      ],
    },
  };
}

/** Powers of two from 1 KiB inside [lo, hi]: axis ticks that read as round sizes (128 KiB, 1 MiB). */
export function binaryTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let v = 1024; v <= hi; v *= 2) if (v >= lo) ticks.push(v);
  return ticks;
}

/**
 * How each metric changed on perturbed inputs, in percentage points: negative when it fell, the
 * sign the evaluation table and the CLI headline use too.
 */
export function robustnessRows(evaluations: readonly Evaluation[]): Array<{ stage: string; metric: string; change: number }> {
  return evaluations.flatMap((e) => {
    const drop = e.robustness?.drop;
    return [
      ...(drop?.accuracy === undefined ? [] : [{ stage: e.name, metric: 'accuracy', change: -drop.accuracy * 100 }]),
      ...(drop?.macroF1 === undefined ? [] : [{ stage: e.name, metric: 'macro-F1', change: -drop.macroF1 * 100 }]),
    ];
  });
}

export function robustnessChart(evaluations: readonly Evaluation[]): ChartSpec | undefined {
  const rows = robustnessRows(evaluations);
  if (rows.length === 0) return undefined;
  const title = 'Robustness: change on perturbed inputs';
  const stages = [...new Set(rows.map((r) => r.stage))];
  return {
    id: 'robustness',
    title,
    description: `Change in accuracy and macro-F1, in percentage points (negative: worse), when the test inputs carry typos, synonym swaps and case flips, for ${stages.join(', ')}.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width: 140 * stages.length,
      height: 160,
      data: { values: rows },
      encoding: {
        x: { field: 'stage', type: 'nominal', title: null, sort: stages, axis: { labelAngle: 0, labelLimit: 0 } },
        xOffset: { field: 'metric', type: 'nominal', sort: ['accuracy', 'macro-F1'] },
        y: { field: 'change', type: 'quantitative', title: 'change (points)' },
      },
      layer: [
        { mark: { type: 'bar', width: { band: 0.9 } }, encoding: { color: { field: 'metric', type: 'nominal', title: null, scale: { range: ['#e45756', '#f58518'] } } } },
        { mark: { type: 'text', dy: -6, fontSize: 11 }, encoding: { text: { field: 'change', type: 'quantitative', format: '+.1f' } } },
      ],
    },
  };
}

/** A heat map of one evaluation's confusion matrix: colour is the share of the true label's row, text the count. */
export function confusionChart(evaluation: Evaluation): ChartSpec | undefined {
  const confusion = evaluation.confusion;
  if (!confusion) return undefined;
  const title = `Confusion matrix: ${evaluation.name}`;
  const cell = Math.max(36, Math.min(80, Math.floor(320 / confusion.labels.length)));
  const axis = (title: string) => ({ field: '', type: 'nominal', title, sort: confusion.labels, axis: { labelAngle: 0, ticks: false, domain: false } }) as const;
  return {
    id: confusionChartId(evaluation.name),
    title,
    description: `Confusion matrix of ${evaluation.name}${evaluation.model ? ` (model ${evaluation.model})` : ''}: rows are true labels, columns predicted labels, cells show counts.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width: cell * confusion.labels.length,
      height: cell * confusion.labels.length,
      data: { values: confusionRows(confusion) },
      encoding: {
        x: { ...axis('predicted'), field: 'predicted', axis: { ...axis('').axis, orient: 'top' } },
        y: { ...axis('true label'), field: 'actual' },
      },
      layer: [
        {
          mark: { type: 'rect', stroke: 'white', strokeWidth: 2 },
          encoding: { color: { field: 'share', type: 'quantitative', title: 'share of row', scale: { scheme: 'blues', domain: [0, 1] }, legend: { format: '.0%', gradientLength: 100 } } },
        },
        {
          mark: { type: 'text', fontSize: 13, fontWeight: 600 },
          encoding: {
            text: { field: 'count', type: 'quantitative', format: ',' },
            color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: '#111827' },
          },
        },
      ],
    },
  };
}

/**
 * The forgetting map of a continual pipeline: each cycle's candidate (rows) on the test split of
 * every cycle up to its own (columns). Reading down a column shows whether later models kept
 * what the split's cycle taught; colour is scaled to the values' own range, since cycles differ by
 * points, not tens of points.
 */
export function forgettingChart(promotion: Promotion): ChartSpec | undefined {
  const cells = forgettingMatrix(promotion);
  if (cells.length === 0) return undefined;
  const metric = metricLabel(promotion.metric);
  const title = `Forgetting map: ${metric} of each cycle's model on every test split`;
  const rows = promotion.history.map(cycleModelLabel);
  const splits = [...new Set(cells.map((c) => c.split))].sort((a, b) => a - b);
  const values = cells.map((c) => c.value);
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const domain: [number, number] = hi - lo < 0.01 ? [Math.max(0, hi - 0.01), Math.min(1, lo + 0.01)] : [lo, hi];
  const cell = Math.max(56, Math.min(90, Math.floor(400 / Math.max(rows.length, splits.length))));
  const noAxisLine = { labelAngle: 0, ticks: false, domain: false, labelLimit: 0 } as const;
  return {
    id: forgettingChartId(promotion.name),
    title,
    description: `${metric} of the candidate model of each cycle (rows; promoted ones marked) on the test split of that cycle and every earlier one (columns), from ${promotion.name}.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width: cell * splits.length,
      height: Math.round(cell * 0.6) * rows.length,
      data: { values: cells },
      encoding: {
        x: { field: 'split', type: 'ordinal', title: 'test split of cycle', sort: splits, axis: { ...noAxisLine, orient: 'top' } },
        y: { field: 'model', type: 'nominal', title: 'model', sort: rows, axis: noAxisLine },
      },
      layer: [
        {
          mark: { type: 'rect', stroke: 'white', strokeWidth: 2 },
          encoding: { color: { field: 'value', type: 'quantitative', title: metric, scale: { scheme: 'blues', domain }, legend: { format: '.1%', gradientLength: 100 } } },
        },
        {
          mark: { type: 'text', fontSize: 12, fontWeight: 600 },
          encoding: {
            text: { field: 'value', type: 'quantitative', format: '.1%' },
            color: { condition: { test: `datum.value > ${domain[0] + (domain[1] - domain[0]) * 0.55}`, value: 'white' }, value: '#111827' },
          },
        },
      ],
    },
  };
}

/** Gain and mean forgetting of every cycle that had a champion to compare with, in percentage points. */
export function gainForgettingRows(promotion: Promotion): Array<{ cycle: number; series: 'gain' | 'forgetting (mean)'; points: number }> {
  return promotion.history.flatMap((c) => [
    ...(c.gain === undefined ? [] : [{ cycle: c.cycle, series: 'gain' as const, points: c.gain * 100 }]),
    ...(c.forgetting === undefined ? [] : [{ cycle: c.cycle, series: 'forgetting (mean)' as const, points: c.forgetting.mean * 100 }]),
  ]);
}

const GAIN_COLOR = '#54a24b';
const FORGETTING_COLOR = '#e45756';

/** Per cycle, what the candidate gained on the new split and forgot on the old ones, against the gate's dashed thresholds. */
export function gainForgettingChart(promotion: Promotion): ChartSpec | undefined {
  const rows = gainForgettingRows(promotion);
  if (rows.length === 0) return undefined;
  const title = 'Gain and forgetting by cycle';
  const cycles = promotion.history.map((c) => c.cycle);
  const x = { field: 'cycle', type: 'ordinal', title: 'cycle', sort: cycles, scale: { domain: cycles }, axis: { labelAngle: 0 } } as const;
  const xOffset = { field: 'series', type: 'nominal', sort: ['gain', 'forgetting (mean)'] } as const;
  const y = { field: 'points', type: 'quantitative', title: 'points' } as const;
  const width = Math.max(220, 90 * cycles.length);
  const gate = promotion.gate;
  // A dashed rule per gate threshold, labelled right of the plot where no bar can hide the label.
  const threshold = (label: string, points: number, color: string) => [
    { data: { values: [{ points }] }, mark: { type: 'rule' as const, strokeDash: [5, 4], strokeWidth: 1.4, color }, encoding: { y } },
    {
      data: { values: [{ points, label }] },
      mark: { type: 'text' as const, align: 'left' as const, baseline: 'middle' as const, dx: 4, fontSize: 10, color },
      encoding: { y, x: { value: width }, text: { field: 'label' } },
    },
  ];
  const thresholds = gate
    ? [
        ...threshold(`min gain ${formatGatePoints(gate.minGain)}`, gate.minGain * 100, GAIN_COLOR),
        ...threshold(`max forgetting ${formatGatePoints(gate.maxForgetting)}`, gate.maxForgetting * 100, FORGETTING_COLOR),
      ]
    : [];
  return {
    id: gainForgettingChartId(promotion.name),
    title,
    description: `Per cycle, the candidate's ${metricLabel(promotion.metric)} gain over the champion on the new test split and its mean forgetting on the earlier ones, in percentage points${gate ? '; dashed rules mark the gate (gain at least, forgetting at most)' : ''}.`,
    spec: {
      $schema: SCHEMA,
      title,
      config: CONFIG,
      width,
      height: 200,
      data: { values: rows },
      layer: [
        {
          mark: { type: 'bar', width: { band: 0.9 } },
          encoding: { x, xOffset, y, color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['gain', 'forgetting (mean)'], range: [GAIN_COLOR, FORGETTING_COLOR] } } },
        },
        { mark: { type: 'text', dy: -6, fontSize: 10 }, encoding: { x, xOffset, y, text: { field: 'points', type: 'quantitative', format: '+.1f' } } },
        ...thresholds,
      ],
    },
  };
}

export function forgettingChartId(promotion: string): string {
  return `forgetting-${slug(promotion)}`;
}

export function gainForgettingChartId(promotion: string): string {
  return `gain-forgetting-${slug(promotion)}`;
}

function metricLabel(metric: string): string {
  return metric === 'macroF1' ? 'macro-F1' : metric;
}

function formatGatePoints(fraction: number): string {
  return `${(fraction * 100).toFixed(1)} pts`;
}

export function confusionChartId(evaluation: string): string {
  return `confusion-${slug(evaluation)}`;
}

/** A file- and anchor-safe form of a stage name. */
export function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'stage';
}
