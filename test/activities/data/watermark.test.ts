import { gunzipSync, gzipSync } from 'node:zlib';
import type { Watermark } from '../../../activities/continual/state';
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
  const since: Watermark = { by: 'mtime', at: T, namesAtMark: ['a.txt'] };

  it('treats everything as new without a watermark, or with one that has no time yet', () => {
    expect(isNewFile('a.txt', 0, undefined)).toBe(true);
    expect(isNewFile('a.txt', 0, { by: 'mtime' })).toBe(true);
  });

  it('is new after the mark, old before it', () => {
    expect(isNewFile('a.txt', T + 1, since)).toBe(true);
    expect(isNewFile('b.txt', T - 1, since)).toBe(false);
  });

  it('at exactly the mark, is new only under a name not seen at the mark', () => {
    expect(isNewFile('a.txt', T, since)).toBe(false);
    expect(isNewFile('b.txt', T, since)).toBe(true);
  });
});

describe('advanceTimeWatermark', () => {
  it('moves to the newest time of every listed file and keeps the sorted names at it', () => {
    const next = advanceTimeWatermark('mtime', undefined, [
      { name: 'z.txt', timeMs: T + 5 },
      { name: 'old.txt', timeMs: T },
      { name: 'a.txt', timeMs: T + 5 },
    ]);
    expect(next).toEqual({ by: 'mtime', at: T + 5, namesAtMark: ['a.txt', 'z.txt'] });
  });

  it('drops the previous names when the mark moves', () => {
    const since: Watermark = { by: 'lastModified', at: T, namesAtMark: ['s3://b/a'] };
    expect(advanceTimeWatermark('lastModified', since, [{ name: 's3://b/c', timeMs: T + 1 }])).toEqual({
      by: 'lastModified',
      at: T + 1,
      namesAtMark: ['s3://b/c'],
    });
  });

  it('adds to the previous names when a file lands exactly on an unmoved mark', () => {
    const since: Watermark = { by: 'mtime', at: T, namesAtMark: ['b.txt'] };
    const next = advanceTimeWatermark('mtime', since, [
      { name: 'b.txt', timeMs: T },
      { name: 'a.txt', timeMs: T },
      { name: 'older.txt', timeMs: T - 10 },
    ]);
    expect(next).toEqual({ by: 'mtime', at: T, namesAtMark: ['a.txt', 'b.txt'] });
  });

  it('keeps the previous mark when files are older or nothing is listed', () => {
    const since: Watermark = { by: 'mtime', at: T, namesAtMark: ['b.txt'] };
    expect(advanceTimeWatermark('mtime', since, [{ name: 'x.txt', timeMs: T - 1 }])).toEqual(since);
    expect(advanceTimeWatermark('mtime', since, [])).toEqual(since);
  });

  it('has no time before any file was ever listed', () => {
    expect(advanceTimeWatermark('mtime', undefined, [])).toEqual({ by: 'mtime' });
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
    const time: Watermark = { by: 'mtime', at: Math.floor(1_700_000_000_123.987), namesAtMark: ['a b.txt', 'npm:pkg/é.txt'] };
    const ids: Watermark = { by: 'id', ids: Array.from({ length: 1000 }, (_, i) => `id-${i}`).sort() };
    for (const watermark of [time, ids, { by: 'lastModified' } as Watermark]) {
      const encoded = encodeWatermark(watermark);
      expect(JSON.parse(gunzipSync(encoded).toString('utf8'))).toEqual(watermark);
      expect(decodeWatermark(encoded, 'mem://w')).toEqual(watermark);
    }
    // Repetitive id sets are what the compression is for.
    expect(encodeWatermark(ids).length).toBeLessThan(JSON.stringify(ids).length / 4);
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
    expect(() => decodeWatermark(gzipSync('[]'), 'w5')).toThrow(/"w5" is not a watermark \(the value: .*object/);
  });
});
