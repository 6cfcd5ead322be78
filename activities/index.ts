import type { StageType } from '../pipelines/schema';
import type { StageActivity } from '../workflows/types';
import { runInThread } from './compute-thread';
import { augmentStage } from './data/stages';
import { commandSourceFingerprint } from './command-fingerprint';
import { collectSourceFingerprint } from './data/source-fingerprint';
import { distillSourceFingerprint, evaluateSourceFingerprint, finetuneSourceFingerprint, quantizeSourceFingerprint } from './torch/fingerprint';
import type { Translator } from './data';
import { loadStageImplementation, MAIN_THREAD_STAGES } from './stage-implementations';
import { defineStage, type StageImplementation } from './stage-runner';
import type { ArtifactStore } from './store';

/** What the activities need from their host: the store, and optional pluggable translators. */
export interface ActivityDependencies {
  store: ArtifactStore;
  /**
   * Back-translation services by name; `identity` is always registered. Functions cannot cross into
   * a compute thread, so with translators the `augment` stage runs on the main thread.
   */
  translators?: Record<string, Translator>;
  /**
   * Where stage compute runs: `thread` (default) — a worker thread per attempt, keeping the event
   * loop free for workflow tasks, queries and heartbeats; `main` — in the calling thread (unit
   * tests of stage code, stores that cannot be reopened in a thread).
   */
  compute?: 'thread' | 'main';
}

/** The stage activities a worker registers, one per stage type; activity name = stage type. */
export function createActivities({ store, translators, compute = 'thread' }: ActivityDependencies): Record<StageType, StageActivity> {
  const config = store.config;
  const implementation = (type: StageType): StageImplementation => {
    if (type === 'augment' && translators) return augmentStage(translators);
    if (compute === 'thread' && config && !MAIN_THREAD_STAGES.has(type)) return (ctx) => runInThread(type, ctx, config);
    return (ctx) => loadStageImplementation(type)(ctx);
  };
  return {
    collect: defineStage(store, implementation('collect'), { sourceFingerprint: collectSourceFingerprint(store) }),
    clean: defineStage(store, implementation('clean')),
    split: defineStage(store, implementation('split')),
    augment: defineStage(store, implementation('augment')),
    noop: defineStage(store, implementation('noop')),
    tokenizer: defineStage(store, implementation('tokenizer')),
    finetune: defineStage(store, implementation('finetune'), { sourceFingerprint: finetuneSourceFingerprint }),
    evaluate: defineStage(store, implementation('evaluate'), { sourceFingerprint: evaluateSourceFingerprint }),
    distill: defineStage(store, implementation('distill'), { sourceFingerprint: distillSourceFingerprint }),
    quantize: defineStage(store, implementation('quantize'), { sourceFingerprint: quantizeSourceFingerprint }),
    command: defineStage(store, implementation('command'), { sourceFingerprint: commandSourceFingerprint }),
    replay: defineStage(store, implementation('replay')),
    champion: defineStage(store, implementation('champion')),
    promote: defineStage(store, implementation('promote')),
  };
}
