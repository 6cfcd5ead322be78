import type { SplitOptions } from '../../pipelines/stage-types';
import { allocateStrata } from './allocation';
import { InvalidOptionError, InvalidRatiosError } from './errors';
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
  /** Groups with 2+ records — near-duplicate clusters and `groupBy` groups, merged where they share a record — each kept within one split. */
  groups: number;
  /** Records in those groups. */
  groupedRecords: number;
  largestGroup: number;
  /** Records placed beyond a split's exact target because a group could not be divided (0 without groups). */
  movedToKeepGroupsWhole: number;
  /** Only with `groupBy`: the field, and how many distinct values it has. */
  groupBy?: { field: string; values: number };
};

/** What splitRecords needs besides its options. */
export interface SplitContext {
  /** Run seed; the same seed and records give the same splits. */
  seed: number;
  /** Called as the work advances (near-dedup's phases, `grouping by field` with groupBy, then `grouping`, `assigning`, `distributing`); default none. */
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
 * with `groupBy`, so are records sharing that field's value (merged with the clusters where they
 * share a record); the price is counts off by at most the size of the groups involved
 * (`movedToKeepGroupsWhole`). When stratifying, a group counts under its majority label.
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
  // Before the MinHash work: a field the records lack should fail at once.
  const keys = options.groupBy === undefined ? undefined : groupKeys(records, options.groupBy);

  const pacer = new Pacer(ctx.onProgress);
  const groups = await groupRecords(records, options, keys, pacer);
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
      ...(options.groupBy !== undefined && keys ? { groupBy: { field: options.groupBy, values: new Set(keys).size } } : {}),
    },
  };
}

/** Where `groupBy` reads from: a top-level record field, or a key of `meta`. */
function groupField(groupBy: string): { where: 'record' | 'meta'; name: string } {
  if (groupBy === 'id' || groupBy === 'label') return { where: 'record', name: groupBy };
  return { where: 'meta', name: groupBy.startsWith('meta.') ? groupBy.slice('meta.'.length) : groupBy };
}

/**
 * Each record's `groupBy` value, as a string (numbers and booleans as written, anything else as
 * JSON). Throws InvalidOptionError when any record lacks the field, naming the first such record
 * and the fields records do have.
 */
function groupKeys(records: readonly DataRecord[], groupBy: string): string[] {
  const field = groupField(groupBy);
  const keys: string[] = [];
  let missing = 0;
  let firstMissing: DataRecord | undefined;
  for (const record of records) {
    const value = field.where === 'record' ? record[field.name as 'id' | 'label'] : record.meta?.[field.name];
    if (value === undefined || value === null) {
      missing++;
      firstMissing ??= record;
      continue;
    }
    keys.push(typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  if (firstMissing === undefined) return keys;
  const where = typeof firstMissing.meta?.source === 'string' ? ` (from ${JSON.stringify(firstMissing.meta.source)})` : '';
  const available = ['id', ...(firstMissing.label !== undefined ? ['label'] : []), ...Object.keys(firstMissing.meta ?? {})];
  throw new InvalidOptionError(
    'split groupBy',
    groupBy,
    `names a field ${missing} of ${records.length} records lack, the first record ${JSON.stringify(firstMissing.id)}${where}`,
    `use a field every record has (that one has ${available.map((f) => JSON.stringify(f)).join(', ')}; "source" is the file it was read from), or remove groupBy`,
  );
}

const GROUPING_BY_FIELD = 'grouping by field';

/**
 * Record indices grouped, ordered by first index: near-duplicate clusters and records sharing a
 * `groupBy` key (`keys`), merged where they share a record (union-find); one group per record
 * without either.
 */
async function groupRecords(
  records: readonly DataRecord[],
  options: SplitOptions,
  keys: readonly string[] | undefined,
  pacer: Pacer,
): Promise<number[][]> {
  if (options.groupNearDuplicates === false && keys === undefined) return records.map((_, i) => [i]);
  const parent =
    options.groupNearDuplicates === false
      ? Int32Array.from(records, (_, i) => i)
      : Int32Array.from(
          (await findNearDuplicates(records.map((r) => r.text), options.groupNearDuplicates, 'groupNearDuplicates', pacer)).representative,
        );
  const rootOf = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  if (keys !== undefined) {
    const firstWithKey = new Map<string, number>();
    for (let i = 0; i < records.length; i++) {
      if (pacer.due()) await pacer.turn(GROUPING_BY_FIELD, i, records.length);
      const first = firstWithKey.get(keys[i]);
      if (first === undefined) {
        firstWithKey.set(keys[i], i);
        continue;
      }
      const [a, b] = [rootOf(first), rootOf(i)];
      // The smaller index stays the root, so a group is known by its first record.
      if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
    }
    pacer.finish(GROUPING_BY_FIELD, records.length);
  }
  const byRepresentative = new Map<number, number[]>();
  const groups: number[][] = [];
  for (let i = 0; i < records.length; i++) {
    if (pacer.due()) await pacer.turn('grouping', i, records.length);
    const root = rootOf(i);
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

/**
 * Groups by their majority label (one stratum when not stratifying), strata in key order. Majority
 * rather than the first record's label: a group of mixed labels (a document whose segments were
 * labelled apart, near-duplicates across labels) then counts where most of its records belong, so
 * each label's share of each split stays closest to its target.
 */
function stratify(groups: number[][], records: readonly DataRecord[], stratified: boolean): Stratum[] {
  const byKey = new Map<string, Stratum>();
  for (const group of groups) {
    const key = stratified ? majorityLabel(group, records) : '';
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

/** The label most of `group`'s records have (UNLABELED for none); a tie goes to the label that reached the count first. */
function majorityLabel(group: readonly number[], records: readonly DataRecord[]): string {
  if (group.length === 1) return records[group[0]].label ?? UNLABELED;
  const counts = new Map<string, number>();
  let best = '';
  let bestCount = 0;
  for (const index of group) {
    const label = records[index].label ?? UNLABELED;
    const count = (counts.get(label) ?? 0) + 1;
    counts.set(label, count);
    if (count > bestCount) {
      best = label;
      bestCount = count;
    }
  }
  return best;
}
