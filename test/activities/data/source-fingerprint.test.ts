import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { collectRecords } from '../../../activities/data/collect';
import type { S3SourceObject, S3SourceReader } from '../../../activities/data/s3-source';
import { fingerprintInThread, fingerprintSources, RACY_WINDOW_MS, type SourceFingerprintContext } from '../../../activities/data/source-fingerprint';
import { CollectOptionsSchema, type CollectOptions } from '../../../pipelines/stage-types';

const options = (raw: Record<string, unknown>): CollectOptions => CollectOptionsSchema.parse(raw);

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tempered-fingerprint-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function writeTree(base: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(base, name)), { recursive: true });
    writeFileSync(path.join(base, name), content);
  }
}

/** Gives every file under `base` the same old times, so none is racy (content is then not hashed). */
const settle = (base: string, files: string[], seconds = 1_600_000_000): void => {
  for (const f of files) utimesSync(path.join(base, f), seconds, seconds);
};
/** A clock far in the future: nothing is racy, so the fingerprint rests on paths, sizes and times alone. */
const settled = (baseDir: string): SourceFingerprintContext => ({ baseDir, now: () => Date.now() + 10 * RACY_WINDOW_MS, sleep: () => Promise.reject(new Error('nothing is racy')) });

describe('fingerprintSources: local files', () => {
  const glob = options({ sources: [{ path: 'data/*/*.txt' }] });
  let base: string;
  const files = ['data/ham/a.txt', 'data/ham/b.txt', 'data/spam/c.txt'];
  beforeEach(() => {
    base = mkdtempSync(path.join(root, 'local-'));
    writeTree(base, { [files[0]]: 'hello', [files[1]]: 'world', [files[2]]: 'buy now' });
    settle(base, files);
  });

  it('is the same for an untouched tree, and again after reading it', async () => {
    const first = await fingerprintSources(glob, settled(base));
    await collectRecords(glob, { baseDir: base, seed: 1 });
    expect(await fingerprintSources(glob, settled(base))).toBe(first);
    // Racy or not, an untouched tree gives one fingerprint.
    writeTree(base, { 'data/ham/new.txt': 'fresh' });
    const racy = await fingerprintSources(glob, { baseDir: base });
    expect(await fingerprintSources(glob, { baseDir: base })).toBe(racy);
  });

  it('changes when a file is added, deleted or renamed', async () => {
    const before = await fingerprintSources(glob, settled(base));
    writeTree(base, { 'data/spam/d.txt': 'x' });
    settle(base, ['data/spam/d.txt']);
    const added = await fingerprintSources(glob, settled(base));
    expect(added).not.toBe(before);

    unlinkSync(path.join(base, 'data/spam/d.txt'));
    const removed = await fingerprintSources(glob, settled(base));
    expect(removed).not.toBe(added);

    renameSync(path.join(base, 'data/ham/b.txt'), path.join(base, 'data/ham/z.txt'));
    settle(base, ['data/ham/z.txt']);
    expect(await fingerprintSources(glob, settled(base))).not.toBe(removed);
  });

  it('changes when content changes with the same size, even with the old mtime put back', async () => {
    const before = await fingerprintSources(glob, settled(base));
    const file = path.join(base, 'data/ham/a.txt');
    const { mtime } = statSync(file);
    writeFileSync(file, 'HELLO'); // same five bytes
    utimesSync(file, mtime, mtime); // what `cp -p` or `tar x` does: only ctime tells
    expect(statSync(file).mtimeMs).toBe(mtime.getTime());
    expect(await fingerprintSources(glob, settled(base))).not.toBe(before);
  });

  it('waits out the racy window for a file just written, so its key is the one later runs compute', async () => {
    writeFileSync(path.join(base, 'data/ham/a.txt'), 'jello');
    const waits: number[] = [];
    const sleep = (ms: number) => (waits.push(ms), new Promise<void>((r) => setTimeout(r, ms)));
    const fresh = await fingerprintSources(glob, { baseDir: base, sleep });
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThan(0);
    expect(waits[0]).toBeLessThanOrEqual(RACY_WINDOW_MS);
    // Later, nothing racy: no wait, and the same fingerprint.
    const later: number[] = [];
    expect(await fingerprintSources(glob, { baseDir: base, sleep: async (ms) => void later.push(ms) })).toBe(fresh);
    expect(later).toEqual([]);
  });

  it('adds the content of a file still racy after the wait (written again meanwhile, or dated in the future)', async () => {
    const mtimeMs = statSync(path.join(base, files[0])).mtimeMs;
    const stillRacy = { baseDir: base, now: () => mtimeMs, sleep: async () => undefined };
    const racy = await fingerprintSources(glob, stillRacy);
    expect(racy).not.toBe(await fingerprintSources(glob, settled(base))); // content went in
    expect(await fingerprintSources(glob, stillRacy)).toBe(racy);
    writeFileSync(path.join(base, files[0]), 'jello');
    settle(base, [files[0]]);
    expect(await fingerprintSources(glob, stillRacy)).not.toBe(racy);
  });

  it('differs for the same relative glob under two spec directories', async () => {
    const other = mkdtempSync(path.join(root, 'local-'));
    writeTree(other, { [files[0]]: 'hello', [files[1]]: 'world', [files[2]]: 'buy now' });
    settle(other, files);
    expect(await fingerprintSources(glob, settled(other))).not.toBe(await fingerprintSources(glob, settled(base)));
  });

  it('changes when a symlink is retargeted', async () => {
    const linked = mkdtempSync(path.join(root, 'links-'));
    writeTree(linked, { 'real/a.txt': 'one', 'other/a.txt': 'two' });
    settle(linked, ['real/a.txt', 'other/a.txt']);
    symlinkSync('real', path.join(linked, 'link'));
    const viaLinks = options({ sources: [{ path: 'link/*.txt' }] });
    const before = await fingerprintSources(viaLinks, settled(linked));
    unlinkSync(path.join(linked, 'link'));
    symlinkSync('other', path.join(linked, 'link'));
    expect(await fingerprintSources(viaLinks, settled(linked))).not.toBe(before);
  });

  it('covers an npm package by name, version and files', async () => {
    const spec = mkdtempSync(path.join(root, 'npm-'));
    const pkg = path.join(spec, 'node_modules/tempered-fixture-corpus');
    writeTree(pkg, { 'package.json': JSON.stringify({ name: 'tempered-fixture-corpus', version: '1.0.0' }), 'data/a.txt': 'x' });
    settle(pkg, ['package.json', 'data/a.txt']);
    const npm = options({ sources: [{ path: 'npm:tempered-fixture-corpus/data/*.txt' }] });
    const v1 = await fingerprintSources(npm, settled(spec));
    expect(await fingerprintSources(npm, settled(spec))).toBe(v1);
    writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'tempered-fixture-corpus', version: '1.0.1' }));
    const v2 = await fingerprintSources(npm, settled(spec));
    expect(v2).not.toBe(v1);
    writeTree(pkg, { 'data/b.txt': 'y' });
    settle(pkg, ['data/b.txt']);
    expect(await fingerprintSources(npm, settled(spec))).not.toBe(v2);
  });

  it('fails like collect when a source matches nothing', async () => {
    await expect(fingerprintSources(options({ sources: [{ path: 'nothing/*.txt' }] }), settled(base))).rejects.toThrow('matched no files');
  });
});

describe('fingerprintSources: S3 prefixes', () => {
  /** A bucket listing the test edits; reading a body fails the test: the fingerprint lists only. */
  function fakeBucket(objects: S3SourceObject[]): S3SourceReader {
    return {
      async *list(uri) {
        for (const o of objects) if (o.uri.startsWith(uri)) yield o;
      },
      read: () => {
        throw new Error('the fingerprint must not read object bodies');
      },
    };
  }
  const object = (key: string, etag: string, size = 10, lastModified = 1_700_000_000_000): S3SourceObject => ({
    key,
    uri: `s3://b/in/${key}`,
    etag: `"${etag}"`,
    size,
    lastModified,
  });
  const s3Options = options({ sources: [{ s3: 's3://b/in/' }] });

  it('follows keys, ETags and sizes, and is stable for an unchanged listing', async () => {
    const objects = [object('a.txt', 'e1'), object('b.txt', 'e2')];
    const fp = (list: S3SourceObject[]) => fingerprintSources(s3Options, { baseDir: root, s3: fakeBucket(list) });
    const before = await fp(objects);
    expect(await fp([...objects])).toBe(before);
    expect(await fp([...objects, object('c.txt', 'e3')])).not.toBe(before); // put
    expect(await fp([objects[0]])).not.toBe(before); // delete
    expect(await fp([objects[0], object('b2.txt', 'e2')])).not.toBe(before); // rename
    expect(await fp([objects[0], object('b.txt', 'e9')])).not.toBe(before); // overwrite, same size
  });

  it('never matches itself for a listing that versions nothing', async () => {
    const bare = [{ key: 'a.txt', uri: 's3://b/in/a.txt' }];
    const fp = () => fingerprintSources(s3Options, { baseDir: root, s3: fakeBucket(bare) });
    expect(await fp()).not.toBe(await fp());
  });
});

describe('fingerprintSources: incremental collects', () => {
  it('names the previous watermark, so another cycle never shares a key', async () => {
    const base = mkdtempSync(path.join(root, 'inc-'));
    writeTree(base, { 'inbox/a.txt': 'x' });
    settle(base, ['inbox/a.txt']);
    const inc = options({ sources: [{ path: 'inbox/*.txt' }], incremental: { by: 'mtime' } });
    const first = await fingerprintSources(inc, { ...settled(base), continualState: 'watermark=none cycles=0' });
    const second = await fingerprintSources(inc, { ...settled(base), continualState: 'watermark=abc cycles=1' });
    expect(second).not.toBe(first);
    // An empty inbox is a result for an incremental collect, not an error.
    await expect(fingerprintSources(options({ sources: [{ path: 'empty/*.txt' }], incremental: { by: 'mtime' } }), settled(base))).resolves.toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('fingerprintInThread', () => {
  it('gives what fingerprintSources gives, and keeps an error its class', async () => {
    const base = mkdtempSync(path.join(root, 'thread-'));
    writeTree(base, { 'data/a/1.txt': 'one', 'data/b/2.txt': 'two' });
    settle(base, ['data/a/1.txt', 'data/b/2.txt']);
    const glob = options({ sources: [{ path: 'data/*/*.txt' }] });
    expect(await fingerprintInThread({ options: glob, baseDir: base })).toBe(await fingerprintSources(glob, { baseDir: base }));
    const none = fingerprintInThread({ options: options({ sources: [{ path: 'nothing/*.txt' }] }), baseDir: base });
    await expect(none).rejects.toMatchObject({ name: 'EmptySourceError', nonRetryable: true, message: expect.stringContaining('matched no files') });
  });

  it('leaves the event loop free while a pathological glob crawls, and a cancelled stage ends it', async () => {
    const base = mkdtempSync(path.join(root, 'slow-glob-'));
    // picomatch's regex for `*a*a*a*a*b` backtracks for seconds on a long name of a's.
    writeTree(base, { [`data/${'a'.repeat(200)}`]: 'x' });
    const abort = new AbortController();
    const listing = fingerprintInThread({ options: options({ sources: [{ path: 'data/*a*a*a*a*a*b' }] }), baseDir: base }, abort.signal);
    const lags: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await new Promise((r) => setTimeout(r, 20));
      lags.push(performance.now() - t - 20);
    }
    expect(Math.max(...lags)).toBeLessThan(200);
    abort.abort();
    await expect(listing).rejects.toThrow('stage cancelled while listing its sources');
  });
});
