import { gunzipSync, gzipSync } from 'node:zlib';
import type { Watermark } from '../../../activities/data/watermark';
import {
  advanceIdWatermark,
  advanceTimeWatermark,
  decodeWatermark,
  encodeWatermark,
  isNewFile,
  MalformedWatermarkError,
} from '../../../activities/data/watermark';

const T = 1_700_000_000_000;

function thrownBy(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

describe('isNewFile', () => {
  const since: Watermark = { by: 'mtime', at: T + 5, files: { 'a.txt': T, 'b.txt': T + 5 } };

  it('treats everything as new without a watermark, or with one that has seen no file', () => {
    expect(isNewFile('a.txt', 0, undefined)).toBe(true);
    expect(isNewFile('a.txt', 0, { by: 'mtime' })).toBe(true);
    expect(isNewFile('a.txt', 0, { by: 'mtime', files: {} })).toBe(true);
  });

  it('is not new under a name seen with the same time', () => {
    expect(isNewFile('a.txt', T, since)).toBe(false);
    expect(isNewFile('b.txt', T + 5, since)).toBe(false);
  });

  it('is new under a name not seen, whatever its time, even older than every file seen', () => {
    expect(isNewFile('c.txt', T - 1000, since)).toBe(true);
    expect(isNewFile('c.txt', T + 5, since)).toBe(true);
  });

  it('is new under a seen name whose time changed, either way', () => {
    expect(isNewFile('a.txt', T + 1, since)).toBe(true);
    expect(isNewFile('b.txt', T, since)).toBe(true);
  });

  it('honours a high-water mark written before per-file watermarks as it was written', () => {
    const legacy: Watermark = { by: 'mtime', at: T, namesAtMark: ['a.txt'] };
    expect(isNewFile('old.txt', T - 1, legacy)).toBe(false);
    expect(isNewFile('a.txt', T, legacy)).toBe(false);
    expect(isNewFile('b.txt', T, legacy)).toBe(true);
    expect(isNewFile('c.txt', T + 1, legacy)).toBe(true);
  });
});

describe('advanceTimeWatermark', () => {
  it('holds every listed file with its time, sorted by name, and the newest time as `at`', () => {
    const next = advanceTimeWatermark('mtime', [
      { name: 'z.txt', timeMs: T + 5 },
      { name: 'old.txt', timeMs: T },
      { name: 'a.txt', timeMs: T + 5 },
    ]);
    expect(next).toEqual({ by: 'mtime', at: T + 5, files: { 'a.txt': T + 5, 'old.txt': T, 'z.txt': T + 5 } });
    expect(Object.keys(next.files!)).toEqual(['a.txt', 'old.txt', 'z.txt']);
  });

  it('is the listing alone: a file no longer listed is dropped, so it is new if it comes back', () => {
    const since = advanceTimeWatermark('lastModified', [
      { name: 's3://b/a', timeMs: T },
      { name: 's3://b/gone', timeMs: T + 9 },
    ]);
    const next = advanceTimeWatermark('lastModified', [{ name: 's3://b/a', timeMs: T }]);
    expect(next).toEqual({ by: 'lastModified', at: T, files: { 's3://b/a': T } });
    expect(isNewFile('s3://b/gone', T + 9, since)).toBe(false);
    expect(isNewFile('s3://b/gone', T + 9, next)).toBe(true);
  });

  it('has no time, and holds no file, when nothing is listed', () => {
    expect(advanceTimeWatermark('mtime', [])).toEqual({ by: 'mtime', files: {} });
  });
});

describe('advanceIdWatermark', () => {
  it('is the sorted union of the previous ids and the ids read', () => {
    expect(advanceIdWatermark({ by: 'id', ids: ['b', 'd'] }, ['c', 'a', 'b'])).toEqual({ by: 'id', ids: ['a', 'b', 'c', 'd'] });
  });

  it('starts from the ids read on the first cycle', () => {
    expect(advanceIdWatermark(undefined, new Set(['y', 'x']))).toEqual({ by: 'id', ids: ['x', 'y'] });
  });
});

describe('encodeWatermark / decodeWatermark', () => {
  it('round-trips exactly through gzip JSON', () => {
    const time: Watermark = { by: 'mtime', at: Math.floor(1_700_000_000_123.987), files: { 'a b.txt': T, 'npm:pkg/é.txt': Math.floor(1_700_000_000_123.987) } };
    const ids: Watermark = { by: 'id', ids: Array.from({ length: 1000 }, (_, i) => `id-${i}`).sort() };
    for (const watermark of [time, ids, { by: 'lastModified', files: {} } as Watermark]) {
      const encoded = encodeWatermark(watermark);
      expect(JSON.parse(gunzipSync(encoded).toString('utf8'))).toEqual(watermark);
      expect(decodeWatermark(encoded, 'mem://w')).toEqual(watermark);
    }
    // Repetitive id sets are what the compression is for.
    expect(encodeWatermark(ids).length).toBeLessThan(JSON.stringify(ids).length / 4);
  });

  it('reads a high-water mark written before per-file watermarks, to be honoured once', () => {
    const legacy = { by: 'lastModified', at: T, namesAtMark: ['s3://b/a'] };
    expect(decodeWatermark(gzipSync(JSON.stringify(legacy)), 'old')).toEqual(legacy);
  });

  it('rejects data that is not gzip, naming where it came from, as non-retryable', () => {
    const error = thrownBy(() => decodeWatermark(Buffer.from('{"by":"id"}'), 's3://store/continual/p/w.json.gz'));
    expect(error).toBeInstanceOf(MalformedWatermarkError);
    expect(error).toMatchObject({ nonRetryable: true, where: 's3://store/continual/p/w.json.gz' });
    expect(error.message).toMatch(/^watermark "s3:\/\/store\/continual\/p\/w.json.gz" is not gzip data \(.+\); .*delete the pipeline's continual state/);
  });

  it('rejects gzip that is not JSON', () => {
    expect(() => decodeWatermark(gzipSync('{"by":'), 'w1')).toThrow(/watermark "w1" is not JSON/);
  });

  it('rejects JSON that is not a watermark, saying which field is wrong', () => {
    const error = thrownBy(() => decodeWatermark(gzipSync(JSON.stringify({ by: 'size' })), 'w2'));
    expect(error.message).toMatch(/^watermark "w2" is not a watermark \(by: Invalid option: expected one of "mtime"\|"lastModified"\|"id"\);/);
    expect(() => decodeWatermark(gzipSync(JSON.stringify({ by: 'mtime', at: 1.5 })), 'w3')).toThrow(/"w3" is not a watermark \(at: .*int/);
    expect(() => decodeWatermark(gzipSync(JSON.stringify({ by: 'id', ids: [1] })), 'w4')).toThrow(/"w4" is not a watermark \(ids\.0: .*string/);
    expect(() => decodeWatermark(gzipSync(JSON.stringify({ by: 'mtime', files: { 'a.txt': '2026' } })), 'w6')).toThrow(
      /"w6" is not a watermark \(files\.a\.txt: .*number/,
    );
    expect(() => decodeWatermark(gzipSync('[]'), 'w5')).toThrow(/"w5" is not a watermark \(the value: .*object/);
  });
});
