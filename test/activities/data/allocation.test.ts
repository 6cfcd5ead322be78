import { allocateStrata, largestRemainder } from '../../../activities/data/allocation';

describe('largestRemainder', () => {
  it('gives exact shares when they are whole and the largest remainders the leftovers', () => {
    expect(largestRemainder(1000, [0.7, 0.1, 0.2])).toEqual([700, 100, 200]);
    expect(largestRemainder(11, [0.7, 0.1, 0.2])).toEqual([8, 1, 2]); // 7.7, 1.1, 2.2
    expect(largestRemainder(3, [0.5, 0, 0.5])).toEqual([2, 0, 1]); // tie goes to the earlier split
  });
});

describe('allocateStrata', () => {
  it('keeps column totals exact where per-row rounding would not', () => {
    const sizes = [333, 333, 334];
    const ratios = [0.7, 0.1, 0.2];
    const cells = allocateStrata(sizes, ratios);
    expect(cells.map((row) => row.reduce((a, b) => a + b))).toEqual(sizes);
    expect([0, 1, 2].map((j) => cells.reduce((sum, row) => sum + row[j], 0))).toEqual([700, 100, 200]);
    cells.forEach((row, s) => row.forEach((count, j) => expect(Math.abs(count - sizes[s] * ratios[j])).toBeLessThan(1)));
  });

  it('handles many small strata and zero ratios', () => {
    const sizes = [1, 1, 1, 1, 1, 1, 1, 2, 3, 5, 8];
    const ratios = [0.6, 0, 0.4];
    const cells = allocateStrata(sizes, ratios);
    expect(cells.map((row) => row.reduce((a, b) => a + b))).toEqual(sizes);
    expect([0, 1, 2].map((j) => cells.reduce((sum, row) => sum + row[j], 0))).toEqual(largestRemainder(25, ratios));
    expect(cells.every((row) => row[1] === 0)).toBe(true);
    cells.forEach((row, s) => row.forEach((count, j) => expect(Math.abs(count - sizes[s] * ratios[j])).toBeLessThan(1)));
  });
});
