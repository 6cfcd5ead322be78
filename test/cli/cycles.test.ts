import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ContinualState, CycleRecord } from '../../activities/continual/state';
import { encodeWatermark } from '../../activities/data/watermark';
import { FileArtifactStore } from '../../activities/store';
import { describeWatermark, formatCycles, readWatermark } from '../../cli/cycles';

// `tempered cycles`: the text printed for a continual pipeline's state.

const ref = (name: string, bytes = 100) => ({ uri: `file:///store/continual/p/${name}`, sha256: '0'.repeat(64), bytes, mediaType: 'application/gzip' });

function cycle(n: number, extra: Partial<CycleRecord>): CycleRecord {
  return {
    cycle: n,
    runId: `run-${n}`,
    completedAt: `2026-03-1${n}T09:00:00.000Z`,
    newRecords: 1000,
    testSplit: ref(`test-${n}.jsonl`),
    metric: 'macroF1',
    registry: 'spam-classifier',
    candidateVersion: n,
    promoted: true,
    reason: 'promoted',
    evaluations: [],
    watermark: ref(`watermark-${n}.json.gz`),
    ...extra,
  };
}

const state: ContinualState = {
  apiVersion: 'tempered.dev/v1',
  pipeline: 'spam-continual',
  watermark: ref('watermark-3.json.gz'),
  reservoir: { ref: ref('reservoir.jsonl.gz', 217_497), records: 500, seen: 2400, size: 500 },
  cycles: [
    cycle(1, { newRecords: 1200, reason: 'first cycle: no champion yet', evaluations: [{ cycle: 1, candidate: 0.91, examples: 200 }] }),
    cycle(2, {
      newRecords: 600,
      championVersion: 1,
      gain: 0.03,
      forgetting: { mean: 0.005, max: 0.005 },
      reason: 'gain +3.0 pts ≥ 0, forgetting 0.5 pts ≤ 2',
      evaluations: [
        { cycle: 1, candidate: 0.905, champion: 0.91, examples: 200 },
        { cycle: 2, candidate: 0.93, champion: 0.9, examples: 180 },
      ],
    }),
    cycle(3, {
      newRecords: 600,
      championVersion: 2,
      promoted: false,
      gain: 0.02,
      forgetting: { mean: 0.04, max: 0.06 },
      reason: 'forgetting 4.0 pts > 2',
      evaluations: [
        { cycle: 1, candidate: 0.845, champion: 0.905, examples: 200 },
        { cycle: 2, candidate: 0.91, champion: 0.93, examples: 180 },
        { cycle: 3, candidate: 0.95, champion: 0.93, examples: 220 },
      ],
    }),
  ],
};

test('one aligned line per cycle, then the watermark and the reservoir', () => {
  const at = Date.parse('2026-03-13T08:30:00.000Z');
  const text = formatCycles(state, { by: 'mtime', at, files: { 'a.eml': at - 60_000, 'b.eml': at } });
  expect(text.split('\n')).toEqual([
    'spam-continual: 3 completed cycles, the last by run run-3 at 2026-03-13T09:00:00.000Z',
    'cycle  run    new records  candidate  champion  macro-F1 (new split)      gain  forgetting  decision  reason',
    '    1  run-1        1,200         v1         -                 91.0%         -           -  promoted  first cycle: no champion yet',
    '    2  run-2          600         v2        v1                 93.0%  +3.0 pts    +0.5 pts  promoted  gain +3.0 pts ≥ 0, forgetting 0.5 pts ≤ 2',
    '    3  run-3          600         v3        v2                 95.0%  +2.0 pts    +4.0 pts  kept out  forgetting 4.0 pts > 2',
    'watermark: by mtime, 2 files seen, the newest modified 2026-03-13T08:30:00.000Z (100 B stored)',
    'reservoir: 500/500 records, 212.4 KiB (2,400 train records offered so far)',
  ]);
});

test('no cycles yet: says so and how to start one', () => {
  const text = formatCycles({ apiVersion: 'tempered.dev/v1', pipeline: 'spam-continual', cycles: [] });
  expect(text).toContain('no completed cycles of "spam-continual" yet');
  expect(text).toContain('tempered schedule trigger');
  expect(text).toContain('tempered run <spec>');
});

test('watermarks by id count the ids; a state without watermark or reservoir says none', () => {
  expect(describeWatermark({ by: 'id', ids: ['a', 'b', 'c'] })).toBe('by id, 3 ids seen');
  expect(describeWatermark({ by: 'lastModified', files: {} })).toBe('by lastModified, no file seen yet');
  expect(describeWatermark({ by: 'mtime', at: Date.parse('2026-03-13T08:30:00.000Z'), files: { 'a.eml': 0 } })).toBe(
    'by mtime, 1 file seen, the newest modified 2026-03-13T08:30:00.000Z',
  );
  expect(describeWatermark({ by: 'mtime', at: Date.parse('2026-03-13T08:30:00.000Z'), namesAtMark: ['a.eml'] })).toBe(
    'by mtime, a high-water mark at 2026-03-13T08:30:00.000Z from an earlier version (the next completed cycle records each file instead)',
  );
  const text = formatCycles({ ...state, watermark: undefined, reservoir: undefined });
  expect(text).toContain('watermark: none yet');
  expect(text).toContain('reservoir: none');
});

test('the watermark is read from the gzip artifact the state points at', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tempered-cycles-'));
  const store = new FileArtifactStore(dir);
  try {
    const watermark = { by: 'id' as const, ids: ['m1', 'm2'] };
    const stored = await store.put('continual/spam-continual/watermark.json.gz', encodeWatermark(watermark), 'application/gzip');
    expect(await readWatermark(store, { ...state, watermark: stored })).toEqual(watermark);
    expect(await readWatermark(store, { ...state, watermark: undefined })).toBeUndefined();
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
