import { InvalidOptionError, InvalidRatiosError } from '../../../activities/data/errors';
import { createRandom } from '../../../activities/data/random';
import type { DataRecord } from '../../../activities/data/record';
import { splitRecords, SPLIT_NAMES } from '../../../activities/data/split';
import { SplitOptionsSchema } from '../../../pipelines/stage-types';

const options = (raw: Record<string, unknown> = {}) => SplitOptionsSchema.parse(raw);

/** Distinct texts: 30 words from a 5,000-word vocabulary, so no two are near-duplicates. */
function distinctText(seed: number): string {
  const random = createRandom(seed);
  return Array.from({ length: 30 }, () => `v${random.int(5000)}`).join(' ');
}

function labeled(counts: Record<string, number>): DataRecord[] {
  const records: DataRecord[] = [];
  for (const [label, count] of Object.entries(counts)) {
    for (let i = 0; i < count; i++) records.push({ id: `${label}-${i}`, text: distinctText(records.length + 1), label });
  }
  // Interleave labels so input order is not sorted by label.
  return records.sort((a, b) => (a.text < b.text ? -1 : 1));
}

describe('splitRecords', () => {
  const labelCounts = { a: 501, b: 333, c: 166 };
  const records = labeled(labelCounts);

  it('splits 1000 labeled records 7:1:2 exactly, each label within 1 of its share', async () => {
    const { splits, metrics } = await splitRecords(records, options(), { seed: 1 });
    expect(metrics.counts).toEqual({ train: 700, validation: 100, test: 200 });
    expect([splits.train.length, splits.validation.length, splits.test.length]).toEqual([700, 100, 200]);
    const ratios = { train: 0.7, validation: 0.1, test: 0.2 };
    for (const split of SPLIT_NAMES) {
      for (const [label, count] of Object.entries(labelCounts)) {
        const inSplit = splits[split].filter((r) => r.label === label).length;
        expect(Math.abs(inSplit - count * ratios[split])).toBeLessThan(1);
        expect(metrics.labels[split][label]).toBe(inSplit);
      }
    }
    expect(metrics.stratified).toBe(true);
    expect(metrics.groups).toBe(0);
    expect(metrics.movedToKeepGroupsWhole).toBe(0);
  });

  it('puts every record in exactly one split and keeps input order within each', async () => {
    const { splits } = await splitRecords(records, options(), { seed: 1 });
    const ids = SPLIT_NAMES.flatMap((s) => splits[s].map((r) => r.id));
    expect(new Set(ids).size).toBe(records.length);
    const position = new Map(records.map((r, i) => [r.id, i]));
    for (const split of SPLIT_NAMES) {
      const order = splits[split].map((r) => position.get(r.id)!);
      expect(order).toEqual([...order].sort((x, y) => x - y));
    }
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const ids = async (seed: number) => (await splitRecords(records, options(), { seed })).splits.train.map((r) => r.id);
    expect(await ids(1)).toEqual(await ids(1));
    expect(await ids(2)).not.toEqual(await ids(1));
  });

  it('rejects ratios that do not sum to 1, naming them and the fix', async () => {
    const bad = options({ ratios: { train: 0.8, validation: 0.1, test: 0.2 } });
    await expect(splitRecords(records, bad, { seed: 1 })).rejects.toThrow(InvalidRatiosError);
    await expect(splitRecords(records, bad, { seed: 1 })).rejects.toThrow(
      'split ratios {"train":0.8,"validation":0.1,"test":0.2} sum to 1.1, not 1; adjust train/validation/test so they add up to 1',
    );
  });

  it('accepts ratios within 1e-6 of 1 and leaves a zero-ratio split empty', async () => {
    const { metrics } = await splitRecords(records, options({ ratios: { train: 0.9, validation: 0, test: 0.1000001 } }), { seed: 1 });
    expect(metrics.counts).toEqual({ train: 900, validation: 0, test: 100 });
  });

  it('splits unlabeled records without stratifying', async () => {
    const plain = records.slice(0, 10).map(({ id, text }) => ({ id, text }));
    const { metrics } = await splitRecords(plain, options(), { seed: 1 });
    expect(metrics.counts).toEqual({ train: 7, validation: 1, test: 2 });
    expect(metrics.stratified).toBe(false);
    expect(metrics.labels).toEqual({ train: {}, validation: {}, test: {} });
  });

  it('never lets a near-duplicate group straddle splits', async () => {
    const groups: DataRecord[][] = [];
    for (let g = 0; g < 50; g++) {
      const base = Array.from({ length: 300 }, (_, i) => `g${g}w${i}`);
      groups.push(
        [0, 1, 2, 3].map((k) => ({
          id: `group${g}-${k}`,
          text: base.map((w, i) => (i === 10 + k * 12 ? `edit${k}` : w)).join(' '),
          label: g % 2 === 0 ? 'even' : 'odd',
        })),
      );
    }
    const singles = Array.from({ length: 300 }, (_, i) => ({ id: `single${i}`, text: distinctText(10_000 + i), label: i % 2 === 0 ? 'even' : 'odd' }));
    const all = [...groups.flat(), ...singles].sort((a, b) => (a.id < b.id ? -1 : 1));
    const { splits, metrics } = await splitRecords(all, options(), { seed: 3 });

    const splitOf = new Map<string, string>();
    for (const split of SPLIT_NAMES) for (const r of splits[split]) splitOf.set(r.id, split);
    for (const group of groups) expect(new Set(group.map((r) => splitOf.get(r.id))).size).toBe(1);
    expect(metrics.groups).toBe(50);
    expect(metrics.groupedRecords).toBe(200);
    expect(metrics.largestGroup).toBe(4);
    // Groups go first and singletons fill the remaining room, so the counts stay exact here.
    expect(metrics.counts).toEqual({ train: 350, validation: 50, test: 100 });
    expect(metrics.movedToKeepGroupsWhole).toBe(0);
  });

  it('counts records moved when a group cannot be divided', async () => {
    const base = Array.from({ length: 300 }, (_, i) => `w${i}`);
    const copies = Array.from({ length: 10 }, (_, k) => ({
      id: `copy${k}`,
      text: base.map((w, i) => (i === 150 ? `edit${k}` : w)).join(' '),
    }));
    const { metrics } = await splitRecords(copies, options(), { seed: 1 });
    expect(metrics.counts).toEqual({ train: 10, validation: 0, test: 0 });
    expect(metrics.movedToKeepGroupsWhole).toBe(3);
  });

  it('rejects near-duplicate bands that do not divide numPermutations', async () => {
    await expect(splitRecords(records, options({ groupNearDuplicates: { bands: 7 } }), { seed: 1 })).rejects.toThrow(InvalidOptionError);
    await expect(splitRecords(records, options({ groupNearDuplicates: { bands: 7 } }), { seed: 1 })).rejects.toThrow(
      'groupNearDuplicates.bands 7 does not divide groupNearDuplicates.numPermutations (128); choose a divisor of 128, e.g. 8',
    );
  });
});
