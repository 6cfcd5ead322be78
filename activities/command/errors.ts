// Failures of the `command` stage. Those a retry cannot fix carry `nonRetryable = true` (the stage
// runner classifies by that flag); a program that exits non-zero may have hit a transient fault
// (an OOM kill, a flaky download, a lost GPU), so that one is retried.

const quote = (value: unknown): string => JSON.stringify(value);

/** The command as JSON, cut short: an inline script need not be repeated in every failure. */
function describeCommand(command: readonly string[], maxChars = 200): string {
  const text = quote(command);
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

/** The program named by `command[0]` does not exist on this worker. */
export class ProgramNotFoundError extends Error {
  override readonly name = 'ProgramNotFoundError';
  readonly nonRetryable = true;
  constructor(
    readonly program: string,
    readonly cwd: string,
  ) {
    super(
      `command program ${quote(program)} was not found on this worker (looked up on the worker's PATH, or relative to cwd ${quote(cwd)}); ` +
        `install it on every worker of the queue, or give its absolute path`,
    );
  }
}

/** The program exists but cannot be executed (no execute permission, not a binary or script). */
export class ProgramNotExecutableError extends Error {
  override readonly name = 'ProgramNotExecutableError';
  readonly nonRetryable = true;
  constructor(
    readonly program: string,
    readonly code: string,
  ) {
    super(
      `command program ${quote(program)} cannot be executed (${code}); make it executable (chmod +x, with a #! line) ` +
        `or run it through its interpreter, e.g. command: [python3, ${quote(program)}]`,
    );
  }
}

/** The stage's `cwd` is missing or not a directory. */
export class WorkingDirectoryError extends Error {
  override readonly name = 'WorkingDirectoryError';
  readonly nonRetryable = true;
  constructor(
    readonly cwd: string,
    readonly resolved: string,
    problem: string,
  ) {
    super(`command cwd ${quote(cwd)} (resolved to ${quote(resolved)}) ${problem}; cwd is relative to the spec file's directory`);
  }
}

/** The program exited non-zero or was killed by a signal it was not sent by Tempered. */
export class ProgramFailedError extends Error {
  override readonly name = 'ProgramFailedError';
  readonly nonRetryable = false;
  constructor(
    readonly command: readonly string[],
    readonly exitCode: number | null,
    readonly signal: string | null,
    /** The last lines of stderr (or of stdout when stderr was silent). */
    readonly tail: readonly string[],
    /** Where the attempt's full log was stored, or why it could not be. */
    readonly log: string,
  ) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const lines = tail.length > 0 ? `; its last output:\n${tail.join('\n')}\n` : ' without output; ';
    super(`command ${describeCommand(command)} ${how}${lines}full log: ${log}`);
  }
}

/** The program exited 0 without writing every declared output. */
export class MissingOutputError extends Error {
  override readonly name = 'MissingOutputError';
  readonly nonRetryable = true;
  constructor(
    readonly missing: readonly string[],
    readonly produced: readonly string[],
    readonly log: string,
  ) {
    const wrote = produced.length > 0 ? `it wrote ${produced.map(quote).join(', ')}` : 'it wrote nothing there';
    super(
      `command exited 0 but did not write declared output${missing.length > 1 ? 's' : ''} ${missing.map(quote).join(', ')} ` +
        `to its outputs directory ($TEMPERED_OUTPUTS, or {outputs} in its arguments); ${wrote}. ` +
        `Make the program write them there, or fix the stage's outputs list. Full log: ${log}`,
    );
  }
}

/** A declared output is something other than a regular file (a directory, a socket). */
export class OutputNotAFileError extends Error {
  override readonly name = 'OutputNotAFileError';
  readonly nonRetryable = true;
  constructor(readonly output: string) {
    super(`declared output ${quote(output)} is not a regular file; pack a directory into one file (e.g. tar) and declare that`);
  }
}

/** The spec uses a name Tempered reserves for itself (an output or env variable). */
export class ReservedNameError extends Error {
  override readonly name = 'ReservedNameError';
  readonly nonRetryable = true;
  constructor(
    readonly option: string,
    readonly value: string,
    problem: string,
    fix: string,
  ) {
    super(`command ${option} ${quote(value)} ${problem}; ${fix}`);
  }
}
