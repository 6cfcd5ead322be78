// Store keys are relative, `/`-separated paths such as `runs/<runId>/<stage>/train.jsonl`. They are
// validated strictly so that one key can never escape the root on the file backend, nor name the
// same object as another key (`a/./b` vs `a/b`) on one backend but not the other.
import { InvalidKeyError } from './errors';

/** S3's limit, applied to both backends so keys stay portable between them. */
const MAX_KEY_BYTES = 1024;

/** Returns `key` unchanged if it is a valid store key; throws `InvalidKeyError` saying why not. */
export function validateKey(key: string): string {
  const reason = keyProblem(key);
  if (reason !== undefined) throw new InvalidKeyError(key, reason);
  return key;
}

/** True if `key` is a valid store key. */
export function isValidKey(key: string): boolean {
  return keyProblem(key) === undefined;
}

/** Returns a list prefix unchanged if valid: `''`, a key, or a key followed by `/`. */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return prefix;
  const reason = keyProblem(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  if (reason !== undefined) throw new InvalidKeyError(prefix, reason);
  return prefix;
}

function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string' || key === '') return 'a key must be a non-empty string';
  if (key.includes('\0')) return 'it contains a NUL character';
  if (key.includes('\\')) return 'it contains a backslash; separate segments with "/"';
  if (key.startsWith('/')) return 'it starts with "/"; keys are relative to the store root';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `it is longer than ${MAX_KEY_BYTES} bytes`;
  for (const segment of key.split('/')) {
    if (segment === '') return 'it has an empty segment ("//" or a trailing "/")';
    if (segment === '.' || segment === '..') return `it has a "${segment}" segment`;
  }
  return undefined;
}
