import { createMinHasher, estimatedJaccard, findNearDuplicates, shingleHashes } from '../../../activities/data/minhash';
import { NearDedupSchema } from '../../../pipelines/stage-types';

const defaults = NearDedupSchema.parse({});

describe('shingleHashes', () => {
  it('makes one shingle per window of words, ignoring case and punctuation', () => {
    expect(shingleHashes('a b c d e f', 5)).toHaveLength(2);
    expect(shingleHashes('Hello, World!', 2)).toEqual(shingleHashes('hello world', 2));
    expect(shingleHashes('a b', 5)).toHaveLength(1);
    expect(shingleHashes(' ,.; ', 5)).toHaveLength(0);
  });

  it('depends on word order within a shingle and drops repeated shingles', () => {
    expect(shingleHashes('a b', 2)).not.toEqual(shingleHashes('b a', 2));
    expect(shingleHashes('x y x y x y', 2)).toHaveLength(2);
  });
});

describe('MinHash signatures', () => {
  it('estimate Jaccard similarity', () => {
    const minHash = createMinHasher(256);
    const range = (from: number, to: number) => Uint32Array.from({ length: to - from }, (_, i) => from + i);
    // |A ∩ B| = 500, |A ∪ B| = 1500
    const estimate = estimatedJaccard(minHash(range(0, 1000)), minHash(range(500, 1500)));
    expect(Math.abs(estimate - 1 / 3)).toBeLessThan(0.1);
    expect(estimatedJaccard(minHash(range(0, 1000)), minHash(range(0, 1000)))).toBe(1);
  });
});

describe('findNearDuplicates', () => {
  const words = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `word${from + i}`).join(' ');
  // Single-word shingles make the similarities exact: J(A,B) = J(B,C) = 75/125 = 0.6, J(A,C) = 50/150 ≈ 0.33.
  const options = NearDedupSchema.parse({ shingleSize: 1, threshold: 0.45, numPermutations: 256, bands: 64 });
  const a = words(0, 100);
  const b = words(25, 125);
  const c = words(50, 150);

  it('clusters transitively and represents each cluster by its first text', async () => {
    const texts = [words(1000, 1100), a, 'x', b, c];
    const { representative, similarPairs } = await findNearDuplicates(texts, options);
    expect([...representative]).toEqual([0, 1, 2, 1, 1]);
    // A–B and B–C are similar; A–C is not (it joins only through B).
    expect(similarPairs).toBe(2);
  });

  it('leaves texts without words alone', async () => {
    expect([...(await findNearDuplicates(['', '...', ''], defaults)).representative]).toEqual([0, 1, 2]);
  });
});
