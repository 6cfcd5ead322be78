import { augmentRecords } from '../../../activities/data/augment';
import { TranslatorOutputError, UnknownTranslatorError } from '../../../activities/data/errors';
import type { DataRecord } from '../../../activities/data/record';
import { synonymsFromTable } from '../../../activities/data/synonym-source';
import type { Translator } from '../../../activities/data/translator';
import { AugmentOptionsSchema } from '../../../pipelines/stage-types';

const synonyms = synonymsFromTable({ quick: ['fast', 'speedy'], dog: ['hound'], happy: ['glad'], day: ['daytime'] });
/** Only the named operations on (schema defaults are all non-zero). */
const ops = (raw: Record<string, unknown>) =>
  AugmentOptionsSchema.parse({ synonymReplacement: 0, randomInsertion: 0, randomSwap: 0, randomDeletion: 0, ...raw });
const augmentOne = async (text: string, raw: Record<string, unknown>, seed = 1) => {
  const { records, metrics } = await augmentRecords([{ id: 'r', text }], ops(raw), { seed, synonyms });
  return { text: records[1].text, metrics };
};

describe('augmentRecords', () => {
  it('keeps each original and follows it with `factor` labeled copies that point back to it', async () => {
    const input: DataRecord[] = [
      { id: 'a', text: 'the quick dog', label: 'x', meta: { source: 's.txt' } },
      { id: 'b', text: 'a happy day', label: 'y' },
    ];
    const { records, metrics } = await augmentRecords(input, AugmentOptionsSchema.parse({ factor: 2 }), { seed: 1, synonyms });
    expect(records.map((r) => r.id)).toEqual(['a', 'a#aug1', 'a#aug2', 'b', 'b#aug1', 'b#aug2']);
    expect(records[0]).toBe(input[0]);
    expect(records[3]).toBe(input[1]);
    expect(records[1]).toMatchObject({ label: 'x', meta: { source: 's.txt', augmentedFrom: 'a' } });
    expect(records[5]).toMatchObject({ label: 'y', meta: { augmentedFrom: 'b' } });
    expect(metrics).toMatchObject({ input: 2, output: 6, copies: 4, backTranslated: 0 });
  });

  it('replaces words with synonyms, keeping punctuation and capitalisation', async () => {
    const { text, metrics } = await augmentOne('Quick dog, happy! HAPPY cat', { synonymReplacement: 1 });
    expect(text).toMatch(/^(Fast|Speedy) hound, glad! GLAD cat$/);
    expect(metrics.operations).toEqual({ synonymReplacements: 4, insertions: 0, swaps: 0, deletions: 0 });
  });

  it('inserts synonyms of words already present', async () => {
    // 4 words × 0.25 = 1 insertion; only "quick" has synonyms.
    const { text, metrics } = await augmentOne('quick brown fox jumps', { randomInsertion: 0.25 });
    const words = text.split(' ');
    expect(words).toHaveLength(5);
    const inserted = words.findIndex((w) => w === 'fast' || w === 'speedy');
    expect(inserted).not.toBe(-1);
    expect(words.filter((_, i) => i !== inserted)).toEqual(['quick', 'brown', 'fox', 'jumps']);
    expect(metrics.operations.insertions).toBe(1);
  });

  it('swaps words but leaves line breaks where they were', async () => {
    const { text, metrics } = await augmentOne('one two\n\nthree four', { randomSwap: 0.5 });
    expect(text).toMatch(/^\S+ \S+\n\n\S+ \S+$/);
    expect(text.split(/\s+/).sort()).toEqual(['four', 'one', 'three', 'two']);
    expect(metrics.operations.swaps).toBe(2);
  });

  it('deletes words but never all of them', async () => {
    const { text, metrics } = await augmentOne('alpha beta gamma delta', { randomDeletion: 1 });
    expect(['alpha', 'beta', 'gamma', 'delta']).toContain(text);
    expect(metrics.operations.deletions).toBe(3);
    expect((await augmentOne('single', { randomDeletion: 1 })).text).toBe('single');
  });

  it('is seeded per record: same seed same copies, other seed other copies, neighbours irrelevant', async () => {
    const text = Array.from({ length: 40 }, (_, i) => ['quick', 'dog', 'happy', 'day', 'and'][i % 5]).join(' ');
    const options = AugmentOptionsSchema.parse({ factor: 3, synonymReplacement: 0.3, randomSwap: 0.2, randomDeletion: 0.1 });
    const run = async (records: DataRecord[], seed: number) => (await augmentRecords(records, options, { seed, synonyms })).records;
    const target = { id: 't', text };
    const alone = await run([target], 5);
    expect(await run([target], 5)).toEqual(alone);
    expect((await run([target], 6)).map((r) => r.text)).not.toEqual(alone.map((r) => r.text));
    const withNeighbour = await run([{ id: 'other', text: 'quick quick quick' }, target], 5);
    expect(withNeighbour.slice(4)).toEqual(alone);
  });

  it('back-translates once per record through the pivot language', async () => {
    const calls: Array<[string, string, number]> = [];
    const tagging: Translator = {
      async translate(texts, from, to) {
        calls.push([from, to, texts.length]);
        return to === 'de' ? texts.map((t) => `[de] ${t}`) : texts.map((t) => `${t.replace('[de] ', '')} (back)`);
      },
    };
    const input = [
      { id: 'a', text: 'first' },
      { id: 'b', text: 'second' },
    ];
    const { records, metrics } = await augmentRecords(input, ops({ factor: 2, backTranslation: { translator: 'tagging' } }), {
      seed: 1,
      synonyms,
      translators: { tagging },
    });
    expect(records.map((r) => r.text)).toEqual(['first', 'first (back)', 'first (back)', 'second', 'second (back)', 'second (back)']);
    expect(calls).toEqual([
      ['en', 'de', 2],
      ['de', 'en', 2],
    ]);
    expect(metrics.backTranslated).toBe(2);
  });

  it('has a built-in identity translator', async () => {
    const { records, metrics } = await augmentRecords([{ id: 'a', text: 'same text' }], ops({ backTranslation: { translator: 'identity' } }), {
      seed: 1,
      synonyms,
    });
    expect(records.map((r) => r.text)).toEqual(['same text', 'same text']);
    expect(metrics).toMatchObject({ unchanged: 1, backTranslated: 1 });
  });

  it('rejects an unknown translator, listing the registered ones', async () => {
    const noop: Translator = { translate: async (texts) => texts };
    const attempt = augmentRecords([{ id: 'a', text: 'x' }], ops({ backTranslation: { translator: 'deepl' } }), {
      seed: 1,
      synonyms,
      translators: { marian: noop },
    });
    await expect(attempt).rejects.toThrow(UnknownTranslatorError);
    await expect(attempt).rejects.toThrow(
      'augment backTranslation.translator "deepl" is not registered; use one of "identity", "marian" or register it with the worker',
    );
    await expect(attempt).rejects.toMatchObject({ nonRetryable: true });
  });

  it('rejects a translator that returns the wrong number of texts', async () => {
    const lossy: Translator = { translate: async (texts) => texts.slice(1) };
    await expect(
      augmentRecords([{ id: 'a', text: 'x' }, { id: 'b', text: 'y' }], ops({ backTranslation: { translator: 'lossy' } }), {
        seed: 1,
        synonyms,
        translators: { lossy },
      }),
    ).rejects.toThrow(TranslatorOutputError);
  });

  it('returns the input unchanged when factor is 0', async () => {
    const input = [{ id: 'a', text: 'quick dog' }];
    const { records, metrics } = await augmentRecords(input, AugmentOptionsSchema.parse({ factor: 0 }), { seed: 1, synonyms });
    expect(records).toEqual(input);
    expect(metrics).toMatchObject({ input: 1, output: 1, copies: 0 });
  });
});
