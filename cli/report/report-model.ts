import * as path from 'node:path';
import type { Metrics, RunSummary, StageProgress } from '../../workflows/types';
import { pairedBootstrap, type BootstrapResult, type PredictionRow } from './bootstrap';

// What the report shows, read out of a run summary. Stage metrics arrive as untyped JSON, so every
// field is checked here once; a stage missing a field simply contributes nothing to the sections
// that need it, and a section with no data is skipped.

/** One point of a training stage's `metrics.history`. */
export interface HistoryPoint {
  step: number;
  loss: number;
  lr?: number;
  valLoss?: number;
  valAccuracy?: number;
  valF1?: number;
}

/** A `finetune` or `distill` stage with a loss history. */
export interface TrainingStage {
  name: string;
  type: string;
  history: HistoryPoint[];
  objective?: string;
  /** Optimizer steps run (fewer than planned when stopped early). */
  steps?: number;
  /** Set when a retried attempt continued from a checkpoint. */
  resumedFromStep?: number;
  parameters?: number;
  trainableParameters?: number;
  trainableFraction?: number;
  tokensPerSec?: number;
  backend?: string;
  threads?: number;
  peakRssBytes?: number;
  wallTimeMs?: number;
  bestStep?: number;
  stoppedEarly?: boolean;
}

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Rows are the true labels, columns the predicted ones. */
export interface Confusion {
  labels: string[];
  matrix: number[][];
}

export interface GateReport {
  passed: boolean;
  checks: unknown[];
}

/** An `evaluate` stage's metrics. */
export interface Evaluation {
  name: string;
  /** The evaluated stage. */
  model?: string;
  accuracy?: number;
  macroF1?: number;
  perClass?: Record<string, ClassScores>;
  confusion?: Confusion;
  perplexity?: number;
  bleu?: number;
  rouge?: { rouge1?: number; rouge2?: number; rougeL?: number };
  robustness?: { accuracy?: number; macroF1?: number; drop?: { accuracy?: number; macroF1?: number } };
  efficiency?: { samplesPerSec?: number; tokensPerSec?: number; peakRssBytes?: number; wallTimeMs?: number };
  modelBytes?: number;
  modelParameters?: number;
  gate?: GateReport;
  /** The split evaluated, and how many records. */
  split?: string;
  examples?: number;
  /** Per-record predictions, when the report could read them from the store. */
  predictions?: PredictionRow[];
}

export interface Distillation {
  name: string;
  teacherParameters?: number;
  studentParameters?: number;
  /** teacherParameters / studentParameters. */
  compression?: number;
  /** Validation macro-F1 of teacher and student. */
  teacherMetric?: number;
  studentMetric?: number;
  /** studentMetric / teacherMetric: the share of the teacher's quality the student keeps. */
  studentTeacherRatio?: number;
  /** Teacher latency / student latency. */
  speedup?: number;
}

export interface Quantization {
  name: string;
  model?: string;
  bytesBefore?: number;
  bytesAfter?: number;
  /** 1 − bytesAfter / bytesBefore. */
  reduction?: number;
  /** The metric compared before and after (e.g. `macroF1`). */
  metric?: string;
  metricBefore?: number;
  metricAfter?: number;
  metricDelta?: unknown;
  /** Share of examples both models classify alike. */
  predictionAgreement?: number;
  latencyBeforeMs?: number;
  latencyAfterMs?: number;
}

export type LiftMetric = 'accuracy' | 'macroF1' | 'perplexity' | 'bleu' | 'rougeL';

/** Metrics where lower is better; a lift on them is still reported as candidate − baseline. */
const LOWER_IS_BETTER: ReadonlySet<LiftMetric> = new Set(['perplexity']);

/** How much a candidate evaluation gained over its baseline on one metric (a `report.compare` entry). */
export interface Lift {
  /** The comparison's name, e.g. `two-phase vs single-phase`. */
  comparison: string;
  metric: LiftMetric;
  candidate: string;
  baseline: string;
  candidateValue: number;
  baselineValue: number;
  /** candidate − baseline, in metric units (0.045 = 4.5 points). */
  absolute: number;
  /** absolute / baseline (0.049 = +4.9 %). */
  relative: number;
  /** The candidate did worse than its baseline (lower, or higher where lower is better). */
  worse: boolean;
  /** 95% paired bootstrap interval of `absolute` over the test records, or why there is none. */
  interval?: BootstrapResult;
}

export type PromotionMetric = 'accuracy' | 'macroF1';

/** One model's metric on one cycle's test split. */
export interface SplitScore {
  /** The cycle whose test split this is. */
  cycle: number;
  candidate: number;
  /** The champion's value, when there was a champion. */
  champion?: number;
  examples: number;
}

/** One completed cycle of a continual pipeline, as a `promote` stage records it. */
export interface CycleOutcome {
  cycle: number;
  runId: string;
  promoted: boolean;
  reason: string;
  candidateVersion: number;
  /** Absent in the first cycle. */
  championVersion?: number;
  /** Candidate − champion on the cycle's new test split. */
  gain?: number;
  /** Champion − candidate on the earlier test splits (positive = forgotten). */
  forgetting?: { mean: number; max: number };
  /** One per test split so far, in cycle order. */
  evaluations: SplitScore[];
}

/** A `promote` stage: this cycle's gate decision, and the history of every cycle so far. */
export interface Promotion {
  name: string;
  registry?: string;
  metric: PromotionMetric;
  /** This run's cycle (1-based). */
  cycle: number;
  candidateVersion: number;
  championVersion?: number;
  promoted: boolean;
  reason?: string;
  gain?: number;
  forgetting?: { mean: number; max: number };
  gate?: { minGain: number; maxForgetting: number; min?: number };
  /** Every completed cycle, this one last. */
  history: CycleOutcome[];
}

/** A cell of the forgetting map: the metric of cycle `cycle`'s candidate on cycle `split`'s test split. */
export interface ForgettingCell {
  /** Row label: `cycle 2 (v2, promoted)`. */
  model: string;
  cycle: number;
  split: number;
  value: number;
  champion?: number;
  examples: number;
  promoted: boolean;
}

export interface ReportModel {
  summary: RunSummary;
  training: TrainingStage[];
  evaluations: Evaluation[];
  distillations: Distillation[];
  quantizations: Quantization[];
  lifts: Lift[];
  promotions: Promotion[];
}

export const TRAINING_TYPES: ReadonlySet<string> = new Set(['finetune', 'distill']);
/** Stages whose loss curve the training charts plot: the built-in trainers, and a bring-your-own trainer's progress lines. */
const CURVE_TYPES: ReadonlySet<string> = new Set([...TRAINING_TYPES, 'command']);
export const DATA_TYPES: ReadonlySet<string> = new Set(['collect', 'clean', 'split', 'augment']);

/** Reads every section's data out of a run summary. Pure. */
export function buildReportModel(summary: RunSummary): ReportModel {
  const stages = Object.entries(summary.stages);
  const ofType = (type: string) => stages.filter(([, s]) => s.type === type);
  const training = stages.filter(([, s]) => CURVE_TYPES.has(s.type)).flatMap(([name, s]) => readTraining(name, s) ?? []);
  const evaluations = ofType('evaluate').flatMap(([name, s]) => readEvaluation(name, s.metrics) ?? []);
  return {
    summary,
    training,
    evaluations,
    distillations: ofType('distill').flatMap(([name, s]) => readDistillation(name, s.metrics) ?? []),
    quantizations: ofType('quantize').flatMap(([name, s]) => readQuantization(name, s.metrics) ?? []),
    lifts: computeLifts(evaluations, summary.comparisons),
    promotions: ofType('promote').flatMap(([name, s]) => readPromotion(name, s.metrics) ?? []),
  };
}

/** A comparison as the run summary carries it (the spec's `report.compare`). */
export type ComparisonEntry = NonNullable<RunSummary['comparisons']>[number];

/**
 * Lifts of the declared comparisons, on each metric both evaluations report (or the ones the
 * comparison lists). A run without declared comparisons (one from before `report.compare`) pairs
 * evaluations by name, `…two-phase…` with `…single-phase…`, as it always did.
 */
export function computeLifts(evaluations: readonly Evaluation[], comparisons?: readonly ComparisonEntry[]): Lift[] {
  const byName = new Map(evaluations.map((e) => [e.name, e]));
  const lifts: Lift[] = [];
  for (const c of comparisons ?? pairsByName(evaluations)) {
    const [candidate, baseline] = [byName.get(c.candidate), byName.get(c.baseline)];
    if (!candidate || !baseline) continue;
    const metrics = (c.metrics as LiftMetric[] | undefined) ?? (['accuracy', 'macroF1', 'perplexity', 'bleu', 'rougeL'] as const);
    for (const metric of metrics) {
      const [a, b] = [metricOf(candidate, metric), metricOf(baseline, metric)];
      if (a === undefined || b === undefined) continue;
      const absolute = a - b;
      const interval = metric === 'accuracy' || metric === 'macroF1' || metric === 'rougeL' ? liftInterval(candidate, baseline, metric) : undefined;
      lifts.push(dropUndefined({
        comparison: c.name ?? `${c.candidate} vs ${c.baseline}`,
        metric,
        candidate: c.candidate,
        baseline: c.baseline,
        candidateValue: a,
        baselineValue: b,
        absolute,
        relative: b === 0 ? NaN : absolute / b,
        worse: LOWER_IS_BETTER.has(metric) ? absolute > 0 : absolute < 0,
        interval,
      }));
    }
  }
  return lifts;
}

/** The paired bootstrap interval of a lift, or why there is none: both evaluations must have scored the same records. */
function liftInterval(candidate: Evaluation, baseline: Evaluation, metric: 'accuracy' | 'macroF1' | 'rougeL'): BootstrapResult {
  if (candidate.split && baseline.split && candidate.split !== baseline.split) {
    return { ok: false, reason: `not evaluated on the same records: "${candidate.name}" scored the ${candidate.split} split, "${baseline.name}" the ${baseline.split} split` };
  }
  if (!candidate.predictions || !baseline.predictions) {
    return { ok: false, reason: 'per-record predictions are not available (an evaluation from before they were stored, or a report made without the store)' };
  }
  return pairedBootstrap(candidate.predictions, baseline.predictions, metric);
}

function metricOf(e: Evaluation, metric: LiftMetric): number | undefined {
  return metric === 'rougeL' ? e.rouge?.rougeL : e[metric];
}

/** The old convention: `evaluate-two-phase` against `evaluate-single-phase`. */
function pairsByName(evaluations: readonly Evaluation[]): ComparisonEntry[] {
  const names = new Set(evaluations.map((e) => e.name));
  const pairs: ComparisonEntry[] = [];
  for (const two of evaluations) {
    for (const at of occurrences(two.name, 'two-phase')) {
      const single = `${two.name.slice(0, at)}single-phase${two.name.slice(at + 'two-phase'.length)}`;
      if (names.has(single)) pairs.push({ name: 'two-phase vs single-phase', candidate: two.name, baseline: single, metrics: ['accuracy', 'macroF1'] });
    }
  }
  return pairs;
}

/** Confusion matrix cells as chart rows, with the share of the true label's row. */
export function confusionRows(confusion: Confusion): Array<{ actual: string; predicted: string; count: number; share: number }> {
  return confusion.labels.flatMap((actual, i) => {
    const row = confusion.matrix[i];
    const total = row.reduce((sum, n) => sum + n, 0);
    return confusion.labels.map((predicted, j) => ({ actual, predicted, count: row[j], share: total === 0 ? 0 : row[j] / total }));
  });
}

/**
 * The "metric per cycle on every split" view: one row per cycle's candidate, one cell per test
 * split it was evaluated on. A model only meets the splits of its own and earlier cycles, so the
 * matrix is lower-triangular.
 */
export function forgettingMatrix(promotion: Promotion): ForgettingCell[] {
  return promotion.history.flatMap((c) =>
    c.evaluations
      .filter((e) => e.cycle <= c.cycle)
      .map((e) => dropUndefined({ model: cycleModelLabel(c), cycle: c.cycle, split: e.cycle, value: e.candidate, champion: e.champion, examples: e.examples, promoted: c.promoted })),
  );
}

/** `cycle 2 (v2, promoted)` */
export function cycleModelLabel(c: Pick<CycleOutcome, 'cycle' | 'candidateVersion' | 'promoted'>): string {
  return `cycle ${c.cycle} (v${c.candidateVersion}${c.promoted ? ', promoted' : ''})`;
}

/** The evaluation to headline: best macro-F1, else best accuracy. */
export function bestEvaluation(evaluations: readonly Evaluation[]): Evaluation | undefined {
  const key = (e: Evaluation) => e.macroF1 ?? e.accuracy ?? -Infinity;
  return evaluations.filter((e) => e.macroF1 !== undefined || e.accuracy !== undefined).reduce<Evaluation | undefined>((best, e) => (best === undefined || key(e) > key(best) ? e : best), undefined);
}

/** Wall time of a stage: what it measured, else the span between its start and end. */
export function stageWallTimeMs(stage: StageProgress): number | undefined {
  const measured = num(stage.metrics.wallTimeMs);
  if (measured !== undefined) return measured;
  if (!stage.startedAt || !stage.endedAt) return undefined;
  const span = Date.parse(stage.endedAt) - Date.parse(stage.startedAt);
  return Number.isFinite(span) && span >= 0 ? span : undefined;
}

/** The directory this run's outputs share (e.g. `s3://bucket/runs/<pipeline>/<run>/`), so tables can show paths relative to it. */
export function outputBase(summary: RunSummary): string | undefined {
  const uris = Object.values(summary.stages)
    .flatMap((s) => s.outputs.map((o) => o.uri))
    .filter((u) => u.includes(`/${summary.runId}/`));
  if (uris.length === 0) return undefined;
  const common = uris.reduce((a, b) => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return a.slice(0, i);
  });
  const base = common.slice(0, common.lastIndexOf('/') + 1);
  return parseUri(base)?.pathname.startsWith('/') ? base : undefined;
}

/** `uri` relative to the directory `base` (`domain-clean/records.jsonl`, `../<other run>/...`); unchanged when they share no bucket or host. */
export function relativeUri(uri: string, base: string | undefined): string {
  const [u, b] = [parseUri(uri), base === undefined ? undefined : parseUri(base)];
  if (!u || !b || u.protocol !== b.protocol || u.host !== b.host) return uri;
  return path.posix.relative(b.pathname, u.pathname) || uri;
}

function parseUri(uri: string): URL | undefined {
  try {
    return new URL(uri);
  } catch {
    return undefined;
  }
}

function readTraining(name: string, stage: StageProgress): TrainingStage | undefined {
  const m = stage.metrics;
  const history = Array.isArray(m.history) ? m.history.flatMap((p) => readHistoryPoint(p) ?? []) : [];
  if (history.length === 0) return undefined;
  return {
    name,
    type: stage.type,
    history,
    objective: str(m.objective),
    steps: num(m.steps),
    resumedFromStep: num(m.resumedFromStep),
    parameters: num(m.parameters),
    trainableParameters: num(m.trainableParameters),
    trainableFraction: num(m.trainableFraction),
    tokensPerSec: num(m.tokensPerSec),
    backend: str(m.backend),
    threads: num(m.threads),
    peakRssBytes: num(m.peakRssBytes),
    wallTimeMs: num(m.wallTimeMs),
    bestStep: num(m.bestStep),
    stoppedEarly: typeof m.stoppedEarly === 'boolean' ? m.stoppedEarly : undefined,
  };
}

function readHistoryPoint(value: unknown): HistoryPoint | undefined {
  if (!isRecord(value)) return undefined;
  const [step, loss] = [num(value.step), num(value.loss)];
  if (step === undefined || loss === undefined) return undefined;
  return dropUndefined({ step, loss, lr: num(value.lr), valLoss: num(value.valLoss), valAccuracy: num(value.valAccuracy), valF1: num(value.valF1) });
}

function readEvaluation(name: string, m: Metrics): Evaluation | undefined {
  const evaluation: Evaluation = dropUndefined({
    name,
    model: str(m.model),
    accuracy: num(m.accuracy),
    macroF1: num(m.macroF1),
    perClass: readPerClass(m.perClass),
    confusion: readConfusion(m.confusion),
    perplexity: num(m.perplexity),
    bleu: num(m.bleu),
    rouge: numbers(m.rouge, ['rouge1', 'rouge2', 'rougeL']),
    robustness: readRobustness(m.robustness),
    // The stage runner measures peak RSS for every stage, outside `efficiency`.
    efficiency: numbers({ peakRssBytes: m.peakRssBytes, ...(isRecord(m.efficiency) ? m.efficiency : {}) }, ['samplesPerSec', 'tokensPerSec', 'peakRssBytes', 'wallTimeMs']),
    modelBytes: num(m.modelBytes),
    modelParameters: num(m.modelParameters),
    gate: isRecord(m.gate) && typeof m.gate.passed === 'boolean' ? { passed: m.gate.passed, checks: Array.isArray(m.gate.checks) ? m.gate.checks : [] } : undefined,
    split: str(m.split),
    examples: num(m.examples),
    predictions: readPredictions(m.predictions),
  });
  return Object.keys(evaluation).length > 1 ? evaluation : undefined;
}

/** Predictions the report read from the evaluation's `predictions` output (see `withPredictions`). */
function readPredictions(value: unknown): PredictionRow[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const rows = value.filter((r): r is PredictionRow => isRecord(r) && typeof r.id === 'string' && typeof r.label === 'string' && typeof r.predicted === 'string');
  return rows.length > 0 ? rows : undefined;
}

function readPerClass(value: unknown): Record<string, ClassScores> | undefined {
  if (!isRecord(value)) return undefined;
  const entries = Object.entries(value).flatMap(([label, scores]) => {
    const s = numbers(scores, ['precision', 'recall', 'f1', 'support']);
    return s && s.precision !== undefined && s.recall !== undefined && s.f1 !== undefined && s.support !== undefined ? [[label, s as ClassScores] as const] : [];
  });
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

function readConfusion(value: unknown): Confusion | undefined {
  if (!isRecord(value) || !Array.isArray(value.labels) || !Array.isArray(value.matrix)) return undefined;
  const labels = value.labels.map(String);
  const matrix = value.matrix;
  const square = matrix.length === labels.length && matrix.every((row) => Array.isArray(row) && row.length === labels.length && row.every((n) => num(n) !== undefined));
  return square && labels.length > 0 ? { labels, matrix: matrix as number[][] } : undefined;
}

function readRobustness(value: unknown): Evaluation['robustness'] {
  if (!isRecord(value)) return undefined;
  const robustness = dropUndefined({ ...numbers(value, ['accuracy', 'macroF1']), drop: numbers(value.drop, ['accuracy', 'macroF1']) });
  return Object.keys(robustness).length > 0 ? robustness : undefined;
}

function readDistillation(name: string, m: Metrics): Distillation | undefined {
  const d = dropUndefined({
    name,
    teacherParameters: num(m.teacherParameters),
    studentParameters: num(m.studentParameters),
    compression: num(m.compression),
    teacherMetric: num(m.teacherMetric),
    studentMetric: num(m.studentMetric),
    studentTeacherRatio: num(m.studentTeacherRatio),
    speedup: num(m.speedup),
  });
  return Object.keys(d).length > 1 ? d : undefined;
}

function readQuantization(name: string, m: Metrics): Quantization | undefined {
  const q = dropUndefined({
    name,
    model: str(m.model),
    bytesBefore: num(m.bytesBefore),
    bytesAfter: num(m.bytesAfter),
    reduction: num(m.reduction),
    metric: str(m.metric),
    metricBefore: num(m.metricBefore),
    metricAfter: num(m.metricAfter),
    metricDelta: m.metricDelta,
    predictionAgreement: num(m.predictionAgreement),
    latencyBeforeMs: num(m.latencyBeforeMs),
    latencyAfterMs: num(m.latencyAfterMs),
  });
  return Object.keys(q).length > 1 ? q : undefined;
}

function readPromotion(name: string, m: Metrics): Promotion | undefined {
  const metric: PromotionMetric | undefined = m.metric === 'accuracy' || m.metric === 'macroF1' ? m.metric : undefined;
  const [cycle, candidateVersion] = [num(m.cycle), num(m.candidateVersion)];
  const history = Array.isArray(m.history) ? m.history.flatMap((c) => readCycleOutcome(c) ?? []).sort((a, b) => a.cycle - b.cycle) : [];
  if (metric === undefined || cycle === undefined || candidateVersion === undefined || typeof m.promoted !== 'boolean' || history.length === 0) return undefined;
  const gate = isRecord(m.gate) ? numbers(m.gate, ['minGain', 'maxForgetting', 'min']) : undefined;
  return dropUndefined({
    name,
    registry: str(m.registry),
    metric,
    cycle,
    candidateVersion,
    championVersion: num(m.championVersion),
    promoted: m.promoted,
    reason: str(m.reason),
    gain: num(m.gain),
    forgetting: readForgetting(m.forgetting),
    gate: gate?.minGain !== undefined && gate.maxForgetting !== undefined ? (gate as Promotion['gate']) : undefined,
    history,
  });
}

function readCycleOutcome(value: unknown): CycleOutcome | undefined {
  if (!isRecord(value)) return undefined;
  const [cycle, candidateVersion] = [num(value.cycle), num(value.candidateVersion)];
  if (cycle === undefined || candidateVersion === undefined || typeof value.promoted !== 'boolean') return undefined;
  const evaluations = Array.isArray(value.evaluations)
    ? value.evaluations.flatMap((e) => {
        const s = numbers(e, ['cycle', 'candidate', 'champion', 'examples']);
        return s?.cycle !== undefined && s.candidate !== undefined ? [{ examples: 0, ...s } as SplitScore] : [];
      })
    : [];
  return dropUndefined({
    cycle,
    runId: str(value.runId) ?? '',
    promoted: value.promoted,
    reason: str(value.reason) ?? '',
    candidateVersion,
    championVersion: num(value.championVersion),
    gain: num(value.gain),
    forgetting: readForgetting(value.forgetting),
    evaluations: evaluations.sort((a, b) => a.cycle - b.cycle),
  });
}

function readForgetting(value: unknown): { mean: number; max: number } | undefined {
  const f = numbers(value, ['mean', 'max']);
  return f?.mean !== undefined && f.max !== undefined ? { mean: f.mean, max: f.max } : undefined;
}

/** Start offsets of every occurrence of `part` in `text`. */
function occurrences(text: string, part: string): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(part); at !== -1; at = text.indexOf(part, at + 1)) found.push(at);
  return found;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The named finite numbers of an object, or undefined when it has none. */
function numbers<K extends string>(value: unknown, keys: readonly K[]): Partial<Record<K, number>> | undefined {
  if (!isRecord(value)) return undefined;
  const picked = dropUndefined(Object.fromEntries(keys.map((k) => [k, num(value[k])])) as Partial<Record<K, number>>);
  return Object.keys(picked).length > 0 ? picked : undefined;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
