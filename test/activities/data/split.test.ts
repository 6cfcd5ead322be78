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

  describe('groupBy', () => {
    /** `documents` sources of 1 to 12 paragraph segments each, as collect `segment: paragraph` makes them; labels by source. */
    function segmented(documents: number, seed = 5): DataRecord[] {
      const random = createRandom(seed);
      const records: DataRecord[] = [];
      for (let d = 0; d < documents; d++) {
        const source = `docs/${d % 3 === 0 ? 'spam' : 'ham'}/${d}.txt`;
        const paragraphs = 1 + random.int(12);
        for (let p = 0; p < paragraphs; p++) {
          records.push({ id: `d${d}p${p}`, text: distinctText(100_000 + records.length), label: d % 3 === 0 ? 'spam' : 'ham', meta: { source, paragraph: p + 1 } });
        }
      }
      return records;
    }
    const splitOfEach = (splits: Record<string, DataRecord[]>) => {
      const of = new Map<string, string>();
      for (const split of SPLIT_NAMES) for (const r of splits[split]) of.set(r.id, split);
      return of;
    };

    it('keeps the segments of one document in one split, with proportions close to the ratios', async () => {
      const records = segmented(400);
      const { splits, metrics } = await splitRecords(records, options({ groupBy: 'source' }), { seed: 1 });
      const of = splitOfEach(splits);
      const bySource = new Map<string, Set<string>>();
      for (const r of records) {
        const source = r.meta!.source as string;
        bySource.set(source, (bySource.get(source) ?? new Set()).add(of.get(r.id)!));
      }
      expect(bySource.size).toBe(400);
      for (const splitsOfSource of bySource.values()) expect(splitsOfSource.size).toBe(1);
      expect(metrics.groupBy).toEqual({ field: 'source', values: 400 });
      // Documents hold at most 12 segments, so no split is off its target by more than that per label.
      const targets = { train: 0.7, validation: 0.1, test: 0.2 };
      for (const split of SPLIT_NAMES) {
        expect(Math.abs(metrics.counts[split] - records.length * targets[split])).toBeLessThanOrEqual(2 * 12);
        for (const label of ['ham', 'spam']) {
          const ofLabel = records.filter((r) => r.label === label).length;
          expect(Math.abs((metrics.labels[split][label] ?? 0) - ofLabel * targets[split])).toBeLessThanOrEqual(12);
        }
      }
      expect(metrics.counts.train + metrics.counts.validation + metrics.counts.test).toBe(records.length);
    });

    it('without groupBy, the same segments do straddle splits', async () => {
      const records = segmented(400);
      const { splits } = await splitRecords(records, options(), { seed: 1 });
      const of = splitOfEach(splits);
      const straddling = new Set(records.filter((r) => of.get(r.id) !== of.get(records.find((q) => q.meta!.source === r.meta!.source)!.id)).map((r) => r.meta!.source));
      expect(straddling.size).toBeGreaterThan(100);
    });

    it('merges field groups with near-duplicate groups', async () => {
      const base = Array.from({ length: 300 }, (_, i) => `w${i}`);
      const nearCopy = (k: number) => base.map((w, i) => (i === 150 ? `edit${k}` : w)).join(' ');
      // a1 and b0 are near-duplicates, so documents a and b must land together.
      const records: DataRecord[] = [
        { id: 'a0', text: distinctText(1), meta: { source: 'a.txt' } },
        { id: 'a1', text: nearCopy(1), meta: { source: 'a.txt' } },
        { id: 'b0', text: nearCopy(2), meta: { source: 'b.txt' } },
        { id: 'b1', text: distinctText(2), meta: { source: 'b.txt' } },
        ...Array.from({ length: 40 }, (_, i) => ({ id: `s${i}`, text: distinctText(1000 + i), meta: { source: `s${i}.txt` } })),
      ];
      for (const seed of [1, 2, 3, 4, 5]) {
        const { splits, metrics } = await splitRecords(records, options({ groupBy: 'source' }), { seed });
        const of = splitOfEach(splits);
        expect(new Set(['a0', 'a1', 'b0', 'b1'].map((id) => of.get(id))).size).toBe(1);
        expect(metrics.groups).toBe(1);
        expect(metrics.largestGroup).toBe(4);
      }
    });

    it('groups by label, id or a meta key, with or without the meta. prefix', async () => {
      const records = Array.from({ length: 60 }, (_, i) => ({ id: `r${i}`, text: distinctText(i), label: `l${i % 3}`, meta: { thread: `t${i % 12}`, page: i % 6 } }));
      for (const groupBy of ['thread', 'meta.thread', 'page', 'label']) {
        const { splits, metrics } = await splitRecords(records, options({ groupBy, groupNearDuplicates: false, stratify: false }), { seed: 1 });
        const of = splitOfEach(splits);
        const field = groupBy.replace('meta.', '');
        const valueOf = (r: DataRecord) => String(field === 'label' ? r.label : r.meta![field]);
        for (const r of records) for (const q of records) if (valueOf(r) === valueOf(q)) expect(of.get(r.id)).toBe(of.get(q.id));
        expect(metrics.groupBy?.values).toBe(field === 'thread' ? 12 : field === 'page' ? 6 : 3);
      }
    });

    it('stratifies a group by its majority label', async () => {
      // By majority, A and B are y documents and C and D x documents: halving each stratum puts
      // one of each pair on each side, exactly. By first label A would join C and D (three groups
      // of 4 for 6 places a side), and the counts would be off.
      const documents = { A: 'xyyy', B: 'yyyy', C: 'xxxx', D: 'xxxx' };
      const records = Object.entries(documents).flatMap(([doc, labels], d) =>
        [...labels].map((label, k) => ({ id: `${doc}${k}`, text: distinctText(7000 + 4 * d + k), label, meta: { source: doc } })),
      );
      const halves = options({ groupBy: 'source', ratios: { train: 0.5, validation: 0, test: 0.5 } });
      for (const seed of [1, 2, 3, 4, 5, 6]) {
        const { splits, metrics } = await splitRecords(records, halves, { seed });
        expect(metrics.counts).toEqual({ train: 8, validation: 0, test: 8 });
        expect(metrics.movedToKeepGroupsWhole).toBe(0);
        const of = splitOfEach(splits);
        expect(of.get('A0')).not.toBe(of.get('B0'));
        expect(of.get('C0')).not.toBe(of.get('D0'));
      }
    });

    it('fails, non-retryably, naming the field, the record and the fix, when a record lacks the field', async () => {
      const records: DataRecord[] = [
        { id: 'a', text: distinctText(1), meta: { source: 'a.txt' } },
        { id: 'b', text: distinctText(2), meta: { source: 'b.txt', chapter: 1 } },
        { id: 'c', text: distinctText(3), meta: { source: 'c.txt' } },
      ];
      const attempt = splitRecords(records, options({ groupBy: 'chapter' }), { seed: 1 });
      await expect(attempt).rejects.toThrow(InvalidOptionError);
      await expect(splitRecords(records, options({ groupBy: 'chapter' }), { seed: 1 })).rejects.toMatchObject({
        nonRetryable: true,
        message:
          'split groupBy "chapter" names a field 2 of 3 records lack, the first record "a" (from "a.txt"); ' +
          'use a field every record has (that one has "id", "source"; "source" is the file it was read from), or remove groupBy',
      });
      await expect(splitRecords(records.map(({ id, text }) => ({ id, text })), options({ groupBy: 'label' }), { seed: 1 })).rejects.toThrow(
        /split groupBy "label" names a field 3 of 3 records lack, the first record "a"; use a field every record has \(that one has "id"; /,
      );
    });
  });

  it('rejects near-duplicate bands that do not divide numPermutations', async () => {
    await expect(splitRecords(records, options({ groupNearDuplicates: { bands: 7 } }), { seed: 1 })).rejects.toThrow(InvalidOptionError);
    await expect(splitRecords(records, options({ groupNearDuplicates: { bands: 7 } }), { seed: 1 })).rejects.toThrow(
      'groupNearDuplicates.bands 7 does not divide groupNearDuplicates.numPermutations (128); choose a divisor of 128, e.g. 8',
    );
  });
});
