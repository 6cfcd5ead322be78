import type { EngineName } from '../pipelines/stage-types';
import type { StageImplementation } from './stage-runner';
import { optionsOf } from './stage-options';

// One interface, two engines side by side: the built-in TensorFlow.js trainer (small models from
// scratch) and PyTorch + Hugging Face in Tempered's Python environment (pretrained checkpoints,
// GPUs). The stage protocol around them (store, cache, heartbeats, checkpoints, failure classes) is
// the same; each engine is loaded only when a stage uses it, so a torch worker never loads tfjs.

/** What an engine implements. Validation (pipelines/engines.ts) refuses stages an engine lacks. */
export interface TrainingEngine {
  finetune: StageImplementation;
  evaluate: StageImplementation;
}

const ENGINES: Record<EngineName, () => TrainingEngine> = {
  tfjs: () => {
    const stages = require('./training/stages') as typeof import('./training/stages');
    return { finetune: stages.finetuneStage, evaluate: stages.evaluateStage };
  },
  torch: () => ({
    finetune: (require('./torch/finetune') as typeof import('./torch/finetune')).torchFinetuneStage,
    evaluate: (require('./torch/evaluate') as typeof import('./torch/evaluate')).torchEvaluateStage,
  }),
};

/** finetune on the stage's engine (planned into its config; tfjs when absent). */
export const finetuneStage: StageImplementation = (ctx) => ENGINES[optionsOf(ctx.input, 'finetune').engine ?? 'tfjs']().finetune(ctx);

/** evaluate on the engine of the model it reads: a torch model stores `torch-model.json`. */
export const evaluateStage: StageImplementation = (ctx) => {
  const model = ctx.input.inputs[optionsOf(ctx.input, 'evaluate').model];
  return ENGINES[model?.outputs['torch-model.json'] ? 'torch' : 'tfjs']().evaluate(ctx);
};
