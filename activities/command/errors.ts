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

/** A declared output, or something inside a declared directory, is not what it was declared as. */
export class OutputTypeError extends Error {
  override readonly name = 'OutputTypeError';
  readonly nonRetryable = true;
  constructor(
    readonly output: string,
    readonly found: string,
    fix: string,
  ) {
    super(`declared output ${quote(output)} is ${found}; ${fix}`);
  }
}

/** A declared output (or a file or directory inside one, or the outputs directory) is a symbolic link. */
export class OutputSymlinkError extends Error {
  override readonly name = 'OutputSymlinkError';
  readonly nonRetryable = true;
  constructor(
    readonly output: string,
    /** The link itself: the output, or its path inside a declared directory. */
    readonly link: string,
    /** Where it points. */
    readonly target: string,
  ) {
    const where = link === output ? '' : ` (${quote(link)} inside it)`;
    super(
      `declared output ${quote(output)}${where} is a symbolic link to ${quote(target)}; links are not followed, so nothing outside the ` +
        `work directory can be uploaded: write (copy) the file itself into the outputs directory`,
    );
  }
}

/** A declared output resolves outside the outputs directory, or changed after it was listed. */
export class OutputEscapesError extends Error {
  override readonly name = 'OutputEscapesError';
  readonly nonRetryable = true;
  constructor(
    readonly output: string,
    readonly resolved: string,
    problem = 'it resolves outside the outputs directory',
  ) {
    super(`declared output ${quote(output)} cannot be uploaded: ${problem} (${quote(resolved)}); leave outputs as plain files and directories in $TEMPERED_OUTPUTS`);
  }
}

/** A declared directory output holds no file: nothing would be uploaded, so it would vanish without a word. */
export class EmptyOutputDirectoryError extends Error {
  override readonly name = 'EmptyOutputDirectoryError';
  readonly nonRetryable = true;
  constructor(readonly output: string) {
    super(`declared output directory ${quote(output)} holds no file (empty directories are not stored); write its files there, or remove it from the stage's outputs`);
  }
}

/** The outputs hold more files than fit as references in workflow history. */
export class TooManyOutputFilesError extends Error {
  override readonly name = 'TooManyOutputFilesError';
  readonly nonRetryable = true;
  constructor(
    readonly output: string,
    readonly max: number,
  ) {
    super(`declared outputs hold more than ${max} files (reached in ${quote(output)}); each file is a reference in the run's history: pack many small files into one (e.g. tar) and declare that`);
  }
}

/** An output name found on disk cannot be stored or shown. */
export class OutputNameError extends Error {
  override readonly name = 'OutputNameError';
  readonly nonRetryable = true;
  constructor(
    readonly output: string,
    problem: string,
  ) {
    super(`output ${quote(output)} ${problem}`);
  }
}

/** TEMPERED_COMMAND_ISOLATION=required on a worker that cannot isolate programs. */
export class IsolationUnavailableError extends Error {
  override readonly name = 'IsolationUnavailableError';
  readonly nonRetryable = false; // another worker of the queue may isolate
  constructor(readonly reason: string) {
    super(`this worker requires command programs to run in a PID namespace (TEMPERED_COMMAND_ISOLATION=required), but cannot: ${reason}`);
  }
}

/** A worker setting of the command stage has a value it does not understand. */
export class CommandSettingError extends Error {
  override readonly name = 'CommandSettingError';
  readonly nonRetryable = true;
  constructor(
    readonly setting: string,
    readonly value: string,
    expected: string,
  ) {
    super(`worker setting ${setting}=${quote(value)} is not understood; expected ${expected}`);
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
