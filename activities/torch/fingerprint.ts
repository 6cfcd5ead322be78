import { ensurePythonEnv } from '../../infra/python-env';
import type { StageInput } from '../../workflows/types';
import { optionsOf } from '../stage-options';
import { baseFingerprint, resolveBase } from './base';

/**
 * The cache key's share of a torch finetune: every file of its base checkpoint, by sha256, so a
 * changed checkpoint is a miss. Undefined for tfjs stages and for stages continuing another (whose
 * model is an input, already in the key).
 */
export async function finetuneSourceFingerprint(input: StageInput): Promise<string | undefined> {
  const options = optionsOf(input, 'finetune');
  if (options.engine !== 'torch' || options.base === undefined) return undefined;
  const env = await ensurePythonEnv({ log: () => {} });
  return baseFingerprint(await resolveBase(options.base, input.baseDir, env.python));
}
