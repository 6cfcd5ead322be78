// The one rule for run ids a user types (`run --run-id`, and the run argument of status, cancel,
// resume, report, models register). A run id becomes part of the workflow id
// `<pipeline>--<runId>`, of store keys `runs/<pipeline>/<runId>/…` and of the report folder, so it
// must be a single, unambiguous path segment. Ids Tempered generates (`20261127-030000-a1b2c3`) and
// those of scheduled runs (`<schedule>-2026-11-27T030000Z`) match it.
import { NAME_PATTERN } from './schema';

/** Letters, digits, `.`, `_`, `-`; starts with a letter or digit; at most 128 characters; no `--` or `..`. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_RUN_ID_CHARS = 128;

/** The rule in words, for messages. */
export const RUN_ID_RULE =
  'a run id is 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit, without ".." or "--" (pattern ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)';

/** A run id, a workflow id or a schedule id argument that breaks the rule. */
export class InvalidRunIdError extends Error {
  override readonly name = 'InvalidRunIdError';
  constructor(
    /** What was typed. */
    readonly value: string,
    /** Why it is refused. */
    readonly reason: string,
    readonly kind: 'run id' | 'schedule id' = 'run id',
  ) {
    super(`invalid ${kind} ${quote(value)}: ${reason}; ${kind === 'run id' ? '' : 'it follows the run id rule: '}${RUN_ID_RULE}, e.g. 20261127-030000-a1b2c3`);
  }
}

/** Why `runId` is not a valid run id, or undefined when it is. */
export function runIdProblem(runId: string): string | undefined {
  if (runId === '') return 'it is empty';
  if (runId.length > MAX_RUN_ID_CHARS) return `it has ${runId.length} characters`;
  if (runId.includes('--')) return 'it contains "--", which separates the pipeline from the run id in workflow ids';
  if (runId.includes('..')) return 'it contains ".."';
  if (runId.includes('/') || runId.includes('\\')) return 'it contains a path separator';
  if (!RUN_ID_PATTERN.test(runId)) {
    const bad = [...runId].find((c, i) => !/[A-Za-z0-9._-]/.test(c) || (i === 0 && !/[A-Za-z0-9]/.test(c)));
    return bad === undefined ? 'it does not match the pattern' : `it contains ${JSON.stringify(bad)}${runId.indexOf(bad) === 0 ? ' at the start' : ''}`;
  }
  return undefined;
}

/** Returns `runId` if valid, else throws InvalidRunIdError. */
export function checkRunId(runId: string): string {
  const problem = runIdProblem(runId);
  if (problem) throw new InvalidRunIdError(runId, problem);
  return runId;
}

/**
 * Checks what a user gave where a run is expected: a run id, or a workflow id
 * `<pipeline>--<runId>` (a scheduled run's tail carries its tick time, `…T03:00:00Z`, whose colons
 * the run id drops). Returns the argument unchanged, or throws InvalidRunIdError.
 */
export function checkRunArgument(run: string): string {
  const separator = run.indexOf('--');
  if (separator < 0) return checkRunId(run);
  const pipeline = run.slice(0, separator);
  if (!NAME_PATTERN.test(pipeline)) {
    throw new InvalidRunIdError(run, `as a workflow id <pipeline>--<run id>, its pipeline part ${quote(pipeline)} is not a pipeline name (lowercase letters, digits and dashes)`);
  }
  const tail = run.slice(separator + 2);
  const problem = runIdProblem(tail.replace(/:/g, ''));
  if (problem) throw new InvalidRunIdError(run, `as a workflow id <pipeline>--<run id>, its run id part ${quote(tail)} is invalid: ${problem}`);
  return run;
}

/** A schedule id: scheduled runs get the id `<schedule id>-<tick time>` (20 more characters), so the run id rule, at most 100 characters. */
export function checkScheduleId(id: string): string {
  const problem = id.length > 100 ? `it has ${id.length} characters (at most 100, so that "<schedule id>-<tick time>" run ids fit in 128)` : runIdProblem(id);
  if (problem) throw new InvalidRunIdError(id, problem, 'schedule id');
  return id;
}

/** At most 60 characters of what the user typed, quoted, with its length when cut. */
function quote(value: string): string {
  return value.length > 60 ? `${JSON.stringify(value.slice(0, 40))}... (${value.length} characters)` : JSON.stringify(value);
}
