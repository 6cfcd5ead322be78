import { augmentRecords } from '../../../activities/data/augment';
import { cleanRecords } from '../../../activities/data/clean';
import type { DataProgress } from '../../../activities/data/minhash';
import { createRandom } from '../../../activities/data/random';
import type { DataRecord } from '../../../activities/data/record';
import { splitRecords } from '../../../activities/data/split';
import { synonymsFromTable } from '../../../activities/data/synonym-source';
import { AugmentOptionsSchema, CleanOptionsSchema, SplitOptionsSchema } from '../../../pipelines/stage-types';

// The stage runner heartbeats from a setInterval timer (ARCHITECTURE.md, invariant 5), which fires only when
// the event loop gets a turn. These tests run a 10 ms ticker during data steps long enough to span
// many turns and check it kept ticking — a step that held the event loop throughout would leave it
// at 0. Counts are lower bounds only: a slow machine gives more turns, never fewer.

const RECORDS = 10_000;
/** Turns come every ~50 ms; a step of ≥ 0.5 s gives ~10, so 3 leaves room for a busy machine. */
const MIN_TICKS = 3;

/** `count` labeled records of 60 words from a 3,000-word vocabulary; every 10th is its predecessor with one word changed. */
function corpus(count: number): DataRecord[] {
  const random = createRandom(42);
  const records: DataRecord[] = [];
  for (let i = 0; i < count; i++) {
    let words = Array.from({ length: 60 }, () => `w${random.int(3000)}`);
    if (i % 10 === 9) {
      words = records[i - 1].text.split(' ');
      words[30] = 'changed';
    }
    records.push({ id: `r${i}`, text: words.join('  '), label: random.int(3) === 0 ? 'spam' : 'ham' });
  }
  return records;
}

/** Runs `work` with a 10 ms ticker; returns its result and how often the ticker fired meanwhile. */
async function ticking<T>(work: () => Promise<T>): Promise<{ result: T; ticks: number }> {
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  try {
    const result = await work();
    return { result, ticks };
  } finally {
    clearInterval(ticker);
  }
}

/** Checks each phase's reports: in the given order, `done` never decreasing, each ending at done = total. */
function expectOrderlyProgress(reports: DataProgress[], phases: string[]): void {
  expect([...new Set(reports.map((r) => r.phase))]).toEqual(phases);
  for (const phase of phases) {
    const ofPhase = reports.filter((r) => r.phase === phase);
    for (let k = 1; k < ofPhase.length; k++) expect(ofPhase[k].done).toBeGreaterThanOrEqual(ofPhase[k - 1].done);
    const last = ofPhase[ofPhase.length - 1];
    expect(last.done).toBe(last.total);
    for (const r of ofPhase) expect(r.total).toBe(last.total);
  }
  // Beyond the end-of-phase reports, the step reported while under way.
  expect(reports.some((r) => r.done < r.total)).toBe(true);
}

describe('long data steps give the event loop turns', () => {
  const records = corpus(RECORDS);

  it('cleanRecords: timers fire during a long clean, progress is reported, the result is unchanged', async () => {
    const options = CleanOptionsSchema.parse({});
    const reports: DataProgress[] = [];
    const { result, ticks } = await ticking(() => cleanRecords(records, options, { onProgress: (p) => reports.push(p) }));
    expect(ticks).toBeGreaterThanOrEqual(MIN_TICKS);
    expect(result.metrics.removed.nearDuplicate).toBeGreaterThan(RECORDS / 20); // most near-copies found
    expectOrderlyProgress(reports, ['cleaning records', 'near-duplicate signatures', 'near-duplicate candidates']);
    expect(reports[reports.length - 1]).toEqual({ phase: 'near-duplicate candidates', done: RECORDS, total: RECORDS });

    // Two runs interleaved at their turns, and a run of its own, all give the same output.
    const [a, b] = await Promise.all([cleanRecords(records, options), cleanRecords(records, options)]);
    expect(a).toEqual(result);
    expect(b).toEqual(result);
  });

  it('splitRecords: timers fire during a long near-duplicate-grouping split, the result is unchanged', async () => {
    const options = SplitOptionsSchema.parse({});
    const reports: DataProgress[] = [];
    const { result, ticks } = await ticking(() => splitRecords(records, options, { seed: 5, onProgress: (p) => reports.push(p) }));
    expect(ticks).toBeGreaterThanOrEqual(MIN_TICKS);
    expect(result.metrics.groups).toBeGreaterThan(RECORDS / 20);
    expectOrderlyProgress(reports, ['near-duplicate signatures', 'near-duplicate candidates', 'grouping', 'assigning', 'distributing']);

    const [a, b] = await Promise.all([splitRecords(records, options, { seed: 5 }), splitRecords(records, options, { seed: 5 })]);
    expect(a).toEqual(result);
    expect(b).toEqual(result);
  });

  it('augmentRecords: timers fire during a long augment, progress is reported, the copies are unchanged', async () => {
    const input = records.slice(0, RECORDS / 2);
    const synonyms = synonymsFromTable(Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`w${i}`, [`s${i}`]])));
    const options = AugmentOptionsSchema.parse({ factor: 2, backTranslation: { translator: 'identity' } });
    const reports: DataProgress[] = [];
    const { result, ticks } = await ticking(() => augmentRecords(input, options, { seed: 3, synonyms, onProgress: (p) => reports.push(p) }));
    expect(ticks).toBeGreaterThanOrEqual(MIN_TICKS);
    expect(result.metrics.copies).toBe(2 * input.length);
    expectOrderlyProgress(reports, ['back-translating', 'augmenting']);

    expect(await augmentRecords(input, options, { seed: 3, synonyms })).toEqual(result);
  });
});
