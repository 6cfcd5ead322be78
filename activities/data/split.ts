import type { SplitOptions } from '../../pipelines/stage-types';
import { allocateStrata } from './allocation';
import { InvalidRatiosError } from './errors';
import { findNearDuplicates, Pacer, validateNearDedup, type ProgressListener } from './minhash';
import { createRandom, seedFrom, shuffleInPlace } from './random';
import type { DataRecord } from './record';

/** The three splits, in the order ratios name them. */
export const SPLIT_NAMES = ['train', 'validation', 'test'] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];

/** What split did. (A type alias so it is assignable to the stage `Metrics` record.) */
export type SplitMetrics = {
  input: number;
  /** Records per split. */
  counts: Record<SplitName, number>;
  /** Records per label per split (labels sorted); empty objects when records have no labels. */
  labels: Record<SplitName, Record<string, number>>;
  /** Whether label proportions were kept equal across splits. */
  stratified: boolean;
  /** Near-duplicate groups with 2+ records, each kept within one split. */
  groups: number;
  /** Records in those groups. */
  groupedRecords: number;
  largestGroup: number;
  /** Records placed beyond a split's exact target because a group could not be divided (0 without groups). */
  movedToKeepGroupsWhole: number;
};

/** What splitRecords needs besides its options. */
export interface SplitContext {
  /** Run seed; the same seed and records give the same splits. */
  seed: number;
  /** Called as the work advances (near-dedup's phases, then `grouping`, `assigning`, `distributing`); default none. */
  onProgress?: ProgressListener;
}

/** A label's records, as whole groups. */
interface Stratum {
  key: string;
  groups: number[][];
  size: number;
}

const RATIO_TOLERANCE = 1e-6;
/** Stratum of unlabeled records when others have labels; sorts after every real label. */
const UNLABELED = '\uffff(unlabeled)';

/**
 * Splits records into train/validation/test. Counts follow the ratios exactly (largest remainder),
 * per label when stratifying (each label's counts within 1 of its exact share, totals still exact).
 * With `groupNearDuplicates`, MinHash near-duplicate clusters are placed whole — larger groups first,
 * each into the split furthest below its target — so no near-duplicate pair straddles two splits;
 * the price is counts off by at most the size of the groups involved (`movedToKeepGroupsWhole`).
 * Seeded: the same seed and records give the same splits. Each split keeps input order.
 * Gives the event loop a turn every few tens of milliseconds, so the stage's heartbeats keep going.
 */
export async function splitRecords(
  records: readonly DataRecord[],
  options: SplitOptions,
  ctx: SplitContext,
): Promise<{ splits: Record<SplitName, DataRecord[]>; metrics: SplitMetrics }> {
  const ratios = SPLIT_NAMES.map((name) => options.ratios[name]);
  if (Math.abs(ratios[0] + ratios[1] + ratios[2] - 1) > RATIO_TOLERANCE) throw new InvalidRatiosError(options.ratios);
  if (options.groupNearDuplicates !== false) validateNearDedup(options.groupNearDuplicates, 'groupNearDuplicates');

  const pacer = new Pacer(ctx.onProgress);
  const groups = await groupRecords(records, options, pacer);
  const stratified = options.stratify && records.some((r) => r.label !== undefined);
  const strata = stratify(groups, records, stratified);
  const targets = allocateStrata(
    strata.map((s) => s.size),
    ratios,
  );

  const assignment = new Int8Array(records.length);
  let moved = 0;
  let placed = 0;
  for (const [s, stratum] of strata.entries()) {
    const random = createRandom(seedFrom(ctx.seed, `split\u0000${stratum.key}`));
    // Shuffle for randomness, then stable-sort big groups first: singletons placed last fill the
    // remaining room exactly.
    const order = shuffleInPlace([...stratum.groups], random).sort((a, b) => b.length - a.length);
    const assigned = [0, 0, 0];
    for (const group of order) {
      if (pacer.due()) await pacer.turn('assigning', placed, groups.length);
      placed++;
      let best = -1;
      for (let j = 0; j < 3; j++) {
        if (ratios[j] === 0) continue;
        if (best === -1 || targets[s][j] - assigned[j] > targets[s][best] - assigned[best]) best = j;
      }
      assigned[best] += group.length;
      for (const index of group) assignment[index] = best;
    }
    for (let j = 0; j < 3; j++) moved += Math.max(0, assigned[j] - targets[s][j]);
  }
  pacer.finish('assigning', groups.length);

  const splits: Record<SplitName, DataRecord[]> = { train: [], validation: [], test: [] };
  const labelCounts = SPLIT_NAMES.map(() => new Map<string, number>());
  for (let i = 0; i < records.length; i++) {
    if (pacer.due()) await pacer.turn('distributing', i, records.length);
    const record = records[i];
    splits[SPLIT_NAMES[assignment[i]]].push(record);
    if (record.label !== undefined) {
      const counts = labelCounts[assignment[i]];
      counts.set(record.label, (counts.get(record.label) ?? 0) + 1);
    }
  }
  pacer.finish('distributing', records.length);

  const multi = groups.filter((g) => g.length > 1);
  const sortedObject = (counts: Map<string, number>): Record<string, number> =>
    Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return {
    splits,
    metrics: {
      input: records.length,
      counts: { train: splits.train.length, validation: splits.validation.length, test: splits.test.length },
      labels: { train: sortedObject(labelCounts[0]), validation: sortedObject(labelCounts[1]), test: sortedObject(labelCounts[2]) },
      stratified,
      groups: multi.length,
      groupedRecords: multi.reduce((sum, g) => sum + g.length, 0),
      largestGroup: groups.reduce((max, g) => Math.max(max, g.length), 0),
      movedToKeepGroupsWhole: moved,
    },
  };
}

/** Record indices grouped by near-duplicate cluster (or one group per record), ordered by first index. */
async function groupRecords(records: readonly DataRecord[], options: SplitOptions, pacer: Pacer): Promise<number[][]> {
  if (options.groupNearDuplicates === false) return records.map((_, i) => [i]);
  const { representative } = await findNearDuplicates(
    records.map((r) => r.text),
    options.groupNearDuplicates,
    'groupNearDuplicates',
    pacer,
  );
  const byRepresentative = new Map<number, number[]>();
  const groups: number[][] = [];
  for (let i = 0; i < records.length; i++) {
    if (pacer.due()) await pacer.turn('grouping', i, records.length);
    const root = representative[i];
    let group = byRepresentative.get(root);
    if (!group) {
      group = [];
      byRepresentative.set(root, group);
      groups.push(group);
    }
    group.push(i);
  }
  pacer.finish('grouping', records.length);
  return groups;
}

/** Groups by the label of their first record (one stratum when not stratifying), strata in key order. */
function stratify(groups: number[][], records: readonly DataRecord[], stratified: boolean): Stratum[] {
  const byKey = new Map<string, Stratum>();
  for (const group of groups) {
    const key = stratified ? (records[group[0]].label ?? UNLABELED) : '';
    let stratum = byKey.get(key);
    if (!stratum) {
      stratum = { key, groups: [], size: 0 };
      byKey.set(key, stratum);
    }
    stratum.groups.push(group);
    stratum.size += group.length;
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
