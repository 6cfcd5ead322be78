import type { EngineName } from '../pipelines/stage-types';
import type { StageImplementation } from './stage-runner';
import { optionsOf } from './stage-options';
import type { StageInput } from '../workflows/types';

// One interface, two engines side by side: the built-in TensorFlow.js trainer (small models from
// scratch) and PyTorch + Hugging Face in Tempered's Python environment (pretrained checkpoints,
// GPUs). The stage protocol around them (store, cache, heartbeats, checkpoints, failure classes) is
// the same; each engine is loaded only when a stage uses it, so a torch worker never loads tfjs.

/** What an engine implements. Validation (pipelines/engines.ts) refuses stages an engine lacks. */
export interface TrainingEngine {
  finetune: StageImplementation;
  evaluate: StageImplementation;
  distill: StageImplementation;
  quantize: StageImplementation;
}

const ENGINES: Record<EngineName, () => TrainingEngine> = {
  tfjs: () => {
    const stages = require('./training/stages') as typeof import('./training/stages');
    return { finetune: stages.finetuneStage, evaluate: stages.evaluateStage, distill: stages.distillStage, quantize: stages.quantizeStage };
  },
  torch: () => ({
    finetune: (require('./torch/finetune') as typeof import('./torch/finetune')).torchFinetuneStage,
    evaluate: (require('./torch/evaluate') as typeof import('./torch/evaluate')).torchEvaluateStage,
    distill: (require('./torch/distill') as typeof import('./torch/distill')).torchDistillStage,
    quantize: (require('./torch/quantize') as typeof import('./torch/quantize')).torchQuantizeStage,
  }),
};

/** The engine of the model stage `name` read by this stage: a torch model stores `torch-model.json`. */
function engineOfInput(input: StageInput, name: string): EngineName {
  return input.inputs[name]?.outputs['torch-model.json'] ? 'torch' : 'tfjs';
}

/** finetune on the stage's engine (planned into its config; tfjs when absent). */
export const finetuneStage: StageImplementation = (ctx) => ENGINES[optionsOf(ctx.input, 'finetune').engine ?? 'tfjs']().finetune(ctx);

/** evaluate, distill and quantize run on the engine of the model they read. */
export const evaluateStage: StageImplementation = (ctx) => ENGINES[engineOfInput(ctx.input, optionsOf(ctx.input, 'evaluate').model)]().evaluate(ctx);
export const distillStage: StageImplementation = (ctx) => ENGINES[engineOfInput(ctx.input, optionsOf(ctx.input, 'distill').teacher)]().distill(ctx);
export const quantizeStage: StageImplementation = (ctx) => ENGINES[engineOfInput(ctx.input, optionsOf(ctx.input, 'quantize').model)]().quantize(ctx);
