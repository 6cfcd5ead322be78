import type { RetryPolicy } from '@temporalio/common';
import { canonicalJson, sha256Hex } from './canonical-json';
import { engineOf } from './engines';
import { dependenciesOf, readsOf, referencesOf, topologicalOrder } from './graph';
import type { LoadedSpec } from './load';
import { COMMON_STAGE_KEYS, type Comparison, type StageType } from './schema';

/**
 * Version of each stage type's implementation. Bump it when a stage's outputs would change for
 * the same config and inputs, so cached outputs of the old implementation are not reused.
 */
export const IMPLEMENTATION_VERSIONS: Record<StageType, number> = {
  collect: 1,
  clean: 3, // 2: binary records dropped, control characters stripped; 3: mail decoded with postal-mime (MIME parts, transfer encodings, charsets), entities with `entities`
  augment: 1,
  split: 2, // 2: groupBy; a group is stratified by its majority label
  noop: 1,
  tokenizer: 1,
  finetune: 2, // 2: the loss history is the `curves` artifact, no longer in metrics
  evaluate: 2, // 2: per-record predictions as the `predictions` output
  distill: 2,
  quantize: 1,
  command: 2, // 2: redaction, directory outputs, the curves output
  replay: 1,
  champion: 1,
  promote: 1,
};

/**
 * Worker pools work is routed to (ARCHITECTURE.md, invariant 7). Workflows run on `cpu`. The task queue's
 * name is the plan's `queuePrefix` followed by the pool, so several deployments can share a namespace.
 */
export const TASK_QUEUES = { cpu: 'cpu', gpu: 'gpu' } as const;
export type TaskQueue = (typeof TASK_QUEUES)[keyof typeof TASK_QUEUES];

/** Temporal's retry policy with every field the spec sets filled in; intervals in milliseconds. */
export type StageRetryPolicy = Required<Pick<RetryPolicy, 'maximumAttempts' | 'backoffCoefficient'>> & {
  initialInterval: number;
  maximumInterval: number;
};

/** Temporal activity options of one stage, in milliseconds. */
export interface StageActivityOptions {
  taskQueue: TaskQueue;
  /** GPU devices an attempt holds on a gpu worker: the stage's `resources.gpu`. Default 0 (absent in plans made before it existed). */
  gpus?: number;
  startToCloseTimeoutMs: number;
  heartbeatTimeoutMs: number;
  retry: StageRetryPolicy;
}

/** One stage, resolved: defaults applied, dependencies explicit. */
export interface PlannedStage {
  name: string;
  type: StageType;
  description?: string;
  /** Stages whose outputs this stage reads: `input` first, then `tokenizer`, `from`, `model`, `teacher`. */
  inputs: string[];
  /** The stage's `input` field: the datasets it reads (named references are in `config`). */
  dataInputs: string[];
  /** Every stage that must succeed first (inputs and `after`). */
  dependsOn: string[];
  /** The type-specific options only. */
  config: Record<string, unknown>;
  activity: StageActivityOptions;
  cache: boolean;
  /** sha256(type, canonical config, implementation version). Input digests are added at run time. */
  configDigest: string;
}

/** A spec turned into a DAG: what the workflow runs. Small and JSON-serializable. */
export interface Plan {
  pipeline: string;
  seed: number;
  baseDir: string;
  /** sha256 of the canonical validated spec. */
  specDigest: string;
  /** Prepended to `cpu`/`gpu` to name the task queues. Default ''. */
  queuePrefix: string;
  /** Stages in topological order. */
  stages: PlannedStage[];
  /** Waves of stages that can run in parallel, for display. */
  levels: string[][];
  /** Comparisons the report makes (`report.compare`); plans made before it have none. */
  comparisons?: Comparison[];
}

/** Options of `planPipeline`. */
export interface PlanOptions {
  /** Task queue name prefix (`TEMPERED_TASK_QUEUE_PREFIX` in the CLI). Default ''. */
  queuePrefix?: string;
  /** Compute every stage even where the cache has its result (`--no-cache`). Default false. */
  noCache?: boolean;
}

/** The task queue name of a pool under a prefix. */
export function taskQueueName(pool: TaskQueue, queuePrefix = ''): string {
  return `${queuePrefix}${pool}`;
}

/**
 * Stages whose result depends on more than their config and inputs, so are never cached: those that
 * read the continual state or the registry (it changes every cycle). A command stage's program can
 * change without its spec changing, so it is not cached unless the spec asks.
 */
function readsContinualState(stage: { type: string; incremental?: unknown }): boolean {
  return stage.type === 'replay' || stage.type === 'champion' || stage.type === 'promote' || (stage.type === 'collect' && stage.incremental !== undefined);
}

/** Turns a validated spec into a plan. */
export function planPipeline(loaded: LoadedSpec, options: PlanOptions = {}): Plan {
  const { spec } = loaded;
  const deps = new Map(Object.entries(spec.stages).map(([name, stage]) => [name, dependenciesOf(stage)]));
  const order = topologicalOrder(deps);
  const stages = order.map((name): PlannedStage => {
    const stage = spec.stages[name];
    const config = Object.fromEntries(Object.entries(stage).filter(([k]) => !COMMON_STAGE_KEYS.includes(k)));
    // A torch stage says so in its config (and so in its cache key); tfjs stays implicit.
    if (stage.type === 'finetune' && engineOf(name, spec.stages as never) === 'torch') {
      config.engine = 'torch';
      // One training process per GPU the stage asks for (torchrun + DDP).
      const gpus = stage.resources?.gpu ?? 0;
      if (config.processes === undefined && gpus > 1) config.processes = gpus;
    }
    const retry = { ...spec.defaults.retry, ...stage.retry };
    return {
      name,
      type: stage.type,
      ...(stage.description ? { description: stage.description } : {}),
      inputs: readsOf(stage),
      dataInputs: referencesOf(stage).inputs,
      dependsOn: deps.get(name) ?? [],
      config,
      activity: {
        taskQueue: (stage.resources?.gpu ?? 0) > 0 ? TASK_QUEUES.gpu : TASK_QUEUES.cpu,
        gpus: stage.resources?.gpu ?? 0,
        startToCloseTimeoutMs: stage.timeout ?? spec.defaults.timeout,
        heartbeatTimeoutMs: stage.heartbeatTimeout ?? spec.defaults.heartbeatTimeout,
        retry: {
          maximumAttempts: retry.maxAttempts,
          initialInterval: retry.initialInterval,
          backoffCoefficient: retry.backoffCoefficient,
          maximumInterval: retry.maximumInterval,
        },
      },
      cache: !options.noCache && !readsContinualState(stage) && (stage.cache ?? (stage.type === 'command' ? false : spec.defaults.cache)),
      configDigest: sha256Hex(canonicalJson({ type: stage.type, config, version: IMPLEMENTATION_VERSIONS[stage.type] })),
    };
  });
  return {
    pipeline: spec.name,
    seed: spec.seed,
    baseDir: loaded.baseDir,
    specDigest: sha256Hex(canonicalJson(spec)),
    queuePrefix: options.queuePrefix ?? '',
    stages,
    levels: levelsOf(stages),
    ...(spec.report && spec.report.compare.length > 0 ? { comparisons: spec.report.compare } : {}),
  };
}

function levelsOf(stages: PlannedStage[]): string[][] {
  const level = new Map<string, number>();
  for (const s of stages) level.set(s.name, Math.max(-1, ...s.dependsOn.map((d) => level.get(d) ?? -1)) + 1);
  const levels: string[][] = [];
  for (const s of stages) (levels[level.get(s.name)!] ??= []).push(s.name);
  return levels;
}
