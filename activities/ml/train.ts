import * as tf from '@tensorflow/tfjs';
import {
  BatchSampler,
  disposeBatch,
  makeBatch,
  validateExamples,
  type Batch,
  type ClassifyBatch,
  type Example,
} from './batches';
import type { HistoryEntry, TrainCheckpoint } from './checkpoint';
import { IncompatibleCheckpointError, InvalidTrainingInputError, TrainingAbortedError } from './errors';
import { crossEntropy } from './losses';
import type { Gpt, NamedWeights, Objective } from './model';
import { AdamW, clipByGlobalNorm, learningRateAt } from './optim';
import { deriveSeed } from './rng';
import { defaultWarmupSteps, OPTIMIZER_DEFAULTS, TRAINING_DEFAULTS } from '../../pipelines/trainer-defaults';

// The training loop, linear as nanoGPT's train.py: set the learning rate, accumulate gradients
// over micro-batches, clip, step, log, evaluate (early stopping, best weights), checkpoint,
// yield. Everything that decides what happens next — weights, optimizer moments, step, data
// position and PRNG state, best metric and weights, history — is in the checkpoint, so a run
// resumed from it in a fresh process ends with the same weights as one never interrupted.

/** Validation metric that selects the best weights and drives early stopping. */
export type SelectionMetric = 'valLoss' | 'valAccuracy' | 'valF1';

export interface OptimizerOptions {
  /** Peak learning rate. Default 3e-4. */
  lr?: number;
  /** Decoupled (AdamW) weight decay on 2-D weights. Default 0.01. */
  weightDecay?: number;
  /** Adam beta1. Default 0.9. */
  beta1?: number;
  /** Adam beta2. Default 0.95. */
  beta2?: number;
  /** Adam epsilon. Default 1e-8. */
  eps?: number;
  /** Global-norm gradient clipping; 0 disables. Default 1. */
  clipNorm?: number;
  /** Linear warmup steps, then cosine decay. Default 10% of steps. */
  warmupSteps?: number;
  /** The learning rate decays to this fraction of lr. Default 0.1. */
  minLrRatio?: number;
}

export interface TrainOptions {
  /** The model to train, in place. With LoRA applied, only adapters (and a classification head) train. */
  model: Gpt;
  /** `causal-lm` (next-token prediction) or `classify` (labels; the model needs numClasses). */
  objective: Objective;
  /** Optimizer steps in all. */
  steps: number;
  /** Examples per micro-batch. Default 16. */
  batchSize?: number;
  /** Micro-batches per optimizer step. Default 1. */
  gradientAccumulation?: number;
  optimizer?: OptimizerOptions;
  /** Evaluate every this many steps (and after the last). Default 50. */
  evalEvery?: number;
  /** Batches per evaluation: the first evalBatches·batchSize validation examples, the same every time. Default 8. */
  evalBatches?: number;
  /** Stop when `metric` has not improved for `patience` evaluations. Default off. */
  earlyStopping?: { metric: SelectionMetric; patience: number };
  /** Metric that picks the best weights when early stopping is off. Default valLoss. */
  selectionMetric?: SelectionMetric;
  /** Call `onCheckpoint` every this many steps (not after the last). Default 50. */
  checkpointEvery?: number;
  /** Seed of data order and dropout. Default 0. */
  seed?: number;
  /** Continue from this checkpoint instead of starting at step 0. */
  resumeFrom?: TrainCheckpoint;
}

export interface StepInfo {
  step: number;
  totalSteps: number;
  /** Mean training loss of the step's micro-batches. */
  loss: number;
  lr: number;
  /** Real (non-pad) tokens per second in this step. */
  tokensPerSec: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

export interface EvalInfo {
  step: number;
  valLoss: number;
  valAccuracy?: number;
  /** Macro-F1 over the classes present in labels or predictions. */
  valF1?: number;
}

export interface TrainHooks {
  onStep?: (info: StepInfo) => void;
  onEval?: (info: EvalInfo) => void;
  /** Awaited; the checkpoint is a self-contained snapshot (serialize it with `serializeCheckpoint`). */
  onCheckpoint?: (checkpoint: TrainCheckpoint) => Promise<void>;
  /** Checked before every step; when aborted, training throws TrainingAbortedError. */
  signal?: AbortSignal;
}

export interface TrainResult {
  history: HistoryEntry[];
  /** Step whose weights the model holds at the end (the last step when nothing was evaluated). */
  bestStep: number;
  /** The selection metric at bestStep; null when nothing was evaluated. */
  bestMetric: number | null;
  stoppedEarly: boolean;
  /** Real tokens per second over this call's steps. */
  tokensPerSec: number;
  /** Optimizer steps completed (including those before a resume). */
  steps: number;
}

/** Replaces the classification loss; distillation uses it to add the teacher's soft targets. */
export interface ClassifyLossOverride {
  /** Called per micro-batch outside the gradient tape; what it returns is disposed after the micro-batch. */
  prepare(batch: ClassifyBatch): tf.Tensor[];
  loss(logits: tf.Tensor2D, batch: ClassifyBatch, prepared: tf.Tensor[]): tf.Scalar;
}

type Resolved = Required<Omit<TrainOptions, 'resumeFrom' | 'earlyStopping' | 'optimizer'>> & {
  earlyStopping?: TrainOptions['earlyStopping'];
  optimizer: Required<OptimizerOptions>;
  resumeFrom?: TrainCheckpoint;
};

function resolveOptions(opts: TrainOptions): Resolved {
  const steps = opts.steps;
  const { warmupFraction: _, ...optimizerDefaults } = OPTIMIZER_DEFAULTS;
  const optimizer: Required<OptimizerOptions> = {
    ...optimizerDefaults,
    warmupSteps: defaultWarmupSteps(steps),
    ...stripUndefined(opts.optimizer ?? {}),
  };
  const r: Resolved = {
    model: opts.model,
    objective: opts.objective,
    steps,
    batchSize: opts.batchSize ?? TRAINING_DEFAULTS.batchSize,
    gradientAccumulation: opts.gradientAccumulation ?? TRAINING_DEFAULTS.gradientAccumulation,
    optimizer,
    evalEvery: opts.evalEvery ?? TRAINING_DEFAULTS.validateEvery,
    evalBatches: opts.evalBatches ?? TRAINING_DEFAULTS.validationBatches,
    earlyStopping: opts.earlyStopping,
    selectionMetric: opts.earlyStopping?.metric ?? opts.selectionMetric ?? 'valLoss',
    checkpointEvery: opts.checkpointEvery ?? TRAINING_DEFAULTS.checkpointEvery,
    seed: opts.seed ?? TRAINING_DEFAULTS.seed,
    resumeFrom: opts.resumeFrom,
  };
  const problems: string[] = [];
  const posInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) problems.push(`${name} must be a positive integer, got ${v}`);
  };
  posInt('steps', r.steps);
  posInt('batchSize', r.batchSize);
  posInt('gradientAccumulation', r.gradientAccumulation);
  posInt('evalEvery', r.evalEvery);
  posInt('evalBatches', r.evalBatches);
  posInt('checkpointEvery', r.checkpointEvery);
  if (!(optimizer.lr > 0)) problems.push(`optimizer.lr must be positive, got ${optimizer.lr}`);
  if (!(optimizer.clipNorm >= 0)) problems.push(`optimizer.clipNorm must be >= 0, got ${optimizer.clipNorm}`);
  if (!(optimizer.warmupSteps >= 0)) problems.push(`optimizer.warmupSteps must be >= 0, got ${optimizer.warmupSteps}`);
  if (r.objective !== 'classify' && r.selectionMetric !== 'valLoss') {
    problems.push(`${r.selectionMetric} needs objective classify; use valLoss for ${r.objective}`);
  }
  if (r.objective === 'classify' && r.model.config.numClasses === undefined) {
    problems.push('objective classify needs a model with numClasses');
  }
  if (r.earlyStopping && !(Number.isInteger(r.earlyStopping.patience) && r.earlyStopping.patience >= 1)) {
    problems.push(`earlyStopping.patience must be a positive integer, got ${r.earlyStopping.patience}`);
  }
  if (problems.length > 0) throw new InvalidTrainingInputError(problems);
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const higherIsBetter = (metric: SelectionMetric) => metric !== 'valLoss';

/** Forward pass and loss of one batch. */
function batchLoss(model: Gpt, batch: Batch, training: boolean, seed: number, override?: ClassifyLossOverride, prepared: tf.Tensor[] = []): tf.Scalar {
  if (batch.kind === 'causal-lm') {
    const logits = model.forwardLm(batch.inputs, { training, seed }); // [B, T, V]
    const [B, T, V] = logits.shape;
    return crossEntropy(logits.reshape([B * T, V]), batch.targets, batch.weights);
  }
  const logits = model.forwardClassify(batch.inputs, batch.lengths, { training, seed }); // [B, K]
  return override ? override.loss(logits, batch, prepared) : crossEntropy(logits, batch.labels, batch.weights);
}

/**
 * Validation metrics on the first `maxExamples` examples, in order: mean loss (per target token
 * for LM, per example for classify), accuracy and macro-F1 for classify. Dropout off.
 */
export function estimateLoss(
  model: Gpt,
  objective: Objective,
  examples: Example[],
  { batchSize, maxExamples = examples.length }: { batchSize: number; maxExamples?: number },
): Omit<EvalInfo, 'step'> {
  const n = Math.min(examples.length, maxExamples);
  let lossSum = 0;
  let weightSum = 0;
  const predicted: number[] = [];
  const actual: number[] = [];
  for (let start = 0; start < n; start += batchSize) {
    const batch = makeBatch(objective, examples.slice(start, Math.min(n, start + batchSize)), model.config);
    tf.tidy(() => {
      if (batch.kind === 'causal-lm') {
        // The batch's weights average over its targets; re-weight to average over all targets.
        lossSum += batchLoss(model, batch, false, 0).dataSync()[0] * batch.targetCount;
        weightSum += batch.targetCount;
      } else {
        const logits = model.forwardClassify(batch.inputs, batch.lengths);
        const size = batch.lengths.length;
        lossSum += crossEntropy(logits, batch.labels, batch.weights).dataSync()[0] * size;
        weightSum += size;
        predicted.push(...(logits.argMax(-1).dataSync() as Int32Array));
        actual.push(...batch.labelValues);
      }
    });
    disposeBatch(batch);
  }
  const valLoss = weightSum > 0 ? lossSum / weightSum : NaN;
  if (objective === 'causal-lm') return { valLoss };
  return { valLoss, valAccuracy: accuracy(actual, predicted), valF1: macroF1(actual, predicted) };
}

function accuracy(actual: number[], predicted: number[]): number {
  return actual.length === 0 ? NaN : actual.filter((a, i) => a === predicted[i]).length / actual.length;
}

/** Mean over classes seen in labels or predictions of 2·TP / (2·TP + FP + FN). */
function macroF1(actual: number[], predicted: number[]): number {
  const classes = new Set([...actual, ...predicted]);
  if (classes.size === 0) return NaN;
  let sum = 0;
  for (const c of classes) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    actual.forEach((a, i) => {
      const p = predicted[i];
      if (a === c && p === c) tp++;
      else if (p === c) fp++;
      else if (a === c) fn++;
    });
    sum += (2 * tp) / (2 * tp + fp + fn);
  }
  return sum / classes.size;
}

/**
 * Gradients of one optimizer step, summed over `gradientAccumulation` micro-batches (each batch's
 * loss weights carry 1/accumulation, so the sum is the mean), in `variables`' order.
 */
function accumulateGradients(
  model: Gpt,
  variables: tf.Variable[],
  sampler: BatchSampler,
  train: Example[],
  o: Resolved,
  step: number,
  lossOverride?: ClassifyLossOverride,
): { grads: tf.Tensor[]; loss: number; tokens: number } {
  let loss = 0;
  let tokens = 0;
  let sum: tf.Tensor[] | null = null;
  for (let micro = 0; micro < o.gradientAccumulation; micro++) {
    const batch = makeBatch(o.objective, sampler.next(o.batchSize).map((i) => train[i]), model.config, o.gradientAccumulation);
    const prepared = lossOverride && batch.kind === 'classify' ? lossOverride.prepare(batch) : [];
    // Dropout masks depend on (seed, step, micro-batch) only, so a resumed run draws the same ones.
    const seed = deriveSeed(o.seed, `dropout/${step}/${micro}`);
    const { value, grads } = tf.variableGrads(() => batchLoss(model, batch, true, seed, lossOverride, prepared), variables);
    const ordered = variables.map((v) => grads[v.name]);
    if (sum === null) sum = ordered;
    else {
      const next: tf.Tensor[] = sum.map((s, i) => s.add(ordered[i]));
      tf.dispose([...sum, ...ordered]);
      sum = next;
    }
    loss += value.dataSync()[0];
    tokens += batch.tokens;
    tf.dispose([value, ...prepared]);
    disposeBatch(batch);
  }
  return { grads: sum!, loss, tokens };
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Trains `opts.model` in place and leaves it holding the best weights. See TrainOptions for defaults. */
export function trainModel(opts: TrainOptions, data: { train: Example[]; validation: Example[] }, hooks: TrainHooks = {}): Promise<TrainResult> {
  return runTraining(opts, data, hooks);
}

/** trainModel with an optional classification-loss override (distillation). */
export async function runTraining(
  opts: TrainOptions,
  data: { train: Example[]; validation: Example[] },
  hooks: TrainHooks = {},
  lossOverride?: ClassifyLossOverride,
): Promise<TrainResult> {
  const o = resolveOptions(opts);
  const { model, objective } = o;
  validateExamples(data.train, 'train', model.config, objective);
  validateExamples(data.validation, 'validation', model.config, objective);
  if (o.earlyStopping && data.validation.length === 0) {
    throw new InvalidTrainingInputError(['earlyStopping needs validation examples']);
  }
  const names = model.trainableNames(objective);
  const variables = model.trainableVariables(objective);
  const schedule = { ...o.optimizer, totalSteps: o.steps };
  const fingerprint = {
    objective,
    batchSize: o.batchSize,
    gradientAccumulation: o.gradientAccumulation,
    seed: o.seed,
    trainExamples: data.train.length,
    selectionMetric: o.selectionMetric,
  };

  let step = 0;
  let history: HistoryEntry[] = [];
  let best: TrainCheckpoint['best'] = { step: 0, metric: null, evalsSinceBest: 0, weights: null };
  let sampler = new BatchSampler(data.train.length, o.seed);
  if (o.resumeFrom) {
    const ckpt = o.resumeFrom;
    for (const [field, value] of Object.entries(fingerprint)) {
      const saved = (ckpt.fingerprint as Record<string, unknown>)[field];
      if (saved !== value) throw new IncompatibleCheckpointError(field, saved, value);
    }
    model.setWeights(ckpt.weights);
    sampler = new BatchSampler(data.train.length, o.seed, ckpt.data);
    step = ckpt.step;
    history = ckpt.history.map((h) => ({ ...h }));
    best = { ...ckpt.best };
  }
  let stoppedEarly = false;
  let tokensThisRun = 0;
  let secondsThisRun = 0;
  const optimizer = new AdamW(variables, names, o.optimizer);
  try {
    if (o.resumeFrom) optimizer.importState(o.resumeFrom.optimizer);
    while (step < o.steps) {
      if (hooks.signal?.aborted) throw new TrainingAbortedError(step, hooks.signal.reason);
      const lr = learningRateAt(step, schedule);

      const started = performance.now();
      const { grads: summed, loss, tokens } = accumulateGradients(model, variables, sampler, data.train, o, step, lossOverride);
      const { grads, norm } = clipByGlobalNorm(summed, o.optimizer.clipNorm);
      optimizer.apply(grads, lr);
      tf.dispose([...summed, ...grads]);
      step += 1;

      const seconds = (performance.now() - started) / 1000;
      tokensThisRun += tokens;
      secondsThisRun += seconds;
      const entry: HistoryEntry = { step, loss, lr };
      history.push(entry);
      hooks.onStep?.({ step, totalSteps: o.steps, loss, lr, tokensPerSec: tokens / seconds, gradNorm: norm });

      if (data.validation.length > 0 && (step % o.evalEvery === 0 || step === o.steps)) {
        const metrics = estimateLoss(model, objective, data.validation, {
          batchSize: o.batchSize,
          maxExamples: o.evalBatches * o.batchSize,
        });
        Object.assign(entry, metrics);
        hooks.onEval?.({ step, ...metrics });
        const value = metrics[o.selectionMetric] ?? NaN;
        const improved =
          best.metric === null || (higherIsBetter(o.selectionMetric) ? value > best.metric : value < best.metric);
        if (improved && Number.isFinite(value)) {
          best = { step, metric: value, evalsSinceBest: 0, weights: model.readWeights(names) };
        } else {
          best = { ...best, evalsSinceBest: best.evalsSinceBest + 1 };
          if (o.earlyStopping && best.evalsSinceBest >= o.earlyStopping.patience) stoppedEarly = true;
        }
      }

      if (stoppedEarly) break;
      if (hooks.onCheckpoint && step % o.checkpointEvery === 0 && step < o.steps) {
        const checkpoint: TrainCheckpoint = {
          version: 1,
          step,
          modelConfig: { ...model.config },
          lora: model.lora,
          fingerprint,
          weights: model.getWeights(),
          optimizer: optimizer.exportState(),
          data: sampler.position(),
          best: { ...best, weights: best.weights && copyWeights(best.weights) },
          history: history.map((h) => ({ ...h })),
        };
        await hooks.onCheckpoint(checkpoint);
      }
      // Let heartbeats, cancellation and I/O run between steps.
      await yieldToEventLoop();
    }
  } finally {
    optimizer.dispose();
  }

  if (best.weights && best.step !== step) model.setWeights(best.weights);
  return {
    history,
    bestStep: best.weights ? best.step : step,
    bestMetric: best.weights ? best.metric : null,
    stoppedEarly,
    tokensPerSec: secondsThisRun > 0 ? tokensThisRun / secondsThisRun : 0,
    steps: step,
  };
}

function copyWeights(w: NamedWeights): NamedWeights {
  return Object.fromEntries(Object.entries(w).map(([k, v]) => [k, { shape: [...v.shape], data: v.data.slice() }]));
}
