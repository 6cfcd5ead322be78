import { z } from 'zod';
import { ACTIVITY_OPTION_RULES, activityOptionProblem, type ActivityOptionRule } from './activity-options';
import { duration, formatDuration } from './duration';
import { STAGE_FACTS, STAGE_TYPES, type StageType } from './stage-facts';

// The spec's single source of truth. TypeScript types below are inferred from it.

export const API_VERSION = 'tempered.dev/v1';

/** Lowercase letters, digits and dashes, at most 64 characters, starting and ending with a letter or digit. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/;

/** Names of stages and pipelines: they become store keys and workflow ids. */
export const NameSchema = z
  .string()
  .regex(NAME_PATTERN, 'expected lowercase letters, digits and dashes (e.g. "domain-clean"), at most 64 characters');

/**
 * Stage names JavaScript objects treat specially: the stages map is a plain object, where
 * `__proto__` would vanish and `constructor` is found on every object.
 */
export const RESERVED_STAGE_NAMES: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** A stage name: a name that is not reserved. */
export const StageNameSchema = NameSchema.refine((name) => !RESERVED_STAGE_NAMES.includes(name), {
  message: `is reserved: ${RESERVED_STAGE_NAMES.join(', ')} have a special meaning on JavaScript objects; rename the stage, e.g. "build"`,
});

/** The pipeline name: it and the run id make the workflow id `<pipeline>--<runId>`, so no `--` inside. */
export const PipelineNameSchema = NameSchema.refine((name) => !name.includes('--'), {
  message: 'must not contain "--": workflow ids are <pipeline>--<run id>, so a run could not be found again; use single dashes',
});

/** Longest `description`, of the pipeline or a stage: 4 KiB (it is one line, and it travels in every run's input). */
export const MAX_DESCRIPTION_CHARS = 4096;

const description = z.string().superRefine((text, ctx) => {
  if (text.length > MAX_DESCRIPTION_CHARS) {
    ctx.addIssue({
      code: 'custom',
      message: `a description is at most ${MAX_DESCRIPTION_CHARS} characters, found ${text.length}; keep it to a line and put longer notes in comments or a README`,
    });
  }
});

/** A number or duration within one of the activity-option bounds (pipelines/activity-options.ts). */
function within<T extends z.ZodType<number>>(schema: T, rule: ActivityOptionRule) {
  return schema.superRefine((value, ctx) => {
    const message = activityOptionProblem(rule, value);
    if (message) ctx.addIssue({ code: 'custom', message });
  });
}

const R = ACTIVITY_OPTION_RULES;
/** Attempts in all (1-100). */
const maxAttempts = within(z.number(), R.maxAttempts);
/** Wait before the first retry (1ms-1d). */
const initialInterval = within(duration, R.initialInterval);
/** Retry wait multiplier (1-10). */
const backoffCoefficient = within(z.number(), R.backoffCoefficient);
/** Longest wait between retries (1ms-1d, at least initialInterval: see rules.ts). */
const maximumInterval = within(duration, R.maximumInterval);
/** Start-to-close timeout of one attempt (1s-30d). */
const timeout = within(duration, R.timeout);
/** Heartbeat timeout (2s-1h). */
const heartbeatTimeout = within(duration, R.heartbeatTimeout);

export const RetrySchema = z.strictObject({
  /** Attempts in all, the first included: 1 (no retries) to 100. Default 3. */
  maxAttempts: maxAttempts.optional(),
  /** Wait before the first retry, 1ms to 1d. Default `1s`. */
  initialInterval: initialInterval.optional(),
  /** Each retry waits this many times longer, 1 to 10. Default 2. */
  backoffCoefficient: backoffCoefficient.optional(),
  /** Longest wait between retries, 1ms to 1d and at least initialInterval. Default `1m`. */
  maximumInterval: maximumInterval.optional(),
});

export const ResourcesSchema = z.strictObject({
  /** GPUs the stage needs: 1 or more routes it to the `gpu` task queue, where each attempt holds that many of the worker's devices (its processes see only those). Default 0 (the `cpu` queue). */
  gpu: z.number().int().min(0).max(8).optional(),
});

/** Fields every stage has, whatever its type. */
const stageCommon = {
  /** One line on what the stage is for, at most 4096 characters. Default none. */
  description: description.optional(),
  /** Upstream stage(s) whose outputs this stage reads. */
  input: z.union([NameSchema, z.array(NameSchema).min(1)]).optional(),
  /** Stages that must finish first although their outputs are not read. */
  after: z.array(NameSchema).optional(),
  /** Retry policy; unset fields come from `defaults.retry`. */
  retry: RetrySchema.optional(),
  /** Longest one attempt may run (start-to-close), 1s to 30d. Default from `defaults.timeout`. */
  timeout: timeout.optional(),
  /** A running attempt that has not heartbeated for this long is presumed lost and retried; 2s to 1h. Default from `defaults.heartbeatTimeout`. */
  heartbeatTimeout: heartbeatTimeout.optional(),
  /** Hardware the stage needs. */
  resources: ResourcesSchema.optional(),
  /** Reuse outputs of an identical earlier run of this stage. Default from `defaults.cache`. */
  cache: z.boolean().optional(),
};

type StageShape<T extends string, S extends z.ZodObject> = Extract<{ type: z.ZodLiteral<T> } & typeof stageCommon & S['shape'], z.core.$ZodShape>;

function stage<T extends string, S extends z.ZodObject>(type: T, options: S): z.ZodObject<StageShape<T, S>, z.core.$strict> {
  return z.strictObject({ type: z.literal(type), ...stageCommon, ...options.shape }) as z.ZodObject<StageShape<T, S>, z.core.$strict>;
}

type StageSchemaOf<T extends StageType> = z.ZodObject<StageShape<T, (typeof STAGE_FACTS)[T]['options']>, z.core.$strict>;
type AnyStageSchema = { [T in StageType]: StageSchemaOf<T> }[StageType];

/** Each type's whole stage schema: its options (stage-facts.ts) and the keys every stage shares. */
export const STAGE_SCHEMAS = Object.fromEntries(STAGE_TYPES.map((type) => [type, stage(type, STAGE_FACTS[type].options)])) as { [T in StageType]: StageSchemaOf<T> };

export { STAGE_TYPES, type StageType };
export type { StageOptions } from './stage-facts';
export const COMMON_STAGE_KEYS = ['type', ...Object.keys(stageCommon)];

export const StageSchema = z.discriminatedUnion('type', Object.values(STAGE_SCHEMAS) as [AnyStageSchema, ...AnyStageSchema[]]);
export type Stage = z.infer<typeof StageSchema>;

/** The retry policy a stage has when neither it nor `defaults.retry` sets a field. */
export const DEFAULT_RETRY = { maxAttempts: 3, initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 60_000 } as const;

export const DefaultsSchema = z.strictObject({
  /** Retry policy of every stage (bounds as in RetrySchema). Default 3 attempts, 1s, ×2, at most 1m. */
  retry: z
    .strictObject({
      maxAttempts: maxAttempts.default(DEFAULT_RETRY.maxAttempts),
      initialInterval: initialInterval.default(DEFAULT_RETRY.initialInterval),
      backoffCoefficient: backoffCoefficient.default(DEFAULT_RETRY.backoffCoefficient),
      maximumInterval: maximumInterval.default(DEFAULT_RETRY.maximumInterval),
    })
    .prefault({}),
  /** Start-to-close timeout of one attempt, 1s to 30d. Default `1h`. */
  timeout: timeout.default(3_600_000),
  /** Heartbeat timeout: how soon a lost worker is noticed, 2s to 1h. Default `1m`. */
  heartbeatTimeout: heartbeatTimeout.default(60_000),
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
    /** Fixed interval, e.g. `6h`, from 1s to 366d. Give this or `cron`. */
    every: duration
      .superRefine((ms, ctx) => {
        if (ms < 1000 || ms > 366 * 86_400_000) ctx.addIssue({ code: 'custom', message: `must be from 1s to 366d, found ${formatDuration(ms)}: Temporal refuses a zero interval; write e.g. "every: 1d"` });
      })
      .optional(),
    /** A tick while a run is still running: `skip` it (default), buffer it, cancel/terminate the running one, or allow both. */
    overlap: z.enum(OVERLAP_POLICIES).default('skip'),
    /** Create the schedule paused. Default false. */
    paused: z.boolean().default(false),
  })
  .refine((s) => (s.cron === undefined) !== (s.every === undefined), 'give exactly one of "cron" or "every"');
export type ScheduleBlock = z.infer<typeof ScheduleSchema>;

/** Metrics a comparison can be made on: every evaluate stage reports some of them. */
export const COMPARABLE_METRICS = ['accuracy', 'macroF1', 'perplexity', 'bleu', 'rougeL'] as const;

/** One comparison the report and the headline make: a candidate evaluation against its baseline. */
export const ComparisonSchema = z.strictObject({
  /** What the comparison shows, e.g. `two-phase vs single-phase`. Default `<candidate> vs <baseline>`. */
  name: z.string().min(1).max(120).optional(),
  /** The evaluate stage of the model being judged. */
  candidate: z.string().min(1),
  /** The evaluate stage it is judged against (same split, same records). */
  baseline: z.string().min(1),
  /** Metrics to compare. Default: those both stages report, of accuracy, macroF1, perplexity, bleu, rougeL. */
  metrics: z.array(z.enum(COMPARABLE_METRICS)).min(1).optional(),
});
export type Comparison = z.infer<typeof ComparisonSchema>;

/** What the run report and the CLI headline show beyond every stage's own numbers. */
export const ReportSchema = z.strictObject({
  /** Evaluations compared pairwise, with the lift and its 95% bootstrap interval. */
  compare: z.array(ComparisonSchema).default([]),
});
export type ReportBlock = z.infer<typeof ReportSchema>;

export const PipelineSpecSchema = z.strictObject({
  /** Spec format version. Must be `tempered.dev/v1`. */
  apiVersion: z.literal(API_VERSION),
  /** Pipeline name: part of every workflow id and store key; no `--`. */
  name: PipelineNameSchema,
  /** What the pipeline does, at most 4096 characters. Default none. */
  description: description.optional(),
  /** Seed for every random choice (sampling, splits, augmentation). Default 42. */
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
  /** Values every stage inherits. */
  defaults: DefaultsSchema.prefault({}),
  /** Run this pipeline on a recurring schedule (`tempered schedule create <spec>` without --cron/--every). */
  schedule: ScheduleSchema.optional(),
  /** What the run report compares (`compare: [{ candidate, baseline }]`). Default none. */
  report: ReportSchema.optional(),
  /** The stages, by name. Order does not matter; inputs define the graph. */
  stages: z.record(StageNameSchema, StageSchema).refine((stages) => Object.keys(stages).length > 0, 'a pipeline needs at least one stage'),
});
export type PipelineSpec = z.infer<typeof PipelineSpecSchema>;
