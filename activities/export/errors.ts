/** A model that cannot be exported as asked; the message names what and the fix. Not retried. */
export class ExportError extends Error {
  override readonly name = 'ExportError';
  readonly nonRetryable = true;
}
