import type { StageActivityOptions, StageRetryPolicy } from './plan';

// Bounds of a stage's Temporal activity options (timeouts and retry policy). One table serves the
// spec schema, which refuses a value outside them at validation, and the workflow, which refuses
// to schedule such a stage of a plan that skipped validation (an API client's, a hand-built one).
// Plain data and functions only: the workflow bundle imports this file.

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** One bounded option: its spec key, range, unit and why the bounds are what they are. */
export interface ActivityOptionRule {
  /** The key as a spec writes it, e.g. `retry.maxAttempts`. */
  readonly key: string;
  readonly min: number;
  readonly max: number;
  /** Durations are milliseconds and are printed as `30s`; counts must be whole numbers. */
  readonly unit: 'duration' | 'count' | 'factor';
  /** Why a value outside the range is refused. */
  readonly why: string;
  /** A sensible value, as the spec would write it. */
  readonly example: string;
}

export const ACTIVITY_OPTION_RULES = {
  /** Start-to-close timeout of one attempt: 1s to 30d. */
  timeout: {
    key: 'timeout',
    min: SECOND,
    max: 30 * DAY,
    unit: 'duration',
    why: 'Temporal refuses a zero start-to-close timeout, and one attempt running longer than 30 days is a typo',
    example: '1h',
  },
  /** How soon a lost worker is noticed: 2s to 1h (stages heartbeat every 1 to 10 seconds). */
  heartbeatTimeout: {
    key: 'heartbeatTimeout',
    min: 2 * SECOND,
    max: HOUR,
    unit: 'duration',
    why: '0 turns lost-worker detection off, under 2s fails healthy attempts (a stage heartbeats about once a second at most), over 1h leaves a lost worker unnoticed for hours',
    example: '1m',
  },
  /** Attempts in all: 1 to 100. */
  maxAttempts: {
    key: 'retry.maxAttempts',
    min: 1,
    max: 100,
    unit: 'count',
    why: 'Temporal reads 0 as "retry forever", and attempts are whole numbers; 1 means no retries',
    example: '3',
  },
  /** Wait before the first retry: 1ms to 1d. */
  initialInterval: {
    key: 'retry.initialInterval',
    min: 1,
    max: DAY,
    unit: 'duration',
    why: 'Temporal refuses 0, and a first retry a day or more later is a typo',
    example: '1s',
  },
  /** Each retry waits this many times longer: 1 to 10. */
  backoffCoefficient: {
    key: 'retry.backoffCoefficient',
    min: 1,
    max: 10,
    unit: 'factor',
    why: 'Temporal refuses less than 1 (waits would shrink), and more than 10 outgrows any maximumInterval at once',
    example: '2',
  },
  /** Longest wait between retries: 1ms to 1d, and at least `initialInterval`. */
  maximumInterval: {
    key: 'retry.maximumInterval',
    min: 1,
    max: DAY,
    unit: 'duration',
    why: 'Temporal refuses 0, and waits of a day or more between attempts are a typo',
    example: '1m',
  },
} as const satisfies Record<string, ActivityOptionRule>;

/** Milliseconds the way a spec writes them: `1500ms`, `30s`, `1h`. */
function formatMs(ms: number): string {
  for (const [unit, size] of [['d', DAY], ['h', HOUR], ['m', 60_000], ['s', SECOND]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function show(rule: ActivityOptionRule, value: number): string {
  return rule.unit === 'duration' && Number.isFinite(value) ? formatMs(value) : String(value);
}

/** Why `value` is not allowed for `rule` (undefined when it is), ending with the fix. */
export function activityOptionProblem(rule: ActivityOptionRule, value: unknown): string | undefined {
  const range = `${show(rule, rule.min)} to ${show(rule, rule.max)}`;
  const fix = `set e.g. "${rule.key.replace(/^retry\./, '')}: ${rule.example}"`;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return `must be a ${rule.unit === 'duration' ? 'duration' : 'number'} from ${range}, found ${JSON.stringify(value) ?? String(value)}; ${fix}`;
  }
  if (rule.unit === 'count' && !Number.isInteger(value)) {
    return `must be a whole number from ${range}, found ${value}: ${rule.why}; ${fix}`;
  }
  if (value < rule.min || value > rule.max) {
    return `must be from ${range}, found ${show(rule, value)}: ${rule.why}; ${fix}`;
  }
  return undefined;
}

/** One invalid activity option of a planned stage. */
export interface ActivityOptionIssue {
  /** The spec key, e.g. `timeout` or `retry.maxAttempts`. */
  key: string;
  message: string;
}

/**
 * Every option of a planned stage that Temporal would refuse to schedule, or that would turn off a
 * safety (lost-worker detection, bounded retries). Empty for any plan `tempered validate` accepts.
 */
export function activityOptionIssues(options: Partial<StageActivityOptions> | undefined): ActivityOptionIssue[] {
  const activity: Partial<StageActivityOptions> = options ?? {};
  const retry = retryPolicyOf(activity.retry ?? {});
  const checks: Array<[ActivityOptionRule, unknown]> = [
    [ACTIVITY_OPTION_RULES.timeout, activity.startToCloseTimeoutMs],
    [ACTIVITY_OPTION_RULES.heartbeatTimeout, activity.heartbeatTimeoutMs],
    [ACTIVITY_OPTION_RULES.maxAttempts, retry.maximumAttempts],
    [ACTIVITY_OPTION_RULES.initialInterval, retry.initialInterval],
    [ACTIVITY_OPTION_RULES.backoffCoefficient, retry.backoffCoefficient],
    [ACTIVITY_OPTION_RULES.maximumInterval, retry.maximumInterval],
  ];
  const issues: ActivityOptionIssue[] = [];
  for (const [rule, value] of checks) {
    const message = activityOptionProblem(rule, value);
    if (message) issues.push({ key: rule.key, message });
  }
  const { initialInterval: initial, maximumInterval: maximum } = retry;
  if (typeof initial === 'number' && typeof maximum === 'number' && maximum < initial) {
    issues.push({ key: 'retry.maximumInterval', message: intervalOrderProblem(initial, maximum) });
  }
  if (typeof activity.taskQueue !== 'string' || (activity.taskQueue as string) === '') {
    issues.push({ key: 'resources', message: `has no task queue, found ${JSON.stringify(activity.taskQueue)}; plan the spec with "tempered validate"` });
  }
  return issues;
}

/** maximumInterval below initialInterval: Temporal refuses the retry policy. `inherited` names where a value came from. */
export function intervalOrderProblem(initialMs: number, maximumMs: number, inherited: { initial?: string; maximum?: string } = {}): string {
  const from = (where?: string) => (where ? `, from ${where}` : '');
  return (
    `maximumInterval (${formatMs(maximumMs)}${from(inherited.maximum)}) is shorter than initialInterval (${formatMs(initialMs)}${from(inherited.initial)}), ` +
    `which Temporal refuses; raise maximumInterval to at least ${formatMs(initialMs)} or lower initialInterval`
  );
}

/** Retry fields as plans made before Tempered used Temporal's names held them (runs resumed or replayed from then). */
interface LegacyRetryFields {
  initialIntervalMs?: number;
  maximumIntervalMs?: number;
}

/** A plan's retry policy, also from a plan made before the fields took Temporal's names. */
export function retryPolicyOf(retry: Partial<StageRetryPolicy> & LegacyRetryFields): Partial<StageRetryPolicy> {
  const { initialIntervalMs, maximumIntervalMs, ...policy } = retry;
  return { ...policy, initialInterval: policy.initialInterval ?? initialIntervalMs, maximumInterval: policy.maximumInterval ?? maximumIntervalMs };
}
