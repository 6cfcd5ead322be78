import { createRandom, seedFrom, shuffleInPlace } from '../../../activities/data/random';

describe('createRandom', () => {
  it('repeats a sequence for a seed and differs across seeds', () => {
    const draw = (seed: number) => Array.from({ length: 5 }, createRandom(seed).next);
    expect(draw(1)).toEqual(draw(1));
    expect(draw(1)).not.toEqual(draw(2));
  });

  it('draws floats in [0, 1) and integers in [0, n) roughly uniformly', () => {
    const random = createRandom(123);
    const buckets = [0, 0, 0, 0];
    for (let i = 0; i < 40_000; i++) {
      const x = random.next();
      expect(x >= 0 && x < 1).toBe(true);
      buckets[random.int(4)]++;
    }
    // Each bucket expects 10,000 with standard deviation ~87.
    for (const count of buckets) expect(Math.abs(count - 10_000)).toBeLessThan(500);
  });
});

describe('seedFrom', () => {
  it('derives distinct stable seeds per salt and per seed, using bits above 32', () => {
    expect(seedFrom(1, 'a')).toBe(seedFrom(1, 'a'));
    expect(seedFrom(1, 'a')).not.toBe(seedFrom(1, 'b'));
    expect(seedFrom(1, 'a')).not.toBe(seedFrom(2, 'a'));
    expect(seedFrom(1, 'a')).not.toBe(seedFrom(1 + 2 ** 32, 'a'));
  });
});

describe('shuffleInPlace', () => {
  it('permutes deterministically', () => {
    const a = shuffleInPlace([...Array(20).keys()], createRandom(5));
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(20).keys()]);
    expect(shuffleInPlace([...Array(20).keys()], createRandom(5))).toEqual(a);
    expect(a).not.toEqual([...Array(20).keys()]);
  });
});
