import { z } from 'zod';
import { duration } from './duration';
import {
  AugmentOptionsSchema,
  CommandOptionsSchema,
  DistillOptionsSchema,
  EvaluateOptionsSchema,
  FinetuneOptionsSchema,
  QuantizeOptionsSchema,
  TokenizerOptionsSchema,
  CleanOptionsSchema,
  CollectOptionsSchema,
  NoopOptionsSchema,
  SplitOptionsSchema,
  ReplayOptionsSchema,
  ChampionOptionsSchema,
  PromoteOptionsSchema,
} from './stage-types';

// The spec's single source of truth. TypeScript types below are inferred from it.

export const API_VERSION = 'tempered.dev/v1';

/** Names of stages and pipelines: they become store keys and workflow ids. */
export const NameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/, 'expected lowercase letters, digits and dashes (e.g. "domain-clean"), at most 64 characters');

export const RetrySchema = z.strictObject({
  /** Attempts in all, the first included. Default 3. */
  maxAttempts: z.number().int().min(1).max(100).optional(),
  /** Wait before the first retry. Default `1s`. */
  initialInterval: duration.optional(),
  /** Each retry waits this many times longer. Default 2. */
  backoffCoefficient: z.number().min(1).max(10).optional(),
  /** Longest wait between retries. Default `1m`. */
  maximumInterval: duration.optional(),
});

export const ResourcesSchema = z.strictObject({
  /** GPUs the stage needs; `1` routes it to the `gpu` task queue. Default 0 (the `cpu` queue). */
  gpu: z.number().int().min(0).max(8).optional(),
});

/** Fields every stage has, whatever its type. */
const stageCommon = {
  /** One line on what the stage is for. */
  description: z.string().optional(),
  /** Upstream stage(s) whose outputs this stage reads. */
  input: z.union([NameSchema, z.array(NameSchema).min(1)]).optional(),
  /** Stages that must finish first although their outputs are not read. */
  after: z.array(NameSchema).optional(),
  /** Retry policy; unset fields come from `defaults.retry`. */
  retry: RetrySchema.optional(),
  /** Longest one attempt may run (start-to-close). Default from `defaults.timeout`. */
  timeout: duration.optional(),
  /** A running attempt that has not heartbeated for this long is presumed lost and retried. Default from `defaults.heartbeatTimeout`. */
  heartbeatTimeout: duration.optional(),
  /** Hardware the stage needs. */
  resources: ResourcesSchema.optional(),
  /** Reuse outputs of an identical earlier run of this stage. Default from `defaults.cache`. */
  cache: z.boolean().optional(),
};

function stage<T extends string, S extends z.ZodObject>(type: T, options: S) {
  return z.strictObject({ type: z.literal(type), ...stageCommon, ...options.shape });
}

export const STAGE_SCHEMAS = {
  collect: stage('collect', CollectOptionsSchema),
  clean: stage('clean', CleanOptionsSchema),
  augment: stage('augment', AugmentOptionsSchema),
  split: stage('split', SplitOptionsSchema),
  noop: stage('noop', NoopOptionsSchema),
  tokenizer: stage('tokenizer', TokenizerOptionsSchema),
  finetune: stage('finetune', FinetuneOptionsSchema),
  evaluate: stage('evaluate', EvaluateOptionsSchema),
  distill: stage('distill', DistillOptionsSchema),
  quantize: stage('quantize', QuantizeOptionsSchema),
  command: stage('command', CommandOptionsSchema),
  replay: stage('replay', ReplayOptionsSchema),
  champion: stage('champion', ChampionOptionsSchema),
  promote: stage('promote', PromoteOptionsSchema),
} as const;

export type StageType = keyof typeof STAGE_SCHEMAS;
export const STAGE_TYPES = Object.keys(STAGE_SCHEMAS) as StageType[];
export const COMMON_STAGE_KEYS = ['type', ...Object.keys(stageCommon)];

export const StageSchema = z.discriminatedUnion('type', [
  STAGE_SCHEMAS.collect,
  STAGE_SCHEMAS.clean,
  STAGE_SCHEMAS.augment,
  STAGE_SCHEMAS.split,
  STAGE_SCHEMAS.noop,
  STAGE_SCHEMAS.tokenizer,
  STAGE_SCHEMAS.finetune,
  STAGE_SCHEMAS.evaluate,
  STAGE_SCHEMAS.distill,
  STAGE_SCHEMAS.quantize,
  STAGE_SCHEMAS.command,
  STAGE_SCHEMAS.replay,
  STAGE_SCHEMAS.champion,
  STAGE_SCHEMAS.promote,
]);
export type Stage = z.infer<typeof StageSchema>;

export const DefaultsSchema = z.strictObject({
  /** Retry policy of every stage. */
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(100).default(3),
      initialInterval: duration.default(1000),
      backoffCoefficient: z.number().min(1).max(10).default(2),
      maximumInterval: duration.default(60_000),
    })
    .prefault({}),
  /** Start-to-close timeout of one attempt. Default `1h`. */
  timeout: duration.default(3_600_000),
  /** Heartbeat timeout: how soon a lost worker is noticed. Default `1m`. */
  heartbeatTimeout: duration.default(60_000),
  /** Stage cache on by default. Default true. */
  cache: z.boolean().default(true),
});
export type Defaults = z.infer<typeof DefaultsSchema>;

/** What happens when a tick comes while the previous run still runs. */
export const OVERLAP_POLICIES = ['skip', 'buffer-one', 'buffer-all', 'cancel-other', 'terminate-other', 'allow-all'] as const;

export const ScheduleSchema = z
  .strictObject({
    /** Cron expression in UTC, e.g. `0 3 * * *` (daily at 03:00). Give this or `every`. */
    cron: z.string().min(1).optional(),
    /** Fixed interval, e.g. `6h`. Give this or `cron`. */
    every: duration.optional(),
    /** A tick while a run is still running: `skip` it (default), buffer it, cancel/terminate the running one, or allow both. */
    overlap: z.enum(OVERLAP_POLICIES).default('skip'),
    /** Create the schedule paused. Default false. */
    paused: z.boolean().default(false),
  })
  .refine((s) => (s.cron === undefined) !== (s.every === undefined), 'give exactly one of "cron" or "every"');
export type ScheduleBlock = z.infer<typeof ScheduleSchema>;

export const PipelineSpecSchema = z.strictObject({
  /** Spec format version. Must be `tempered.dev/v1`. */
  apiVersion: z.literal(API_VERSION),
  /** Pipeline name: part of every workflow id and store key. */
  name: NameSchema,
  /** What the pipeline does. */
  description: z.string().optional(),
  /** Seed for every random choice (sampling, splits, augmentation). Default 42. */
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
  /** Values every stage inherits. */
  defaults: DefaultsSchema.prefault({}),
  /** Run this pipeline on a recurring schedule (`tempered schedule create <spec>` without --cron/--every). */
  schedule: ScheduleSchema.optional(),
  /** The stages, by name. Order does not matter; inputs define the graph. */
  stages: z.record(NameSchema, StageSchema).refine((stages) => Object.keys(stages).length > 0, 'a pipeline needs at least one stage'),
});
export type PipelineSpec = z.infer<typeof PipelineSpecSchema>;
