import * as tf from '@tensorflow/tfjs';
import { InvalidTrainingInputError } from './errors';
import type { Objective, ResolvedModelConfig } from './model';
import { permutation, Rng, type RngState } from './rng';

// From tokenized examples to tensors. Batches are padded (with the model's padId) only to the
// longest sequence in the batch, not to the context: short classification examples then cost
// a fraction of a full-context batch.

/** A tokenized example. The caller tokenizes; truncation and padding happen here. */
export interface Example {
  tokens: number[];
  /** Class index in [0, numClasses) — required for `classify`. */
  label?: number;
}

/** Where the sampler is in the data: enough to continue the exact same order. */
export interface DataPosition {
  /** Passes over the training set started so far, minus one. */
  epoch: number;
  /** Examples of this epoch's permutation already consumed. */
  index: number;
  /** PRNG state from which this epoch's permutation was drawn. */
  rngState: RngState;
}

/** Seeded shuffling, reshuffled every epoch; a batch may straddle two epochs. */
export class BatchSampler {
  private rng: Rng;
  private order: Int32Array;
  private epoch: number;
  private index: number;
  private epochState: RngState;

  constructor(
    private readonly size: number,
    seed: number,
    position?: DataPosition,
  ) {
    if (size < 1) throw new InvalidTrainingInputError(['the training set is empty']);
    this.rng = position ? new Rng(position.rngState) : Rng.fromSeed(seed, 'data-order');
    this.epochState = this.rng.state();
    this.order = permutation(size, this.rng);
    this.epoch = position?.epoch ?? 0;
    this.index = position?.index ?? 0;
  }

  /** Indices of the next `count` examples. */
  next(count: number): number[] {
    const out: number[] = [];
    while (out.length < count) {
      if (this.index >= this.size) {
        this.epoch += 1;
        this.index = 0;
        this.epochState = this.rng.state();
        this.order = permutation(this.size, this.rng);
      }
      out.push(this.order[this.index++]);
    }
    return out;
  }

  position(): DataPosition {
    return { epoch: this.epoch, index: this.index, rngState: this.epochState };
  }
}

/** Next-token prediction: inputs [B, T], targets/weights flattened to [B*T]. */
export interface LmBatch {
  kind: 'causal-lm';
  inputs: tf.Tensor2D;
  targets: tf.Tensor1D;
  /** 1 / (real targets in the batch · scaleDivisor) on real positions, 0 on padding. */
  weights: tf.Tensor1D;
  /** Real (non-pad) input tokens. */
  tokens: number;
  /** Real targets. */
  targetCount: number;
}

/** Classification: inputs [B, T], one label per sequence. */
export interface ClassifyBatch {
  kind: 'classify';
  inputs: tf.Tensor2D;
  lengths: Int32Array;
  labels: tf.Tensor1D;
  /** 1 / (B · scaleDivisor) per example. */
  weights: tf.Tensor1D;
  tokens: number;
  labelValues: Int32Array;
}

export type Batch = LmBatch | ClassifyBatch;

/**
 * Builds an LM batch. Each example is cut to its first context+1 tokens; position t predicts
 * token t+1. `scaleDivisor` (the gradient-accumulation count) divides the weights so that summed
 * micro-batch losses average.
 */
export function makeLmBatch(examples: Example[], config: ResolvedModelConfig, scaleDivisor = 1): LmBatch {
  const { context, padId } = config;
  const lengths = examples.map((e) => Math.max(0, Math.min(e.tokens.length, context + 1) - 1));
  const T = Math.max(1, ...lengths);
  const B = examples.length;
  const inputs = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(padId);
  const mask = new Float32Array(B * T);
  let targetCount = 0;
  let tokens = 0;
  examples.forEach((e, b) => {
    const n = lengths[b];
    tokens += n;
    for (let t = 0; t < n; t++) {
      inputs[b * T + t] = e.tokens[t];
      targets[b * T + t] = e.tokens[t + 1];
      mask[b * T + t] = 1;
    }
    targetCount += n;
  });
  const w = 1 / (Math.max(1, targetCount) * scaleDivisor);
  for (let i = 0; i < mask.length; i++) mask[i] *= w;
  return {
    kind: 'causal-lm',
    inputs: tf.tensor2d(inputs, [B, T], 'int32'),
    targets: tf.tensor1d(targets, 'int32'),
    weights: tf.tensor1d(mask),
    tokens,
    targetCount,
  };
}

/** Builds a classification batch: each example cut to its first `context` tokens (an empty one becomes a single pad token). */
export function makeClassifyBatch(examples: Example[], config: ResolvedModelConfig, scaleDivisor = 1): ClassifyBatch {
  const { context, padId } = config;
  const lengths = Int32Array.from(examples, (e) => Math.max(1, Math.min(e.tokens.length, context)));
  const T = Math.max(...lengths);
  const B = examples.length;
  const inputs = new Int32Array(B * T).fill(padId);
  let tokens = 0;
  examples.forEach((e, b) => {
    const n = Math.min(e.tokens.length, context);
    tokens += n;
    for (let t = 0; t < n; t++) inputs[b * T + t] = e.tokens[t];
  });
  const labelValues = Int32Array.from(examples, (e) => e.label ?? -1);
  return {
    kind: 'classify',
    inputs: tf.tensor2d(inputs, [B, T], 'int32'),
    lengths,
    labels: tf.tensor1d(labelValues, 'int32'),
    weights: tf.fill([B], 1 / (B * scaleDivisor)) as tf.Tensor1D,
    tokens,
    labelValues,
  };
}

export function makeBatch(objective: Objective, examples: Example[], config: ResolvedModelConfig, scaleDivisor = 1): Batch {
  return objective === 'causal-lm' ? makeLmBatch(examples, config, scaleDivisor) : makeClassifyBatch(examples, config, scaleDivisor);
}

export function disposeBatch(batch: Batch): void {
  tf.dispose([batch.inputs, batch.weights, batch.kind === 'causal-lm' ? batch.targets : batch.labels]);
}

/** Checks every example against the model; throws InvalidTrainingInputError listing (up to 10) problems. */
export function validateExamples(examples: Example[], split: string, config: ResolvedModelConfig, objective: Objective): void {
  const problems: string[] = [];
  const { vocabSize, numClasses } = config;
  for (let i = 0; i < examples.length && problems.length < 10; i++) {
    const e = examples[i];
    if (!e || !Array.isArray(e.tokens)) {
      problems.push(`${split}[${i}] has no tokens array`);
      continue;
    }
    const bad = e.tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize);
    if (bad !== undefined) problems.push(`${split}[${i}] has token ${bad}, outside the vocabulary [0, ${vocabSize})`);
    if (objective === 'classify') {
      const ok = Number.isInteger(e.label) && e.label! >= 0 && e.label! < (numClasses ?? 0);
      if (!ok) problems.push(`${split}[${i}] has label ${JSON.stringify(e.label)}; expected an integer in [0, ${numClasses})`);
    }
  }
  if (problems.length > 0) throw new InvalidTrainingInputError(problems);
}
