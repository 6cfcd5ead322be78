import type { DataRecord } from '../data';
import type { Example } from '../ml/batches';
import type { BpeTokenizer } from '../ml/tokenizer';
import { createRandom, seedFrom } from '../data';

// From dataset records to tokenized training examples.

/** At most `max` records, a seeded sample that keeps input order. */
export function sample<T>(records: T[], max: number | undefined, seed: number, salt: string): T[] {
  if (max === undefined || records.length <= max) return records;
  const random = createRandom(seedFrom(seed, salt));
  const keyed = records.map((r, i) => ({ r, i, k: random.next() }));
  return keyed.sort((a, b) => a.k - b.k).slice(0, max).sort((a, b) => a.i - b.i).map((x) => x.r);
}

/**
 * Language-model examples: each text's tokens (bos + text + eos) cut into windows of
 * `context + 1` tokens (inputs and shifted targets), so long texts train on all their tokens.
 */
export function lmExamples(records: DataRecord[], tokenizer: BpeTokenizer, context: number): Example[] {
  const examples: Example[] = [];
  for (const record of records) {
    const tokens = [tokenizer.bosId, ...tokenizer.encode(record.text), tokenizer.eosId];
    for (let start = 0; start + 8 <= tokens.length; start += context) examples.push({ tokens: tokens.slice(start, start + context + 1) });
  }
  return examples;
}

/** Classification examples: the first `context` tokens of each text and its label's index. */
export function classifyExamples(records: DataRecord[], tokenizer: BpeTokenizer, context: number, labels: string[], split: string): Example[] {
  const index = new Map(labels.map((l, i) => [l, i]));
  return records.map((record) => {
    const label = record.label === undefined ? undefined : index.get(record.label);
    if (label === undefined) {
      throw Object.assign(
        new Error(
          record.label === undefined
            ? `record "${record.id}" in the ${split} split has no label; a classify objective needs labels (collect's labelFromPath or labelField)`
            : `record "${record.id}" in the ${split} split has label "${record.label}", which the training split does not have (labels: ${labels.join(', ')})`,
        ),
        { nonRetryable: true },
      );
    }
    return { tokens: [tokenizer.bosId, ...tokenizer.encode(record.text)].slice(0, context), label };
  });
}

/** The sorted distinct labels of a dataset; a classify objective needs at least two. */
export function labelsOf(records: DataRecord[], stage: string): string[] {
  const labels = [...new Set(records.map((r) => r.label).filter((l): l is string => l !== undefined))].sort();
  if (labels.length < 2) {
    throw Object.assign(
      new Error(`stage "${stage}": a classify objective needs at least two labels in the train split, found ${labels.length === 0 ? 'none' : `only "${labels[0]}"`}; label records in collect (labelFromPath or labelField)`),
      { nonRetryable: true },
    );
  }
  return labels;
}
