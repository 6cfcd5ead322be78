import { fmix32, fnv1a32 } from '../data/hash';

// The trainer's randomness: weight init, data order and dropout seeds all come from here (never
// Math.random), so a seed fixes a run. Unlike `data/random`, the generator's state is a plain
// array, so a checkpoint can carry it and a resumed run draws exactly what the original would have.

const imul = Math.imul;
const { log, sqrt, cos, PI } = Math;

/** sfc32's four 32-bit words. */
export type RngState = [number, number, number, number];

/** sfc32 (Small Fast Counting) with exportable state. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(state: RngState) {
    [this.a, this.b, this.c, this.d] = state;
  }

  /** A generator seeded through splitmix32 from a seed and a purpose (`salt`). */
  static fromSeed(seed: number, salt = ''): Rng {
    let s = deriveSeed(seed, salt);
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) | 0;
      return fmix32(s);
    };
    const rng = new Rng([splitmix(), splitmix(), splitmix(), splitmix()]);
    // The first outputs of sfc32 are correlated with the seed words.
    for (let i = 0; i < 12; i++) rng.nextUint32();
    return rng;
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller; one draw per call, the pair's twin is discarded for simplicity). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log(0) is never taken
    const v = this.next();
    return sqrt(-2 * log(u)) * cos(2 * PI * v);
  }

  state(): RngState {
    return [this.a | 0, this.b | 0, this.c | 0, this.d | 0];
  }
}

/** A 32-bit seed for one purpose, derived from a run seed (any finite number) and a salt. */
export function deriveSeed(seed: number, salt: string): number {
  const low = seed >>> 0;
  const high = Math.floor(seed / 4294967296) >>> 0;
  return fmix32(fnv1a32(salt, fmix32(low ^ fmix32(imul(high, 0x9e3779b1) + 0x6a09e667))));
}

/** Fisher–Yates permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}
