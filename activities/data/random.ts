import { fmix32, fnv1a32 } from './hash';

// Every random choice in the data stages comes from here — never Math.random — so a seed fixes
// the output (ARCHITECTURE.md, invariant 8). Streams are derived per purpose with `seedFrom(seed, salt)`,
// which keeps one record's randomness independent of how many other records there are.

/** A seeded pseudo-random stream. */
export interface Random {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/** sfc32 (Small Fast Counting, PractRand-clean) seeded through splitmix32. */
export function createRandom(seed: number): Random {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) | 0;
    return fmix32(s);
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const nextUint32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Warm-up: the first outputs of sfc32 are correlated with the seed words.
  for (let i = 0; i < 12; i++) nextUint32();
  const next = (): number => nextUint32() / 4294967296;
  return { next, int: (n) => Math.floor(next() * n) };
}

/** Derives an independent 32-bit seed for one purpose (`salt`) from a run seed (any finite number). */
export function seedFrom(seed: number, salt: string): number {
  // Seeds may exceed 32 bits (up to 2^53): fold the high word in rather than dropping it.
  const low = seed >>> 0;
  const high = Math.floor(seed / 4294967296) >>> 0;
  return fmix32(fnv1a32(salt, fmix32(low ^ fmix32(high + 0x6a09e667))));
}

/** Shuffles in place (Fisher–Yates) and returns the array. */
export function shuffleInPlace<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}
