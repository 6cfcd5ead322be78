import type { StageOptions, StageType } from '../pipelines/stage-facts';
import type { StageInput } from '../workflows/types';

/**
 * The options of a stage of type `type`, typed by that type's schema (pipelines/stage-facts.ts).
 * The plan's `config` is exactly what the schema parsed, defaults applied (pipelines/plan.ts);
 * a stage handed to another type's implementation is a programming error, caught here.
 */
export function optionsOf<T extends StageType>(input: Pick<StageInput, 'stage' | 'type' | 'config'>, type: T): StageOptions<T> {
  if (input.type !== type) throw new Error(`stage "${input.stage}" is a ${input.type} stage, not ${type}`);
  return input.config as StageOptions<T>;
}
