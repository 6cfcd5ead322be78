import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Watermark } from '../../../activities/data/watermark';
import { collectRecords, type CollectResult } from '../../../activities/data/collect';
import { EmptySourceError, InvalidOptionError, InvalidUtf8Error } from '../../../activities/data/errors';
import type { S3SourceObject, S3SourceReader } from '../../../activities/data/s3-source';
import { decodeWatermark, encodeWatermark } from '../../../activities/data/watermark';
import { CollectOptionsSchema, type CollectOptions } from '../../../pipelines/stage-types';

/** Parses options through the real schema, so defaults are the spec's defaults. */
const options = (raw: Record<string, unknown>): CollectOptions => CollectOptionsSchema.parse(raw);

// Whole seconds: utimes takes seconds as a float, so sub-second times would not come back exact.
const T = 1_700_000_000_000;
const time = (n: number): number => T + n * 1000;

let base: string;
beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'tempered-incremental-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function write(name: string, content: string, timeMs: number): void {
  const file = path.join(base, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  utimesSync(file, new Date(timeMs), new Date(timeMs));
}

/** Replaces a file with bytes that are not UTF-8, keeping its mtime: reading it would throw. */
function poison(name: string): void {
  const file = path.join(base, name);
  const { mtime } = statSync(file);
  writeFileSync(file, Buffer.from([0xff, 0xfe, 0xfd]));
  utimesSync(file, mtime, mtime);
}

/** The watermark as the next cycle sees it: through the store's gzip JSON. */
const stored = (watermark: Watermark | undefined): Watermark => decodeWatermark(encodeWatermark(watermark!), 'test');

const byMtime = (raw: Record<string, unknown> = {}): CollectOptions =>
  options({ sources: [{ path: 'inbox/*.txt' }], incremental: { by: 'mtime' }, ...raw });
const cycle = (spec: CollectOptions, since?: Watermark, seed = 1): Promise<CollectResult> =>
  collectRecords(spec, { baseDir: base, seed, ...(since ? { since } : {}) });

describe('collectRecords incremental by mtime', () => {
  beforeEach(() => {
    write('inbox/a.txt', 'first mail', time(1));
    write('inbox/b.txt', 'second mail', time(2));
  });

  it('reads everything on the first cycle and keeps every file with its mtime', async () => {
    const { records, metrics, watermark } = await cycle(byMtime());
    expect(records.map((r) => r.text)).toEqual(['first mail', 'second mail']);
    expect(watermark).toEqual({ by: 'mtime', at: time(2), files: { 'inbox/a.txt': time(1), 'inbox/b.txt': time(2) } });
    expect(metrics.incremental).toEqual({ by: 'mtime', previous: null, newFiles: 2, unchangedFiles: 0, newRecords: 2 });
    expect(metrics.nothingNew).toBe(false);
    expect(metrics.files).toBe(2);
  });

  it('finds nothing new in an unchanged inbox, without reading any file', async () => {
    const first = await cycle(byMtime());
    poison('inbox/a.txt');
    poison('inbox/b.txt');
    // Reading a poisoned file fails, so the incremental cycle below passing proves it read none.
    await expect(cycle(options({ sources: [{ path: 'inbox/*.txt' }] }))).rejects.toThrow(InvalidUtf8Error);

    const next = await cycle(byMtime(), stored(first.watermark));
    expect(next.records).toEqual([]);
    expect(next.metrics).toMatchObject({ files: 0, bytes: 0, read: 0, records: 0, nothingNew: true });
    expect(next.metrics.incremental).toEqual({ by: 'mtime', previous: time(2), newFiles: 0, unchangedFiles: 2, newRecords: 0 });
    expect(next.watermark).toEqual(first.watermark);
  });

  it('reads only a file added, with the same ids a full read gives it', async () => {
    const first = await cycle(byMtime());
    poison('inbox/a.txt');
    write('inbox/c.txt', 'third mail', time(3));
    const { records, metrics, watermark } = await cycle(byMtime(), stored(first.watermark));
    expect(records.map((r) => [r.text, r.meta?.source])).toEqual([['third mail', 'inbox/c.txt']]);
    expect(metrics.incremental).toEqual({ by: 'mtime', previous: time(2), newFiles: 1, unchangedFiles: 2, newRecords: 1 });
    expect(watermark).toEqual({ by: 'mtime', at: time(3), files: { 'inbox/a.txt': time(1), 'inbox/b.txt': time(2), 'inbox/c.txt': time(3) } });

    write('inbox/a.txt', 'first mail', time(1));
    const full = await cycle(options({ sources: [{ path: 'inbox/*.txt' }] }));
    expect(full.records.find((r) => r.text === 'third mail')?.id).toBe(records[0].id);
  });

  it('reads a new name written in the same millisecond as the newest file seen, but not that file', async () => {
    const first = await cycle(byMtime());
    poison('inbox/b.txt');
    write('inbox/b2.txt', 'same tick', time(2));
    const { records, watermark } = await cycle(byMtime(), stored(first.watermark));
    expect(records.map((r) => r.text)).toEqual(['same tick']);
    expect(watermark?.files).toEqual({ 'inbox/a.txt': time(1), 'inbox/b.txt': time(2), 'inbox/b2.txt': time(2) });
  });

  it('reads a file that lands with an mtime older than every file seen, as a rename into place does', async () => {
    const first = await cycle(byMtime());
    poison('inbox/a.txt');
    poison('inbox/b.txt');
    // Written before the first cycle listed b.txt, renamed into the glob after it: rename keeps the
    // mtime, as do cp -p, rsync -t and unpacking an archive.
    write('inbox/c.txt.part', 'renamed into place', time(1));
    renameSync(path.join(base, 'inbox/c.txt.part'), path.join(base, 'inbox/c.txt'));
    const { records, metrics, watermark } = await cycle(byMtime(), stored(first.watermark));
    expect(records.map((r) => r.text)).toEqual(['renamed into place']);
    expect(metrics.incremental).toEqual({ by: 'mtime', previous: time(2), newFiles: 1, unchangedFiles: 2, newRecords: 1 });
    expect(watermark).toEqual({ by: 'mtime', at: time(2), files: { 'inbox/a.txt': time(1), 'inbox/b.txt': time(2), 'inbox/c.txt': time(1) } });
  });

  it('reads files listed after one with a future mtime (clock skew), which blocks nothing', async () => {
    write('inbox/skewed.txt', 'from a fast clock', time(100_000));
    const first = await cycle(byMtime());
    expect(first.watermark?.at).toBe(time(100_000));
    write('inbox/c.txt', 'third mail', time(3));
    const { records } = await cycle(byMtime(), stored(first.watermark));
    expect(records.map((r) => r.text)).toEqual(['third mail']);
  });

  it('drops files no longer listed, and reads one again when it comes back', async () => {
    const first = await cycle(byMtime());
    unlinkSync(path.join(base, 'inbox/a.txt'));
    const without = await cycle(byMtime(), stored(first.watermark));
    expect(without.metrics.nothingNew).toBe(true);
    expect(without.watermark?.files).toEqual({ 'inbox/b.txt': time(2) });

    write('inbox/a.txt', 'first mail', time(1));
    const { records } = await cycle(byMtime(), stored(without.watermark));
    expect(records.map((r) => r.text)).toEqual(['first mail']);
  });

  it('rounds sub-millisecond mtimes down, so the stored mark matches the file exactly', async () => {
    utimesSync(path.join(base, 'inbox/b.txt'), new Date(time(2)), (time(2) + 0.75) / 1000);
    const first = await cycle(byMtime());
    expect(first.watermark?.at).toBe(time(2));
    const { metrics } = await cycle(byMtime(), stored(first.watermark));
    expect(metrics.nothingNew).toBe(true);
  });

  it('reads a rewritten file again, keeping its ids', async () => {
    const first = await cycle(byMtime());
    write('inbox/a.txt', 'first mail, edited', time(5));
    const { records } = await cycle(byMtime(), stored(first.watermark));
    expect(records.map((r) => r.text)).toEqual(['first mail, edited']);
    expect(records[0].id).toBe(first.records[0].id);
  });

  it('reads a file again whose mtime moved back, as restoring an older copy does', async () => {
    const first = await cycle(byMtime());
    write('inbox/b.txt', 'second mail, restored', time(0));
    const { records } = await cycle(byMtime(), stored(first.watermark));
    expect(records.map((r) => r.text)).toEqual(['second mail, restored']);
  });

  it('does not see a file rewritten with its mtime set back to exactly what it was', async () => {
    const first = await cycle(byMtime());
    write('inbox/a.txt', 'first mail, edited', time(1));
    const { metrics } = await cycle(byMtime(), stored(first.watermark));
    expect(metrics.nothingNew).toBe(true);
  });

  it('honours a high-water mark kept by an earlier version once, then keeps every file', async () => {
    const legacy: Watermark = { by: 'mtime', at: time(2), namesAtMark: ['inbox/b.txt'] };
    poison('inbox/a.txt');
    poison('inbox/b.txt');
    write('inbox/b2.txt', 'same tick', time(2));
    write('inbox/c.txt', 'third mail', time(3));
    const { records, watermark } = await cycle(byMtime(), stored(legacy));
    expect(records.map((r) => r.text)).toEqual(['same tick', 'third mail']);
    expect(watermark).toEqual({
      by: 'mtime',
      at: time(3),
      files: { 'inbox/a.txt': time(1), 'inbox/b.txt': time(2), 'inbox/b2.txt': time(2), 'inbox/c.txt': time(3) },
    });
  });

  it('applies limit to the new records only, while the watermark covers every listed file', async () => {
    write('inbox/c.txt', 'third mail', time(3));
    const first = await cycle(byMtime({ limit: 1 }));
    expect(first.records).toHaveLength(1);
    expect(Object.keys(first.watermark?.files ?? {})).toEqual(['inbox/a.txt', 'inbox/b.txt', 'inbox/c.txt']);

    write('inbox/d.txt', 'fourth mail', time(4));
    write('inbox/e.txt', 'fifth mail', time(4));
    const { records, metrics } = await cycle(byMtime({ limit: 1 }), stored(first.watermark));
    expect(records).toHaveLength(1);
    expect(['fourth mail', 'fifth mail']).toContain(records[0].text);
    expect(metrics.removed.overLimit).toBe(1);
    expect(metrics.incremental?.newRecords).toBe(2);
  });

  it('fails when sampling drops every new record, but not when nothing is new', async () => {
    const tiny = byMtime({ sample: 1e-9 });
    await expect(cycle(tiny)).rejects.toThrow(/kept no records after sample 1e-9 \(of 2 new\) .*; raise sample$/);
    const first = await cycle(byMtime());
    const { metrics } = await cycle(tiny, stored(first.watermark));
    expect(metrics.nothingNew).toBe(true);
  });

  it('keeps one watermark over several sources', async () => {
    write('outbox/x.txt', 'sent mail', time(2));
    const spec = byMtime({ sources: [{ path: 'inbox/*.txt' }, { path: 'outbox/*.txt' }] });
    const first = await cycle(spec);
    expect(first.watermark).toEqual({ by: 'mtime', at: time(2), files: { 'inbox/a.txt': time(1), 'inbox/b.txt': time(2), 'outbox/x.txt': time(2) } });
    expect(first.metrics.sources.map((s) => [s.source, s.files])).toEqual([
      ['inbox/*.txt', 2],
      ['outbox/*.txt', 1],
    ]);
    const { metrics } = await cycle(spec, stored(first.watermark));
    expect(metrics.nothingNew).toBe(true);
    expect(metrics.incremental?.unchangedFiles).toBe(3);
  });

  it('treats new files that hold no records yet as nothing new, and still advances past them', async () => {
    const first = await cycle(byMtime());
    write('inbox/c.txt', '  \n', time(3));
    const { metrics, watermark } = await cycle(byMtime(), stored(first.watermark));
    expect(metrics).toMatchObject({ files: 1, records: 0, nothingNew: true, removed: { emptySegments: 1 } });
    expect(watermark?.files).toHaveProperty(['inbox/c.txt'], time(3));
  });
});

describe('collectRecords incremental: an empty inbox', () => {
  it('is nothing new on the first cycle, where a plain collect fails', async () => {
    mkdirSync(path.join(base, 'inbox'));
    const { records, metrics, watermark } = await cycle(byMtime());
    expect(records).toEqual([]);
    expect(metrics).toMatchObject({ files: 0, records: 0, nothingNew: true });
    expect(metrics.incremental).toEqual({ by: 'mtime', previous: null, newFiles: 0, unchangedFiles: 0, newRecords: 0 });
    expect(watermark).toEqual({ by: 'mtime', files: {} });
    await expect(cycle(options({ sources: [{ path: 'inbox/*.txt' }] }))).rejects.toThrow(EmptySourceError);
  });

  it('reads everything once data arrives after an empty first cycle', async () => {
    const empty = await cycle(byMtime());
    write('inbox/a.txt', 'finally', time(1));
    const { records, watermark } = await cycle(byMtime(), stored(empty.watermark));
    expect(records.map((r) => r.text)).toEqual(['finally']);
    expect(watermark).toEqual({ by: 'mtime', at: time(1), files: { 'inbox/a.txt': time(1) } });
  });
});

describe('collectRecords incremental by id', () => {
  const byId = (raw: Record<string, unknown> = {}): CollectOptions =>
    options({ sources: [{ path: 'inbox/*.jsonl' }], idField: 'id', incremental: { by: 'id' }, ...raw });

  it('drops records whose id an earlier cycle saw, before limit', async () => {
    write('inbox/a.jsonl', '{"id":"m2","text":"two"}\n{"id":"m1","text":"one"}\n', time(1));
    const first = await cycle(byId());
    expect(first.records.map((r) => r.id)).toEqual(['m2', 'm1']);
    expect(first.watermark).toEqual({ by: 'id', ids: ['m1', 'm2'] });
    expect(first.metrics.incremental).toEqual({ by: 'id', previous: null, alreadySeenRecords: 0, newRecords: 2 });

    // Same mtime on purpose: id mode looks at contents only.
    write('inbox/a.jsonl', '{"id":"m2","text":"two"}\n{"id":"m1","text":"one"}\n{"id":"m3","text":"three"}\n', time(1));
    write('inbox/b.jsonl', '{"id":"m0","text":"zero"}\n', time(0));
    const { records, metrics, watermark } = await cycle(byId({ limit: 2 }), stored(first.watermark));
    expect(records.map((r) => r.id)).toEqual(['m3', 'm0']);
    expect(metrics).toMatchObject({ read: 4, records: 2, removed: { overLimit: 0 } });
    expect(metrics.incremental).toEqual({ by: 'id', previous: 2, alreadySeenRecords: 2, newRecords: 2 });
    expect(watermark).toEqual({ by: 'id', ids: ['m0', 'm1', 'm2', 'm3'] });

    const again = await cycle(byId(), stored(watermark));
    expect(again.records).toEqual([]);
    expect(again.metrics).toMatchObject({ read: 4, records: 0, nothingNew: true });
    expect(again.watermark).toEqual(watermark);
  });

  it('finds lines appended to a file through derived ids, which do not move', async () => {
    const spec = options({ sources: [{ path: 'inbox/*.txt' }], segment: 'line', incremental: { by: 'id' } });
    write('inbox/log.txt', 'alpha\nbeta\n', time(1));
    const first = await cycle(spec);
    write('inbox/log.txt', 'alpha\nbeta\ngamma\n', time(2));
    const { records, watermark } = await cycle(spec, stored(first.watermark));
    expect(records.map((r) => [r.text, r.meta?.line])).toEqual([['gamma', 3]]);
    expect(watermark?.ids).toEqual([...first.records.map((r) => r.id), records[0].id].sort());
  });
});

describe('collectRecords incremental by lastModified (S3)', () => {
  type Stored = { body: string; lastModified?: number };
  function fakeS3(objects: Record<string, Stored>, reads: string[]): S3SourceReader {
    return {
      async *list(uri) {
        for (const [key, { lastModified }] of Object.entries(objects)) {
          const object: S3SourceObject = { key: key.slice('s3://inbox/'.length), uri: key, lastModified };
          if (key.startsWith(`${uri}/`)) yield object;
        }
      },
      async read(uri) {
        reads.push(uri);
        return Buffer.from(objects[uri].body);
      },
    };
  }
  const spec = options({ sources: [{ s3: 's3://inbox/mail' }], incremental: { by: 'lastModified' } });

  it('reads only objects the watermark does not hold with their time', async () => {
    const objects: Record<string, Stored> = {
      's3://inbox/mail/a.txt': { body: 'a', lastModified: time(1) },
      's3://inbox/mail/b.txt': { body: 'b', lastModified: time(2) },
    };
    const reads: string[] = [];
    const first = await collectRecords(spec, { baseDir: base, seed: 1, s3: fakeS3(objects, reads) });
    expect(first.records.map((r) => r.text)).toEqual(['a', 'b']);
    expect(first.watermark).toEqual({
      by: 'lastModified',
      at: time(2),
      files: { 's3://inbox/mail/a.txt': time(1), 's3://inbox/mail/b.txt': time(2) },
    });

    // An upload in flight during the first listing appears later with a LastModified from before it.
    objects['s3://inbox/mail/c.txt'] = { body: 'c', lastModified: time(3) };
    objects['s3://inbox/mail/late.txt'] = { body: 'late', lastModified: time(1) };
    reads.length = 0;
    const next = await collectRecords(spec, { baseDir: base, seed: 1, s3: fakeS3(objects, reads), since: stored(first.watermark) });
    expect(reads).toEqual(['s3://inbox/mail/c.txt', 's3://inbox/mail/late.txt']);
    expect(next.records.map((r) => r.text)).toEqual(['c', 'late']);
    expect(next.metrics.incremental).toEqual({ by: 'lastModified', previous: time(2), newFiles: 2, unchangedFiles: 2, newRecords: 2 });
  });

  it('is nothing new for an empty prefix', async () => {
    const { metrics, watermark } = await collectRecords(spec, { baseDir: base, seed: 1, s3: fakeS3({}, []) });
    expect(metrics.nothingNew).toBe(true);
    expect(watermark).toEqual({ by: 'lastModified', files: {} });
  });

  it('rejects a listing without LastModified times', async () => {
    const s3 = fakeS3({ 's3://inbox/mail/a.txt': { body: 'a' } }, []);
    await expect(collectRecords(spec, { baseDir: base, seed: 1, s3 })).rejects.toThrow(
      /collect incremental.by "lastModified" needs each object's LastModified time, but the listing gave none for "s3:\/\/inbox\/mail\/a.txt"; use incremental.by "id"/,
    );
  });
});

describe('collectRecords incremental: mismatches', () => {
  const untouchable: S3SourceReader = {
    list: () => {
      throw new Error('listed');
    },
    read: () => {
      throw new Error('read');
    },
  };

  it('rejects mtime for an S3 source before listing anything, pointing to lastModified', async () => {
    const spec = options({ sources: [{ s3: 's3://inbox/mail' }], incremental: { by: 'mtime' } });
    const attempt = collectRecords(spec, { baseDir: base, seed: 1, s3: untouchable });
    await expect(attempt).rejects.toThrow(InvalidOptionError);
    await expect(attempt).rejects.toThrow(
      /collect incremental.by "mtime" does not apply to the S3 source "s3:\/\/inbox\/mail": .*; use incremental.by "lastModified" for S3 sources/,
    );
    await expect(attempt).rejects.toMatchObject({ nonRetryable: true });
  });

  it('rejects lastModified for a local source, pointing to mtime', async () => {
    const spec = options({ sources: [{ path: 'inbox/*.txt' }], incremental: { by: 'lastModified' } });
    await expect(cycle(spec)).rejects.toThrow(
      /collect incremental.by "lastModified" does not apply to the local source "inbox\/\*.txt": .*; use incremental.by "mtime" for local and npm: sources/,
    );
  });

  it('rejects a watermark kept by another method', async () => {
    await expect(cycle(byMtime(), { by: 'id', ids: ['x'] })).rejects.toThrow(
      /collect incremental.by "mtime" does not match the previous cycle's watermark, which was kept by "id"; restore incremental.by "id"/,
    );
  });
});

describe('collectRecords without incremental', () => {
  it('returns no watermark and no incremental metrics, whatever `since` says', async () => {
    write('inbox/a.txt', 'mail', time(1));
    const result = await cycle(options({ sources: [{ path: 'inbox/*.txt' }] }), { by: 'mtime', at: time(9) });
    expect(result.records.map((r) => r.text)).toEqual(['mail']);
    expect(Object.keys(result)).toEqual(['records', 'metrics']);
    expect(result.metrics).not.toHaveProperty('incremental');
    expect(result.metrics).not.toHaveProperty('nothingNew');
  });
});
