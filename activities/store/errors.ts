// Store errors. Each class here is a condition a retry cannot fix (ARCHITECTURE.md, invariant 6): the activity
// layer turns them into non-retryable Temporal failures with `toFailure()`. Network faults, 5xx and
// refused connections from S3 are deliberately NOT wrapped, so Temporal retries them with backoff.
import { ApplicationFailure } from '@temporalio/common';

/** Base of every non-retryable store error. Context lives in readonly fields, never credentials. */
export abstract class StoreError extends Error {
  /** Converts to a non-retryable Temporal failure whose `type` is the class name. */
  toFailure(): ApplicationFailure {
    const { name, ...context } = this as unknown as Record<string, unknown>;
    return ApplicationFailure.create({
      message: this.message,
      type: String(name),
      nonRetryable: true,
      details: [context],
      cause: this,
    });
  }
}

/** The bytes read do not match the ref's sha256 or size: the artifact changed after it was written. */
export class IntegrityError extends StoreError {
  override readonly name = 'IntegrityError';
  constructor(
    readonly uri: string,
    readonly expectedSha256: string,
    /** Undefined when reading stopped early because more bytes arrived than expected. */
    readonly actualSha256: string | undefined,
    readonly expectedBytes: number,
    readonly actualBytes: number,
  ) {
    const actual =
      actualSha256 === undefined
        ? `more than ${expectedBytes} bytes`
        : `sha256 ${actualSha256} (${actualBytes} bytes)`;
    super(
      `artifact "${uri}" failed verification: expected sha256 ${expectedSha256} (${expectedBytes} bytes), ` +
        `got ${actual}. It was modified or corrupted after it was written; rerun the stage that produced it.`,
    );
  }
}

/** A store key that could escape the root or alias another key. */
export class InvalidKeyError extends StoreError {
  override readonly name = 'InvalidKeyError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`invalid store key ${JSON.stringify(key)}: ${reason}`);
  }
}

/** The referenced artifact does not exist in the store. */
export class ArtifactNotFoundError extends StoreError {
  override readonly name = 'ArtifactNotFoundError';
  constructor(readonly uri: string) {
    super(`artifact "${uri}" not found; it was deleted or never written (is this the store the run used?)`);
  }
}

/** A ref whose uri lies outside this store's root, e.g. a worker configured with another TEMPERED_STORE. */
export class ForeignArtifactError extends StoreError {
  override readonly name = 'ForeignArtifactError';
  constructor(
    readonly uri: string,
    readonly root: string,
  ) {
    super(
      `artifact "${uri}" is outside this store (root "${root}"); every worker of a run must use the same TEMPERED_STORE`,
    );
  }
}

/** An artifact whose bytes verified but do not parse (bad JSON, a malformed JSONL line). */
export class MalformedArtifactError extends StoreError {
  override readonly name = 'MalformedArtifactError';
  constructor(
    readonly uri: string,
    /** 1-based line number for JSONL; undefined for whole-document formats. */
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`malformed artifact "${uri}"${line === undefined ? '' : ` at line ${line}`}: ${reason}`);
  }
}

/** Store configuration that cannot work: bad TEMPERED_STORE, missing bucket, rejected credentials. */
export class StoreConfigError extends StoreError {
  override readonly name = 'StoreConfigError';
  constructor(
    message: string,
    /** The setting to fix, e.g. `TEMPERED_STORE`. */
    readonly setting?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True for store errors a retry cannot fix; convert them with `err.toFailure()`. */
export function isNonRetryableStoreError(err: unknown): err is StoreError {
  return err instanceof StoreError;
}
