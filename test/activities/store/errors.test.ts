import { ApplicationFailure } from '@temporalio/common';
import {
  ArtifactNotFoundError,
  IntegrityError,
  InvalidKeyError,
  isNonRetryableStoreError,
  StoreConfigError,
} from '../../../activities/store/errors';

describe('store errors', () => {
  it('convert to non-retryable Temporal failures carrying their context', () => {
    const err = new IntegrityError('s3://b/runs/r/x.jsonl', 'a'.repeat(64), 'b'.repeat(64), 10, 10);
    const failure = err.toFailure();
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'IntegrityError', nonRetryable: true, message: err.message });
    expect(failure.details).toEqual([
      { uri: 's3://b/runs/r/x.jsonl', expectedSha256: 'a'.repeat(64), actualSha256: 'b'.repeat(64), expectedBytes: 10, actualBytes: 10 },
    ]);
    expect(failure.cause).toBe(err);
  });

  it('are recognized as non-retryable, unlike plain errors', () => {
    expect(isNonRetryableStoreError(new InvalidKeyError('../x', 'bad'))).toBe(true);
    expect(isNonRetryableStoreError(new ArtifactNotFoundError('file:///x'))).toBe(true);
    expect(isNonRetryableStoreError(new StoreConfigError('bad', 'TEMPERED_STORE'))).toBe(true);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' });
    expect(isNonRetryableStoreError(refused)).toBe(false);
    expect(new InvalidKeyError('../x', 'bad').name).toBe('InvalidKeyError');
  });
});
