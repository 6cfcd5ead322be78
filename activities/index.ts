import type { StageType } from '../pipelines/schema';
import type { StageActivity } from '../workflows/types';
import { runInThread } from './compute-thread';
import { augmentStage } from './data/stages';
import { commandSourceFingerprint } from './command-fingerprint';
import { collectSourceFingerprint } from './data/source-fingerprint';
import { distillSourceFingerprint, evaluateSourceFingerprint, finetuneSourceFingerprint, quantizeSourceFingerprint } from './torch/fingerprint';
import type { Translator } from './data';
import { loadStageImplementation, MAIN_THREAD_STAGES } from './stage-implementations';
import type { GpuSlots } from './gpu-slots';
import { defineStage, type StageHooks, type StageImplementation } from './stage-runner';
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
  /** The gpu worker's devices; each gpu-queue attempt holds `resources.gpu` of them while it computes. Default none. */
  gpuSlots?: GpuSlots;
}

/** The stage activities a worker registers, one per stage type; activity name = stage type. */
export function createActivities({ store, translators, compute = 'thread', gpuSlots }: ActivityDependencies): Record<StageType, StageActivity> {
  const config = store.config;
  const implementation = (type: StageType): StageImplementation => {
    if (type === 'augment' && translators) return augmentStage(translators);
    if (compute === 'thread' && config && !MAIN_THREAD_STAGES.has(type)) return (ctx) => runInThread(type, ctx, config);
    return (ctx) => loadStageImplementation(type)(ctx);
  };
  const stage = (type: StageType, hooks: StageHooks = {}): StageActivity => defineStage(store, implementation(type), hooks, { gpuSlots });
  return {
    collect: stage('collect', { sourceFingerprint: collectSourceFingerprint(store) }),
    clean: stage('clean'),
    split: stage('split'),
    augment: stage('augment'),
    noop: stage('noop'),
    tokenizer: stage('tokenizer'),
    finetune: stage('finetune', { sourceFingerprint: finetuneSourceFingerprint }),
    evaluate: stage('evaluate', { sourceFingerprint: evaluateSourceFingerprint }),
    distill: stage('distill', { sourceFingerprint: distillSourceFingerprint }),
    quantize: stage('quantize', { sourceFingerprint: quantizeSourceFingerprint }),
    command: stage('command', { sourceFingerprint: commandSourceFingerprint }),
    replay: stage('replay'),
    champion: stage('champion'),
    promote: stage('promote'),
  };
}
