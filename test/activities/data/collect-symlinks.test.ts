import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { collectRecords } from '../../../activities/data/collect';
import { CollectOptionsSchema, type CollectOptions } from '../../../pipelines/stage-types';

// A file reached through several symlinked directories is one file: collect reads it once, under
// the name that goes through no link, and a link back up the tree does not loop.

const options = (raw: Record<string, unknown>): CollectOptions => CollectOptionsSchema.parse(raw);

let base: string;
beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), 'tempered-collect-links-'));
  mkdirSync(path.join(base, 'data/real/nested'), { recursive: true });
  writeFileSync(path.join(base, 'data/real/a.txt'), 'alpha');
  writeFileSync(path.join(base, 'data/real/nested/b.txt'), 'beta');
  // Sorted by name, both links come before `real`: the kept name must still be the real one.
  symlinkSync('real', path.join(base, 'data/link-1'));
  symlinkSync(path.join(base, 'data/real'), path.join(base, 'data/link-2'));
  symlinkSync('..', path.join(base, 'data/real/nested/up')); // a loop: data/real/nested/up -> data/real
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

test('reads each real file once, however many symlinked directories lead to it', async () => {
  const { records, metrics } = await collectRecords(options({ sources: [{ path: 'data/*/*.txt' }] }), { baseDir: base, seed: 1 });
  expect(records.map((r) => [r.meta?.source, r.text])).toEqual([['data/real/a.txt', 'alpha']]);
  expect(metrics.files).toBe(1);
  expect(metrics.sources[0]).toMatchObject({ files: 1, duplicatePaths: 2 });
});

test('a recursive glob through a symlink loop ends, with each file once', async () => {
  const started = performance.now();
  const { records, metrics } = await collectRecords(options({ sources: [{ path: 'data/**/*.txt' }] }), { baseDir: base, seed: 1 });
  expect(records.map((r) => r.meta?.source)).toEqual(['data/real/a.txt', 'data/real/nested/b.txt']);
  expect(metrics.sources[0].duplicatePaths).toBeGreaterThanOrEqual(2);
  expect(performance.now() - started).toBeLessThan(5000);
});

test('a tree without links reports no duplicates', async () => {
  const { metrics } = await collectRecords(options({ sources: [{ path: 'data/real/*.txt' }] }), { baseDir: base, seed: 1 });
  expect(metrics.sources[0]).not.toHaveProperty('duplicatePaths');
});
