import { compileInclude, parseS3Uri, sourcePrefix } from '../../../activities/data/s3-source';
import { InvalidOptionError } from '../../../activities/data/errors';

describe('S3 source helpers', () => {
  it('parse URIs and treat the key part as a directory prefix', () => {
    expect(parseS3Uri('s3://bucket/a/b.txt')).toEqual({ bucket: 'bucket', key: 'a/b.txt' });
    expect(sourcePrefix('s3://bucket/data')).toEqual({ bucket: 'bucket', prefix: 'data/' });
    expect(sourcePrefix('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
  });
});

describe('compileInclude', () => {
  const matches = (glob: string, key: string) => compileInclude(glob)(key);

  it('selects every key without a glob', () => {
    expect(compileInclude(undefined)('any/key.bin')).toBe(true);
  });

  it('keeps * and ? within one path segment and lets ** span directories', () => {
    expect(matches('*.jsonl', 'part-1.jsonl')).toBe(true);
    expect(matches('*.jsonl', 'dir/a.jsonl')).toBe(false);
    expect(matches('?.txt', 'ab.txt')).toBe(false);
    expect(matches('**/*.jsonl', 'a.jsonl')).toBe(true);
    expect(matches('**/*.jsonl', 'x/y/a.jsonl')).toBe(true);
    expect(matches('data/**', 'other/x')).toBe(false);
  });

  it('supports braces and negated classes as local globs do', () => {
    expect(matches('{train,test}/*.csv', 'test/a.csv')).toBe(true);
    expect(matches('{train,test}/*.csv', 'validation/a.csv')).toBe(false);
    expect(matches('[!x]*.csv', 'a.csv')).toBe(true);
    expect(matches('[!x]*.csv', 'x.csv')).toBe(false);
    expect(matches('a+b(1).txt', 'a+b(1).txt')).toBe(true);
    expect(matches('*.txt', '.hidden.txt')).toBe(false);
  });

  it('rejects an unbalanced glob', () => {
    expect(() => compileInclude('{a,b')).toThrow(InvalidOptionError);
    expect(() => compileInclude('{a,b')).toThrow(/s3 source include "\{a,b" is not a valid glob/);
  });
});
