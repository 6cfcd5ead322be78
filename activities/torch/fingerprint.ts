import { createHash } from 'node:crypto';
import { ensurePythonEnv } from '../../infra/python-env';
import type { StageInput } from '../../workflows/types';
import { optionsOf } from '../stage-options';
import { baseFingerprint, resolveBase } from './base';
import { DESCRIPTOR } from './common';

/**
 * Version of the torch engine's computation (python/tempered_torch and activities/torch): bump it
 * when the same job would give different results. With the Python lock's sha256 (the exact
 * torch/transformers/peft builds) it joins every torch stage's cache key.
 */
export const TORCH_ENGINE_VERSION = 4; // 2: newly initialised modules train in full under LoRA; PEFT's default targets. 3: LoRA on a `from` model is stored merged. 4: data-parallel language models weight each process's loss by its share of the tokens

async function engineDigest(extra = ''): Promise<string> {
  const env = await ensurePythonEnv({ log: () => {} });
  return createHash('sha256').update(`torch-engine ${TORCH_ENGINE_VERSION}\0${env.lockSha256}\0${extra}`).digest('hex');
}

/**
 * The cache key's share of a torch finetune beyond its config and inputs: the engine (version and
 * locked packages) and every file of its base checkpoint, by sha256, so a changed checkpoint or
 * engine is a miss. Undefined for tfjs stages.
 */
export async function finetuneSourceFingerprint(input: StageInput): Promise<string | undefined> {
  const options = optionsOf(input, 'finetune');
  if (options.engine !== 'torch') return undefined;
  if (options.base === undefined) return engineDigest();
  const env = await ensurePythonEnv({ log: () => {} });
  return engineDigest(baseFingerprint(await resolveBase(options.base, input.baseDir, env.python)));
}

/** An evaluate stage of a torch model depends on the engine that predicts; of a tfjs model, on nothing more. */
export async function evaluateSourceFingerprint(input: StageInput): Promise<string | undefined> {
  const model = input.inputs[optionsOf(input, 'evaluate').model];
  return model?.outputs[DESCRIPTOR] ? engineDigest() : undefined;
}

/** distill and quantize of a torch model depend on the engine that computes them, as evaluate does. */
export async function distillSourceFingerprint(input: StageInput): Promise<string | undefined> {
  const teacher = input.inputs[optionsOf(input, 'distill').teacher];
  return teacher?.outputs[DESCRIPTOR] ? engineDigest() : undefined;
}

export async function quantizeSourceFingerprint(input: StageInput): Promise<string | undefined> {
  const model = input.inputs[optionsOf(input, 'quantize').model];
  return model?.outputs[DESCRIPTOR] ? engineDigest() : undefined;
}
