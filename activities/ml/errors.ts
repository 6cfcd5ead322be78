// Failures of the trainer. Those caused by the spec, the data or a file are non-retryable (a retry
// would fail the same way) and say what to fix; an abort is the caller's own request.

const quote = (value: unknown): string => JSON.stringify(value);

/** A model shape that cannot be built. */
export class InvalidModelConfigError extends Error {
  override readonly name = 'InvalidModelConfigError';
  readonly nonRetryable = true;
  constructor(readonly problems: readonly string[]) {
    super(`invalid model config: ${problems.join('; ')}`);
  }
}

/** Weights that do not fit the model: an unknown name or a wrong shape. */
export class WeightsMismatchError extends Error {
  override readonly name = 'WeightsMismatchError';
  readonly nonRetryable = true;
  constructor(readonly problems: readonly string[]) {
    super(`weights do not match the model: ${problems.join('; ')}`);
  }
}

/** Training options or examples that cannot be trained on. */
export class InvalidTrainingInputError extends Error {
  override readonly name = 'InvalidTrainingInputError';
  readonly nonRetryable = true;
  constructor(readonly problems: readonly string[]) {
    super(`invalid training input: ${problems.join('; ')}`);
  }
}

/** A checkpoint or model file that is not in the expected format. */
export class ArtifactFormatError extends Error {
  override readonly name = 'ArtifactFormatError';
  readonly nonRetryable = true;
  constructor(
    readonly what: string,
    reason: string,
  ) {
    super(`${what}: ${reason}`);
  }
}

/** A checkpoint taken under options that differ from the run resuming it. */
export class IncompatibleCheckpointError extends Error {
  override readonly name = 'IncompatibleCheckpointError';
  readonly nonRetryable = true;
  constructor(
    readonly field: string,
    readonly checkpointValue: unknown,
    readonly runValue: unknown,
  ) {
    super(
      `checkpoint was taken with ${field}=${quote(checkpointValue)} but this run has ${field}=${quote(runValue)}; ` +
        'resume with the original options or start without the checkpoint',
    );
  }
}

/** Training stopped because its AbortSignal fired. */
export class TrainingAbortedError extends Error {
  override readonly name = 'TrainingAbortedError';
  constructor(
    readonly step: number,
    readonly reason?: unknown,
  ) {
    super(`training aborted after step ${step}${reason === undefined ? '' : `: ${String(reason)}`}`);
  }
}
