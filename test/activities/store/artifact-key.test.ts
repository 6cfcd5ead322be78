import { isValidKey, validateKey, validatePrefix } from '../../../activities/store/artifact-key';
import { InvalidKeyError } from '../../../activities/store/errors';

describe('store keys', () => {
  it.each(['a', 'runs/r1/clean/train.jsonl', 'a/.hidden', 'a/..b/c', 'with space/ü.json'])('accepts %j', (key) => {
    expect(validateKey(key)).toBe(key);
  });

  it.each([
    ['../x', '".." segment'],
    ['a/../b', '".." segment'],
    ['/abs', 'starts with "/"'],
    ['a//b', 'empty segment'],
    ['a/', 'empty segment'],
    ['./a', '"." segment'],
    ['a\\b', 'backslash'],
    ['a\0b', 'NUL'],
    ['', 'non-empty'],
    ['x'.repeat(1025), 'longer than 1024 bytes'],
  ])('rejects %j (%s)', (key, reason) => {
    expect(() => validateKey(key)).toThrow(InvalidKeyError);
    expect(() => validateKey(key)).toThrow(reason);
    expect(() => validateKey(key)).toThrow(JSON.stringify(key));
    expect(isValidKey(key)).toBe(false);
  });

  it('accepts list prefixes with or without a trailing slash', () => {
    expect(validatePrefix('')).toBe('');
    expect(validatePrefix('runs/')).toBe('runs/');
    expect(validatePrefix('runs/r1/tr')).toBe('runs/r1/tr');
    expect(() => validatePrefix('../')).toThrow(InvalidKeyError);
    expect(() => validatePrefix('runs//')).toThrow(InvalidKeyError);
  });
});
