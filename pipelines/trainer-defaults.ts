// The one home of the training defaults: the spec schema (stage-types.ts) declares them to users and
// the trainer (activities/ml/) fills them in when called directly (tests, benches, distillation).
// Plain constants, so the spec layer, workflows and tfjs code can all read them.

/** Defaults of a from-scratch model's shape. */
export const MODEL_DEFAULTS = { layers: 2, dModel: 128, heads: 4, context: 128, mlpRatio: 4, dropout: 0, padId: 0 } as const;

/** AdamW with linear warmup and cosine decay; warmup defaults to 10% of the steps. */
export const OPTIMIZER_DEFAULTS = { lr: 3e-4, weightDecay: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, clipNorm: 1, minLrRatio: 0.1, warmupFraction: 0.1 } as const;

/** Low-rank adapters on the query and value projections. */
export const LORA_DEFAULTS = { rank: 8, alpha: 16, dropout: 0, targets: ['query', 'value'] as Array<'query' | 'key' | 'value' | 'output' | 'mlpIn' | 'mlpOut'> } as const;

/** The training loop. */
export const TRAINING_DEFAULTS = { steps: 200, batchSize: 16, gradientAccumulation: 1, validateEvery: 50, validationBatches: 8, checkpointEvery: 50, patience: 3, seed: 0 } as const;

/** Warmup steps for a run of `steps` when the spec does not set them. */
export function defaultWarmupSteps(steps: number): number {
  return Math.floor(steps * OPTIMIZER_DEFAULTS.warmupFraction);
}
