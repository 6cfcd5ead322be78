import { globToRegExp } from '../../../activities/data/glob-match';
import { compileInclude, parseS3Uri, sourcePrefix } from '../../../activities/data/s3-source';

describe('globToRegExp', () => {
  const matches = (glob: string, path: string) => globToRegExp(glob).test(path);

  it('keeps * and ? within one path segment', () => {
    expect(matches('*.jsonl', 'a.jsonl')).toBe(true);
    expect(matches('*.jsonl', 'dir/a.jsonl')).toBe(false);
    expect(matches('?.txt', 'a.txt')).toBe(true);
    expect(matches('?.txt', 'ab.txt')).toBe(false);
  });

  it('lets ** span zero or more directories', () => {
    expect(matches('**/*.jsonl', 'a.jsonl')).toBe(true);
    expect(matches('**/*.jsonl', 'x/y/a.jsonl')).toBe(true);
    expect(matches('data/**', 'data/x/y')).toBe(true);
    expect(matches('data/**', 'other/x')).toBe(false);
  });

  it('supports braces and character classes, and escapes regex characters', () => {
    expect(matches('{train,test}/*.csv', 'test/a.csv')).toBe(true);
    expect(matches('{train,test}/*.csv', 'validation/a.csv')).toBe(false);
    expect(matches('[!x]*.csv', 'a.csv')).toBe(true);
    expect(matches('[!x]*.csv', 'x.csv')).toBe(false);
    expect(matches('a+b(1).txt', 'a+b(1).txt')).toBe(true);
    expect(matches('a.txt', 'abtxt')).toBe(false);
  });
});

describe('S3 source helpers', () => {
  it('parse URIs and treat the key part as a directory prefix', () => {
    expect(parseS3Uri('s3://bucket/a/b.txt')).toEqual({ bucket: 'bucket', key: 'a/b.txt' });
    expect(sourcePrefix('s3://bucket/data')).toEqual({ bucket: 'bucket', prefix: 'data/' });
    expect(sourcePrefix('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
  });

  it('match include against the key below the prefix and reject unbalanced globs', () => {
    expect(compileInclude(undefined)('anything')).toBe(true);
    expect(compileInclude('*.jsonl')('part-1.jsonl')).toBe(true);
    expect(() => compileInclude('{a,b')).toThrow(/s3 source include "\{a,b" is not a valid glob/);
  });
});
