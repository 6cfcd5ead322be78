import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { collectRecords } from '../../../activities/data/collect';
import { InvalidOptionError, LabelFromPathError } from '../../../activities/data/errors';
import { loadSpecText } from '../../../pipelines/load';
import { CollectOptionsSchema, type CollectOptions } from '../../../pipelines/stage-types';

// labelFromPath runs on the worker against names the data decides: RE2 matches in linear time,
// so no pattern/path pair can stall the worker (a backtracking RegExp took ~40 s on `(a+)+$`).

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tempered-collect-regex-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function writeTree(base: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(base, name)), { recursive: true });
    writeFileSync(path.join(base, name), content);
  }
}

const options = (raw: Record<string, unknown>): CollectOptions => CollectOptionsSchema.parse(raw);

test('a catastrophic-backtracking pattern on a long path finishes in well under a second', async () => {
  const base = path.join(root, 'catastrophic');
  // 29 characters froze a backtracking engine for ~40 s; RE2 does 200 as fast.
  const name = `${'a'.repeat(200)}b.txt`;
  writeTree(base, { [name]: 'x' });
  const started = performance.now();
  const attempt = collectRecords(options({ sources: [{ path: '*.txt' }], labelFromPath: '(a+)+$' }), { baseDir: base, seed: 1 });
  // No match (the name ends in ".txt"): the failure names the regex and the file.
  await expect(attempt).rejects.toThrow(LabelFromPathError);
  await expect(attempt).rejects.toThrow(`labelFromPath "(a+)+$" does not match "${name}"`);
  expect(performance.now() - started).toBeLessThan(1000);

  const matching = await collectRecords(options({ sources: [{ path: '*.txt' }], labelFromPath: '(?<label>(a+)+)b' }), { baseDir: base, seed: 1 });
  expect(matching.records[0].label).toBe('a'.repeat(200));
});

test('named groups, first groups and whole matches label as before; a group that took no part falls through', async () => {
  const base = path.join(root, 'groups');
  writeTree(base, { 'ham-1/a.txt': 'a', 'spam-2/b.txt': 'b', 'other/c.txt': 'c' });
  const labels = async (labelFromPath: string) =>
    (await collectRecords(options({ sources: [{ path: '*/*.txt' }], labelFromPath }), { baseDir: base, seed: 1 })).records.map((r) => r.label);
  expect(await labels('(?<label>ham|spam|other)')).toEqual(['ham', 'other', 'spam']);
  expect(await labels('^(\\w+)')).toEqual(['ham', 'other', 'spam']);
  expect(await labels('[a-z]+')).toEqual(['ham', 'other', 'spam']);
  // `(?<label>…)|(…)`: where `label` took no part, the first group that did is not used — group 1 is `label` itself — so the whole match is.
  expect(await labels('(?<label>ham)|spam|oth')).toEqual(['ham', 'oth', 'spam']);
});

test('validation refuses backreferences and lookaround with the character where they start', () => {
  const cases: Array<[string, RegExp]> = [
    ['(a)\\1', /"\(a\)\\\\1" is not a regular expression RE2 can run: invalid escape sequence at character 4 .*backreferences/],
    ['spam(?=-\\d)', /invalid or unsupported Perl syntax at character 5 \("\(\?="\).*lookaround/],
    ['(?<!x)spam', /at character 1 .*lookaround/],
    ['[a-', /missing closing \] at character 1/],
  ];
  for (const [regex, message] of cases) {
    const parsed = CollectOptionsSchema.safeParse({ sources: [{ path: '*.txt' }], labelFromPath: regex });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0]).toMatchObject({ path: ['labelFromPath'], message: expect.stringMatching(message) });
  }
  expect(CollectOptionsSchema.safeParse({ sources: [{ path: '*.txt' }], labelFromPath: '(?<label>ham|spam)-\\d+/' }).success).toBe(true);
});

test('a spec with such a regex fails validation at the key, file:line:col', () => {
  const spec = `apiVersion: tempered.dev/v1
name: r
stages:
  collect:
    type: collect
    sources: [{ path: "*.txt" }]
    labelFromPath: "(ham)\\\\1"
`;
  expect(() => loadSpecText(spec, 'spec.yaml')).toThrow(/spec\.yaml:7:\d+ stages\.collect\.labelFromPath: "\(ham\)\\\\1" is not a regular expression RE2 can run/);
});

test('at run time (a plan that skipped validation) a refused regex names itself and the fix', async () => {
  const base = path.join(root, 'runtime');
  writeTree(base, { 'a.txt': 'x' });
  const unchecked = { ...options({ sources: [{ path: '*.txt' }] }), labelFromPath: '(x)(?=y)' };
  const attempt = collectRecords(unchecked, { baseDir: base, seed: 1 });
  await expect(attempt).rejects.toThrow(InvalidOptionError);
  await expect(attempt).rejects.toThrow(/collect labelFromPath "\(x\)\(\?=y\)" is not a regular expression RE2 can run: .* at character 4/);
});
