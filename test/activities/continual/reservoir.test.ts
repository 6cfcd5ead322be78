import { gzipSync } from 'node:zlib';
import { decodeReservoir, encodeReservoir, updateReservoir } from '../../../activities/continual/reservoir';
import type { DataRecord } from '../../../activities/data';
import { createRandom, type Random } from '../../../activities/data/random';

const cycleOf = (record: DataRecord) => Number(record.id.split(':')[0]);
const recordsOfCycle = (cycle: number, count: number): DataRecord[] => Array.from({ length: count }, (_, i) => ({ id: `${cycle}:${i}`, text: `mail ${i} of cycle ${cycle}` }));

type Update = (reservoir: readonly DataRecord[], seen: number, incoming: readonly DataRecord[], size: number, random: Random) => { records: DataRecord[]; seen: number };

/** Offers `cycles` batches of `perCycle` records, one batch per cycle, and returns the final reservoir. */
function runCycles(update: Update, cycles: number, perCycle: number, size: number, seed: number): { records: DataRecord[]; seen: number } {
  const random = createRandom(seed);
  let state = { records: [] as DataRecord[], seen: 0 };
  for (let c = 0; c < cycles; c++) state = update(state.records, state.seen, recordsOfCycle(c, perCycle), size, random);
  return state;
}

/** Largest distance of any cycle's share of the reservoir from the uniform share 1/cycles. */
function worstShareDeviation(records: readonly DataRecord[], cycles: number): number {
  const counts = new Array<number>(cycles).fill(0);
  for (const r of records) counts[cycleOf(r)]++;
  return Math.max(...counts.map((n) => Math.abs(n / records.length - 1 / cycles)));
}

// 10 cycles of 1,000 into 500: each cycle's count is ~hypergeometric with mean 50 and sd ≈ 6.5, so
// its share deviates from 0.1 by sd ≈ 0.013. Over 300 seeds the worst of the ten shares stayed
// under 0.045; a recency- or primacy-biased sampler is off by 0.5 or more.
const CYCLES = 10;
const PER_CYCLE = 1000;
const SIZE = 500;
const SHARE_TOLERANCE = 0.05;

describe('updateReservoir', () => {
  test('never holds more than size records, nor a record twice, across many uneven cycles', () => {
    const random = createRandom(3);
    const offered = new Set<string>();
    let state = { records: [] as DataRecord[], seen: 0 };
    const sizes = [0, 1, 7, 90, 3, 0, 250, 2000, 1, 64, 999, 5];
    sizes.forEach((count, c) => {
      const incoming = recordsOfCycle(c, count);
      for (const r of incoming) offered.add(r.id);
      state = updateReservoir(state.records, state.seen, incoming, 100, random);
      expect(state.records.length).toBe(Math.min(100, offered.size));
      expect(new Set(state.records.map((r) => r.id)).size).toBe(state.records.length);
      for (const r of state.records) expect(offered.has(r.id)).toBe(true);
    });
  });

  test('keeps every record, in order, until the reservoir first fills', () => {
    const random = createRandom(5);
    const first = updateReservoir([], 0, recordsOfCycle(0, 60), 100, random);
    expect(first.records.map((r) => r.id)).toEqual(recordsOfCycle(0, 60).map((r) => r.id));
    const filled = updateReservoir(first.records, first.seen, recordsOfCycle(1, 40), 100, random);
    expect(filled.records.map((r) => r.id)).toEqual([...recordsOfCycle(0, 60), ...recordsOfCycle(1, 40)].map((r) => r.id));
  });

  test('counts every record offered in seen, kept or not', () => {
    const random = createRandom(9);
    const once = updateReservoir([], 0, recordsOfCycle(0, 30), 10, random);
    expect(once.seen).toBe(30);
    const twice = updateReservoir(once.records, once.seen, recordsOfCycle(1, 45), 10, random);
    expect(twice.seen).toBe(75);
    expect(updateReservoir(twice.records, twice.seen, [], 10, random).seen).toBe(75);
  });

  test.each([42, 7, 20260101])('keeps each of 10 cycles in equal share (seed %d)', (seed) => {
    const { records, seen } = runCycles(updateReservoir, CYCLES, PER_CYCLE, SIZE, seed);
    expect(records).toHaveLength(SIZE);
    expect(seen).toBe(CYCLES * PER_CYCLE);
    expect(worstShareDeviation(records, CYCLES)).toBeLessThanOrEqual(SHARE_TOLERANCE);
  });

  test('the equal-share check rejects biased samplers', () => {
    const keepLatest: Update = (reservoir, seen, incoming, size) => ({ records: [...reservoir, ...incoming].slice(-size), seen: seen + incoming.length });
    const keepFirst: Update = (reservoir, seen, incoming, size) => ({ records: [...reservoir, ...incoming].slice(0, size), seen: seen + incoming.length });
    // A caller that forgets the running count restarts algorithm R each cycle: recent cycles dominate.
    const seenReset: Update = (reservoir, _seen, incoming, size, random) => updateReservoir(reservoir, 0, incoming, size, random);
    for (const biased of [keepLatest, keepFirst, seenReset]) {
      expect(worstShareDeviation(runCycles(biased, CYCLES, PER_CYCLE, SIZE, 42).records, CYCLES)).toBeGreaterThan(SHARE_TOLERANCE * 4);
    }
  });

  test('cuts a reservoir written under a larger size down to a uniform sample of the new size', () => {
    const big = recordsOfCycle(0, 1000);
    const random = createRandom(11);
    const shrunk = updateReservoir(big, 4000, [], 300, random);
    expect(shrunk.records).toHaveLength(300);
    expect(shrunk.seen).toBe(4000);
    const ids = shrunk.records.map((r) => Number(r.id.split(':')[1]));
    expect(new Set(ids).size).toBe(300);
    expect(ids).toEqual([...ids].sort((a, b) => a - b)); // reservoir order kept
    // Not a prefix or suffix: both halves of the old reservoir are represented about equally.
    const firstHalf = ids.filter((i) => i < 500).length / 300;
    expect(Math.abs(firstHalf - 0.5)).toBeLessThan(0.1);

    const next = updateReservoir(shrunk.records, shrunk.seen, recordsOfCycle(1, 200), 300, random);
    expect(next.records).toHaveLength(300);
    expect(next.seen).toBe(4200);
  });

  test('is deterministic for a seed and differs across seeds', () => {
    const ids = (seed: number) => runCycles(updateReservoir, 4, 300, 100, seed).records.map((r) => r.id);
    expect(ids(1)).toEqual(ids(1));
    expect(ids(1)).not.toEqual(ids(2));
  });
});

describe('encodeReservoir / decodeReservoir', () => {
  const records: DataRecord[] = [
    { id: 'a', text: 'first line\nsecond line', label: 'spam', meta: { source: 'inbox/spam-1/a.txt', replayedFrom: 'reservoir' } },
    { id: 'b', text: 'Grüße — ünïcödé 🎉', label: 'ham' },
    { id: 'c', text: '' },
  ];

  test('round-trips records through gzip JSONL', () => {
    const encoded = encodeReservoir(records);
    expect(encoded.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // the gzip magic number
    expect(decodeReservoir(encoded, 'mem://r')).toEqual(records);
  });

  test('round-trips an empty reservoir', () => {
    expect(decodeReservoir(encodeReservoir([]), 'mem://empty')).toEqual([]);
  });

  test('rejects bytes that are not gzip, non-retryably, naming where they came from', () => {
    const read = () => decodeReservoir(Buffer.from('{"id":"a","text":"plain"}\n'), 's3://bucket/state/reservoir.jsonl.gz');
    expect(read).toThrow(/replay reservoir s3:\/\/bucket\/state\/reservoir\.jsonl\.gz is not gzip data/);
    expect(() => read()).toThrow(expect.objectContaining({ nonRetryable: true }));
  });

  test('rejects a line that is not JSON, non-retryably, naming where and which line', () => {
    const data = gzipSync(Buffer.from('{"id":"a","text":"ok"}\n{"id":"b",', 'utf8'));
    const read = () => decodeReservoir(data, 'runs/p/r1/replay/reservoir.jsonl.gz');
    expect(read).toThrow('replay reservoir runs/p/r1/replay/reservoir.jsonl.gz: line 2 is not JSON');
    expect(() => read()).toThrow(expect.objectContaining({ nonRetryable: true }));
  });

  test('stores text records in less than half the bytes of the raw JSONL', () => {
    const words = ['offer', 'free', 'meeting', 'tomorrow', 'invoice', 'attached', 'please', 'click', 'here', 'regards', 'the', 'team'];
    const random = createRandom(1);
    const mail: DataRecord[] = Array.from({ length: 500 }, (_, i) => ({
      id: `inbox/ham-1/${i}.txt`,
      text: Array.from({ length: 80 }, () => words[random.int(words.length)]).join(' '),
      label: i % 3 === 0 ? 'spam' : 'ham',
    }));
    const raw = Buffer.byteLength(mail.map((r) => JSON.stringify(r)).join('\n'));
    expect(encodeReservoir(mail).length).toBeLessThan(raw / 2);
  });
});
