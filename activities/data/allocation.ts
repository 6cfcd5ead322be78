// Integer counts from fractions. Splitting n records 7:1:2 must give whole numbers that add up to
// n, and with stratification each label's counts must add up to that label's size while the split
// totals still match the unstratified targets. Independent per-label rounding can miss the totals
// (three labels of 333/333/334 at 7:1:2 round to 700/99/201), so cells are rounded jointly.

/** Splits `total` in proportion to `ratios` (summing to 1): floors, then +1 for the largest remainders (ties: earlier first). */
export function largestRemainder(total: number, ratios: readonly number[]): number[] {
  const exact = ratios.map((r) => total * r);
  // The epsilon absorbs float error such as 1000 × 0.7 = 700.0000000000001 or 699.9999999999999.
  const counts = exact.map((x) => Math.floor(x + 1e-9));
  const order = exact.map((x, j) => ({ j, remainder: x - counts[j] })).sort((a, b) => b.remainder - a.remainder || a.j - b.j);
  let left = total - counts.reduce((sum, c) => sum + c, 0);
  for (const { j } of order) {
    if (left <= 0) break;
    counts[j]++;
    left--;
  }
  return counts;
}

/**
 * Per-stratum, per-split counts: cell [s][j] is floor or ceiling of sizes[s] × ratios[j], row s
 * sums to sizes[s], and column j sums to largestRemainder(Σ sizes, ratios)[j]. Round-ups go to the
 * largest remainders first; an augmenting-path search (bipartite b-matching) settles the rest.
 */
export function allocateStrata(sizes: readonly number[], ratios: readonly number[]): number[][] {
  const total = sizes.reduce((sum, n) => sum + n, 0);
  const columnTargets = largestRemainder(total, ratios);
  const floors = sizes.map((n) => ratios.map((r) => Math.floor(n * r + 1e-9)));
  const remainders = sizes.map((n, s) => ratios.map((r, j) => n * r - floors[s][j]));
  const rowLeft = sizes.map((n, s) => n - floors[s].reduce((sum, c) => sum + c, 0));
  const columnLeft = columnTargets.map((t, j) => t - floors.reduce((sum, row) => sum + row[j], 0));
  const roundedUp = sizes.map(() => ratios.map(() => false));

  const cells = sizes.flatMap((_, s) => ratios.map((_, j) => ({ s, j, remainder: remainders[s][j] })));
  cells.sort((a, b) => b.remainder - a.remainder || a.s - b.s || a.j - b.j);
  for (const { s, j } of cells) {
    if (rowLeft[s] > 0 && columnLeft[j] > 0 && ratios[j] > 0) {
      roundedUp[s][j] = true;
      rowLeft[s]--;
      columnLeft[j]--;
    }
  }

  // Greedy can strand a unit (a row needing one more whose open columns are all full). Move it along
  // an alternating path: row → column it is not rounded up in → row rounded up there → ... → column with room.
  for (let start = rowLeft.findIndex((left) => left > 0); start !== -1; start = rowLeft.findIndex((left) => left > 0)) {
    const cameFrom = new Map<string, string>();
    const queue = [`r${start}`];
    const seen = new Set(queue);
    let end: number | undefined;
    while (queue.length > 0 && end === undefined) {
      const node = queue.shift()!;
      const index = Number(node.slice(1));
      const next: string[] = [];
      if (node[0] === 'r') {
        ratios.forEach((r, j) => {
          if (r > 0 && !roundedUp[index][j]) next.push(`c${j}`);
        });
      } else {
        sizes.forEach((_, s) => {
          if (roundedUp[s][index]) next.push(`r${s}`);
        });
      }
      for (const neighbour of next) {
        if (seen.has(neighbour)) continue;
        seen.add(neighbour);
        cameFrom.set(neighbour, node);
        if (neighbour[0] === 'c' && columnLeft[Number(neighbour.slice(1))] > 0) {
          end = Number(neighbour.slice(1));
          break;
        }
        queue.push(neighbour);
      }
    }
    if (end === undefined) throw new Error(`allocateStrata: no rounding of ${JSON.stringify(sizes)} × ${JSON.stringify(ratios)}`);
    for (let node = `c${end}`; node !== `r${start}`; ) {
      const previous = cameFrom.get(node)!;
      if (node[0] === 'c') roundedUp[Number(previous.slice(1))][Number(node.slice(1))] = true;
      else roundedUp[Number(node.slice(1))][Number(previous.slice(1))] = false;
      node = previous;
    }
    rowLeft[start]--;
    columnLeft[end]--;
  }
  return floors.map((row, s) => row.map((count, j) => count + (roundedUp[s][j] ? 1 : 0)));
}
