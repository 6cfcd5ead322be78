import { STAGE_FACTS, STAGE_TYPES, type StageType } from '../pipelines/stage-facts';
import type { StageImplementation } from './stage-runner';

// Every stage type's implementation, loaded on demand: a compute thread running a `clean` does not
// pay for loading tfjs, and one running a `finetune` not for WordNet.
// `require`, not `import()`: a thread running TypeScript sources registers a CommonJS loader only.
const loaders: Record<StageType, () => StageImplementation> = {
  collect: () => (require('./data/stages') as typeof import('./data/stages')).collectStage,
  clean: () => (require('./data/stages') as typeof import('./data/stages')).cleanStage,
  split: () => (require('./data/stages') as typeof import('./data/stages')).splitStage,
  augment: () => (require('./data/stages') as typeof import('./data/stages')).augmentStage(),
  noop: () => (require('./data/stages') as typeof import('./data/stages')).noopStage,
  tokenizer: () => (require('./training/stages') as typeof import('./training/stages')).tokenizerStage,
  finetune: () => (require('./engines') as typeof import('./engines')).finetuneStage,
  evaluate: () => (require('./engines') as typeof import('./engines')).evaluateStage,
  distill: () => (require('./engines') as typeof import('./engines')).distillStage,
  quantize: () => (require('./engines') as typeof import('./engines')).quantizeStage,
  command: () => (require('./command') as typeof import('./command')).commandStage,
  replay: () => (require('./continual/stages') as typeof import('./continual/stages')).replayStage,
  champion: () => (require('./continual/stages') as typeof import('./continual/stages')).championStage,
  promote: () => (require('./continual/stages') as typeof import('./continual/stages')).promoteStage,
};

/** The implementation of a stage type. */
export function loadStageImplementation(type: StageType): StageImplementation {
  const load = loaders[type];
  if (!load) throw new Error(`no implementation for stage type "${type}"`);
  return load();
}

/**
 * Stage types that run on the worker's main thread (`compute: 'main'` in pipelines/stage-facts.ts):
 * they wait rather than compute (`noop` sleeps; `command` supervises a child process and streams
 * files), and a thread would only add start-up time.
 */
export const MAIN_THREAD_STAGES: ReadonlySet<StageType> = new Set(STAGE_TYPES.filter((type) => STAGE_FACTS[type].compute === 'main'));
