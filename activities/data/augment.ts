import type { AugmentOptions } from '../../pipelines/stage-types';
import { TranslatorOutputError } from './errors';
import { Pacer, type ProgressListener } from './minhash';
import { createRandom, seedFrom, shuffleInPlace, type Random } from './random';
import type { DataRecord } from './record';
import type { SynonymSource } from './synonym-source';
import { resolveTranslator, type Translator } from './translator';

// No-leakage rule: augment only the TRAIN split, after splitting. A copy is a near-duplicate of its
// original; if copies were made before the split (or of validation/test records), a copy of a
// training record could land in validation or test and evaluation would score memorised text.
// augmentRecords therefore takes one split's records and never sees the others.

/** Language of the corpus, the side back-translation returns to (WordNet is English). */
const SOURCE_LANGUAGE = 'en';
/** Texts per translate() call: bounds request size for remote translators. */
const TRANSLATION_BATCH = 64;

/** What augmentRecords needs besides its options. */
export interface AugmentContext {
  /** Run seed; each copy draws from (seed, record id, copy number) only. */
  seed: number;
  synonyms: SynonymSource;
  /** Translators by name, in addition to the built-in `identity`. */
  translators?: Readonly<Record<string, Translator>>;
  /** Called as the work advances (phases `back-translating`, then `augmenting`); default none. */
  onProgress?: ProgressListener;
}

/** Word-level edits made, summed over all copies. */
export interface AugmentOperations {
  synonymReplacements: number;
  insertions: number;
  swaps: number;
  deletions: number;
}

/** What augment did. (A type alias so it is assignable to the stage `Metrics` record.) */
export type AugmentMetrics = {
  input: number;
  output: number;
  /** Augmented copies added. */
  copies: number;
  /** Copies whose text came out identical to the original (e.g. no word had a synonym). */
  unchanged: number;
  /** Records sent through back-translation (once per record, shared by its copies). */
  backTranslated: number;
  operations: AugmentOperations;
};

/** A word and the whitespace after it: edits move words, layout (newlines, paragraphs) stays. */
interface Token {
  word: string;
  space: string;
}

const WORD_PARTS = /^([^\p{L}\p{N}]*)([\p{L}\p{N}](?:[\p{L}\p{N}'-]*[\p{L}\p{N}])?)([^\p{L}\p{N}]*)$/u;

/**
 * EDA (Wei & Zou, 2019) for the training split: each record is kept and followed by `factor` copies
 * with ids `<id>#aug<k>` (k = 1..factor) and `meta.augmentedFrom`, labels preserved. A copy starts
 * from the record's back-translation (when configured; one round trip per record through the pivot
 * language), then gets synonym replacement, random insertion, random swap and random deletion, in
 * that order. Replacement/insertion/swap edit max(1, round(rate × words)) words when their rate is
 * above 0; deletion drops each word with its probability but never every word.
 * Gives the event loop a turn every few tens of milliseconds, so the stage's heartbeats keep going.
 */
export async function augmentRecords(
  records: readonly DataRecord[],
  options: AugmentOptions,
  ctx: AugmentContext,
): Promise<{ records: DataRecord[]; metrics: AugmentMetrics }> {
  const operations: AugmentOperations = { synonymReplacements: 0, insertions: 0, swaps: 0, deletions: 0 };
  const metrics: AugmentMetrics = {
    input: records.length,
    output: records.length,
    copies: 0,
    unchanged: 0,
    backTranslated: 0,
    operations,
  };
  if (options.factor === 0) return { records: [...records], metrics };

  const pacer = new Pacer(ctx.onProgress);
  const bases = records.map((r) => r.text);
  if (options.backTranslation) {
    const { translator: name, pivot } = options.backTranslation;
    const translator = resolveTranslator(name, ctx.translators);
    for (let start = 0; start < records.length; start += TRANSLATION_BATCH) {
      // A local translator's promises resolve as microtasks, which starve timers like a plain loop.
      if (pacer.due()) await pacer.turn('back-translating', start, records.length);
      const batch = bases.slice(start, start + TRANSLATION_BATCH);
      const there = await translateChecked(translator, name, batch, SOURCE_LANGUAGE, pivot);
      const back = await translateChecked(translator, name, there, pivot, SOURCE_LANGUAGE);
      bases.splice(start, back.length, ...back);
    }
    pacer.finish('back-translating', records.length);
    metrics.backTranslated = records.length;
  }

  const output: DataRecord[] = [];
  for (let index = 0; index < records.length; index++) {
    if (pacer.due()) await pacer.turn('augmenting', index, records.length);
    const record = records[index];
    output.push(record);
    for (let k = 1; k <= options.factor; k++) {
      const random = createRandom(seedFrom(ctx.seed, `augment\u0000${record.id}\u0000${k}`));
      const text = augmentText(bases[index], options, ctx.synonyms, random, operations);
      if (text === record.text) metrics.unchanged++;
      output.push({
        id: `${record.id}#aug${k}`,
        text,
        ...(record.label !== undefined ? { label: record.label } : {}),
        meta: { ...record.meta, augmentedFrom: record.id },
      });
      metrics.copies++;
    }
  }
  pacer.finish('augmenting', records.length);
  metrics.output = output.length;
  return { records: output, metrics };
}

async function translateChecked(
  translator: Translator,
  name: string,
  texts: string[],
  from: string,
  to: string,
): Promise<string[]> {
  const out = await translator.translate(texts, from, to);
  if (out.length !== texts.length) throw new TranslatorOutputError(name, texts.length, out.length);
  return out;
}

/** One EDA copy of `text`; adds the edits it made to `operations`. */
function augmentText(
  text: string,
  options: Pick<AugmentOptions, 'synonymReplacement' | 'randomInsertion' | 'randomSwap' | 'randomDeletion'>,
  synonyms: SynonymSource,
  random: Random,
  operations: AugmentOperations,
): string {
  const leading = /^\s*/.exec(text)![0];
  const tokens: Token[] = (text.slice(leading.length).match(/\S+\s*/g) ?? []).map((chunk) => {
    const word = /^\S+/.exec(chunk)![0];
    return { word, space: chunk.slice(word.length) };
  });
  if (tokens.length === 0) return text;
  const trailing = tokens[tokens.length - 1].space;
  const edits = (rate: number): number => (rate > 0 ? Math.max(1, Math.round(rate * tokens.length)) : 0);

  // Synonym replacement: distinct random words that have synonyms.
  const replaceable = tokens.flatMap((token, i) => {
    const choice = synonymChoice(token.word, synonyms);
    return choice ? [{ i, choice }] : [];
  });
  for (const { i, choice } of shuffleInPlace(replaceable, random).slice(0, edits(options.synonymReplacement))) {
    tokens[i].word = replaceWithSynonym(choice, random);
    operations.synonymReplacements++;
  }

  // Random insertion: a synonym of a random word, at a random position (10 tries to find a word with synonyms, as EDA).
  const insertions = edits(options.randomInsertion);
  for (let n = 0; n < insertions; n++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const choice = synonymChoice(tokens[random.int(tokens.length)].word, synonyms);
      if (!choice) continue;
      const synonym = choice.candidates[random.int(choice.candidates.length)];
      tokens.splice(random.int(tokens.length + 1), 0, { word: synonym, space: ' ' });
      operations.insertions++;
      break;
    }
  }

  // Random swap: two distinct positions exchange words; whitespace stays where it was.
  const swaps = tokens.length > 1 ? edits(options.randomSwap) : 0;
  for (let n = 0; n < swaps; n++) {
    const i = random.int(tokens.length);
    const j = (i + 1 + random.int(tokens.length - 1)) % tokens.length;
    const word = tokens[i].word;
    tokens[i].word = tokens[j].word;
    tokens[j].word = word;
    operations.swaps++;
  }

  // Random deletion: each word with probability p, but at least one word survives.
  let result = tokens;
  if (options.randomDeletion > 0 && tokens.length > 1) {
    const kept: Token[] = [];
    for (const token of tokens) {
      if (random.next() >= options.randomDeletion) {
        kept.push(token);
        continue;
      }
      // A deleted word's line break moves to the previous word, so paragraphs are not merged.
      const previous = kept[kept.length - 1];
      if (previous && token.space.includes('\n') && !previous.space.includes('\n')) previous.space = token.space;
    }
    if (kept.length === 0) kept.push(tokens[random.int(tokens.length)]);
    operations.deletions += tokens.length - kept.length;
    result = kept;
  }

  return leading + result.map((t, i) => t.word + (i === result.length - 1 ? trailing : t.space || ' ')).join('');
}

/** A word split around its letters, and the synonyms of those letters; undefined if it has none. */
interface SynonymChoice {
  prefix: string;
  core: string;
  suffix: string;
  candidates: readonly string[];
}

function synonymChoice(word: string, synonyms: SynonymSource): SynonymChoice | undefined {
  const parts = WORD_PARTS.exec(word);
  if (!parts) return undefined;
  const [, prefix, core, suffix] = parts;
  const lower = core.toLowerCase();
  const candidates = synonyms.synonyms(lower).filter((s) => s !== lower);
  return candidates.length === 0 ? undefined : { prefix, core, suffix, candidates };
}

/** A random synonym in place of the word, keeping its punctuation and capitalisation. */
function replaceWithSynonym({ prefix, core, suffix, candidates }: SynonymChoice, random: Random): string {
  let synonym = candidates[random.int(candidates.length)];
  if (core.length > 1 && core === core.toUpperCase() && core !== core.toLowerCase()) synonym = synonym.toUpperCase();
  else if (core[0] !== core[0].toLowerCase()) synonym = synonym[0].toUpperCase() + synonym.slice(1);
  return prefix + synonym + suffix;
}
