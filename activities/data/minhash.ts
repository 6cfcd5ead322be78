import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { NearDedupOptions } from '../../pipelines/stage-types';
import { InvalidOptionError } from './errors';
import { fmix32 } from './hash';
import { createRandom, seedFrom } from './random';

// Bound once at module level: inside vm contexts (jest, sandboxes) every lookup of a global such as
// `Math` goes through an interceptor, which made the hashing loops ~50x slower there.
const imul = Math.imul;

// Near-duplicate detection (Broder's MinHash + LSH banding):
// 1. each text becomes the set of hashes of its word `shingleSize`-grams (lowercased, letters/digits);
// 2. its signature keeps, for each of `numPermutations` hash permutations, the minimum over the set —
//    two signatures agree at a position with probability equal to the sets' Jaccard similarity;
// 3. signatures are cut into `bands` bands; texts sharing any band bucket become candidate pairs;
// 4. candidates whose estimated Jaccard (fraction of agreeing positions) reaches `threshold` are
//    joined with union-find, so clusters are transitive and each is represented by its first text.
// All arithmetic is 32-bit (Math.imul), which is what keeps ~6k mails to a few seconds.

/** How far a long data step has got, reported whenever it gives the event loop a turn. */
export interface DataProgress {
  /** What is being computed, e.g. `near-duplicate signatures`. */
  phase: string;
  /** Items of this phase done so far. */
  done: number;
  /** Items in this phase. */
  total: number;
}

/** Receives progress of a long data step; called at most every TURN_INTERVAL_MS, and once per phase at its end. */
export type ProgressListener = (progress: DataProgress) => void;

/** Longest a data step holds the event loop: well under the stage runner's heartbeat interval (≥ 1 s). */
const TURN_INTERVAL_MS = 50;

/**
 * Paces a long synchronous loop: `due()` (a clock read, cheap enough per item) says when
 * TURN_INTERVAL_MS have passed since the last turn, and `turn()` reports progress and lets the
 * event loop run, so timers such as the stage runner's heartbeat fire while the loop computes
 * (ARCHITECTURE.md, invariant 5). Time-based, so fast inputs pay nothing. A turn never changes a result: the
 * loops keep their state local.
 */
export class Pacer {
  private last = performance.now();

  constructor(private readonly onProgress?: ProgressListener) {}

  /** Whether the loop has held the event loop long enough to owe it a turn. */
  due(): boolean {
    return performance.now() - this.last >= TURN_INTERVAL_MS;
  }

  /** Reports progress, then yields to the event loop (timers and I/O run before this resolves). */
  async turn(phase: string, done: number, total: number): Promise<void> {
    this.onProgress?.({ phase, done, total });
    await nextTurn();
    this.last = performance.now();
  }

  /** Reports a finished phase, so every phase's reports end at done = total. */
  finish(phase: string, total: number): void {
    this.onProgress?.({ phase, done: total, total });
  }
}

/** Near-duplicate clusters over a list of texts. */
export interface NearDuplicateClusters {
  /** For each text, the index of the first text of its cluster (its own index when it has no near-duplicate). */
  representative: Int32Array;
  /** Pairs that shared an LSH bucket and were compared. */
  candidatePairs: number;
  /** Compared pairs at or above the threshold. */
  similarPairs: number;
}

// Fixed, not the run seed: which texts count as near-duplicates is a property of the data, and
// clean takes no seed.
const PERMUTATION_SEED = seedFrom(0, 'minhash-permutations');
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Word classes of BMP code units beyond ASCII, filled on first use: 1 word, 2 not a word. */
const unicodeClass = new Uint8Array(0x10000);
const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;

function isWordChar(code: number): boolean {
  if (code < 0x80) {
    return (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a);
  }
  // Surrogate halves belong to astral letters, ideographs and emoji: treat them as word characters.
  if (code >= 0xd800 && code <= 0xdfff) return true;
  let cls = unicodeClass[code];
  if (cls === 0) {
    cls = WORD_CHAR.test(String.fromCharCode(code)) ? 1 : 2;
    unicodeClass[code] = cls;
  }
  return cls === 1;
}

/** The distinct hashes of a text's word shingles, ascending; a text shorter than a shingle is one shingle. */
export function shingleHashes(text: string, shingleSize: number): Uint32Array {
  const lower = text.toLowerCase();
  const words: number[] = [];
  let h = FNV_OFFSET;
  let inWord = false;
  for (let i = 0; i < lower.length; i++) {
    const c = lower.charCodeAt(i);
    if (isWordChar(c)) {
      h = imul(h ^ c, FNV_PRIME);
      inWord = true;
    } else if (inWord) {
      words.push(h >>> 0);
      h = FNV_OFFSET;
      inWord = false;
    }
  }
  if (inWord) words.push(h >>> 0);
  if (words.length === 0) return new Uint32Array(0);

  const width = Math.min(shingleSize, words.length);
  const shingles = new Uint32Array(words.length - width + 1);
  for (let s = 0; s < shingles.length; s++) {
    let x = width;
    for (let j = 0; j < width; j++) {
      // Multiply-rotate per word makes the hash depend on word order, not just the word set.
      x = imul(x ^ words[s + j], 0x9e3779b1);
      x = (x << 15) | (x >>> 17);
    }
    shingles[s] = fmix32(x);
  }
  shingles.sort();
  let unique = 0;
  for (let s = 0; s < shingles.length; s++) {
    if (s === 0 || shingles[s] !== shingles[s - 1]) shingles[unique++] = shingles[s];
  }
  return shingles.subarray(0, unique);
}

/** Fraction of positions at which two signatures agree: an unbiased estimate of Jaccard similarity. */
export function estimatedJaccard(a: Uint32Array, b: Uint32Array): number {
  let same = 0;
  for (let p = 0; p < a.length; p++) if (a[p] === b[p]) same++;
  return same / a.length;
}

/** Computes MinHash signatures of `numPermutations` positions. */
export function createMinHasher(numPermutations: number): (shingles: Uint32Array) => Uint32Array {
  // Permutation p maps shingle hash x to fmix32(a_p·x + b_p) mod 2^32 with a_p odd: the affine step is
  // a bijection with seeded coefficients (universal hashing), the finalizer gives it good high and
  // low bits, and bijectivity means distinct shingles never collide within one permutation.
  const random = createRandom(PERMUTATION_SEED);
  const a = new Int32Array(numPermutations);
  const b = new Int32Array(numPermutations);
  for (let p = 0; p < numPermutations; p++) {
    a[p] = (Math.floor(random.next() * 4294967296) | 1) | 0;
    b[p] = Math.floor(random.next() * 4294967296) | 0;
  }
  return (shingles) => {
    const signature = new Uint32Array(numPermutations).fill(0xffffffff);
    for (let s = 0; s < shingles.length; s++) {
      const x = shingles[s];
      for (let p = 0; p < numPermutations; p++) {
        let h = (imul(a[p], x) + b[p]) | 0;
        h ^= h >>> 16;
        h = imul(h, 0x85ebca6b);
        h ^= h >>> 13;
        h = imul(h, 0xc2b2ae35);
        h ^= h >>> 16;
        const u = h >>> 0;
        if (u < signature[p]) signature[p] = u;
      }
    }
    return signature;
  };
}

/** Throws unless `bands` divides `numPermutations`; `option` names the options in the message. */
export function validateNearDedup(options: NearDedupOptions, option: string): void {
  if (options.numPermutations % options.bands !== 0) {
    const divisors: number[] = [];
    for (let d = 1; d <= options.numPermutations; d++) if (options.numPermutations % d === 0) divisors.push(d);
    const nearest = divisors.reduce((best, d) => (Math.abs(d - options.bands) < Math.abs(best - options.bands) ? d : best));
    throw new InvalidOptionError(
      `${option}.bands`,
      options.bands,
      `does not divide ${option}.numPermutations (${options.numPermutations})`,
      `choose a divisor of ${options.numPermutations}, e.g. ${nearest}`,
    );
  }
}

const SIGNATURES = 'near-duplicate signatures';
const CANDIDATES = 'near-duplicate candidates';

/**
 * Clusters near-duplicate texts; `option` names the options in error messages (default `nearDedup`).
 * Gives the event loop turns through `pacer` (phases `near-duplicate signatures`, then
 * `near-duplicate candidates`); default: a pacer of its own that reports nothing.
 */
export async function findNearDuplicates(
  texts: readonly string[],
  options: NearDedupOptions,
  option = 'nearDedup',
  pacer = new Pacer(),
): Promise<NearDuplicateClusters> {
  validateNearDedup(options, option);
  const { numPermutations, bands, threshold, shingleSize } = options;
  const rows = numPermutations / bands;
  const minHash = createMinHasher(numPermutations);
  const signatures: Array<Uint32Array | undefined> = [];
  for (let i = 0; i < texts.length; i++) {
    if (pacer.due()) await pacer.turn(SIGNATURES, i, texts.length);
    const shingles = shingleHashes(texts[i], shingleSize);
    // A text without words has no shingles and nothing to be similar by.
    signatures.push(shingles.length === 0 ? undefined : minHash(shingles));
  }
  pacer.finish(SIGNATURES, texts.length);

  const parent = new Int32Array(texts.length);
  for (let i = 0; i < parent.length; i++) parent[i] = i;
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };

  // One map for all bands; the band index is mixed into the key. Two independent 32-bit hashes
  // make a 53-bit key, so unrelated bands practically never share a bucket (and if they do, the
  // Jaccard check still rejects the pair).
  const buckets = new Map<number, number[]>();
  let candidatePairs = 0;
  let similarPairs = 0;
  for (let i = 0; i < texts.length; i++) {
    if (pacer.due()) await pacer.turn(CANDIDATES, i, texts.length);
    const signature = signatures[i];
    if (!signature) continue;
    for (let band = 0; band < bands; band++) {
      let h1 = imul(band + 1, 0x9e3779b1);
      let h2 = imul(band + 1, 0x85ebca77) ^ 0x27d4eb2f;
      for (let r = band * rows; r < (band + 1) * rows; r++) {
        h1 = imul(h1 ^ signature[r], FNV_PRIME);
        h2 = (imul((h2 << 13) | (h2 >>> 19), 5) + 0xe6546b64 + signature[r]) | 0;
      }
      const key = (fmix32(h1) >>> 11) * 4294967296 + fmix32(h2);
      const members = buckets.get(key);
      if (!members) {
        buckets.set(key, [i]);
        continue;
      }
      for (const j of members) {
        if (find(i) === find(j)) continue;
        candidatePairs++;
        if (estimatedJaccard(signature, signatures[j]!) >= threshold) {
          similarPairs++;
          const ri = find(i);
          const rj = find(j);
          // The smaller index becomes the root, so a cluster's root is its first text.
          if (ri < rj) parent[rj] = ri;
          else parent[ri] = rj;
        }
      }
      members.push(i);
    }
  }
  pacer.finish(CANDIDATES, texts.length);

  const representative = new Int32Array(texts.length);
  for (let i = 0; i < texts.length; i++) representative[i] = find(i);
  return { representative, candidatePairs, similarPairs };
}
