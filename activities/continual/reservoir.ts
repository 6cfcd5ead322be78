import { gunzipSync, gzipSync } from 'node:zlib';
import type { DataRecord } from '../data';
import type { Random } from '../data/random';

// The replay reservoir: a bounded, uniform sample of every train record earlier cycles saw (the
// source article's "elastic storage"). Reservoir sampling (Vitter's algorithm R) keeps each record
// offered so far with equal probability size/seen, whatever the order and sizes of the cycles.

/** Offers `incoming` to a reservoir of at most `size` records that has seen `seen` records so far. */
export function updateReservoir(
  reservoir: readonly DataRecord[],
  seen: number,
  incoming: readonly DataRecord[],
  size: number,
  random: Random,
): { records: DataRecord[]; seen: number } {
  // A reservoir written under a larger bound is first cut down to a uniform sample of the new one.
  const records = reservoir.length > size ? sampleWithoutReplacement(reservoir, size, random) : [...reservoir];
  let count = seen;
  for (const record of incoming) {
    count++;
    if (records.length < size) records.push(record);
    else {
      const slot = Math.floor(random.next() * count);
      if (slot < size) records[slot] = record;
    }
  }
  return { records, seen: count };
}

/** `count` distinct records drawn uniformly (all of them when there are fewer), in reservoir order. */
export function sampleWithoutReplacement<T>(records: readonly T[], count: number, random: Random): T[] {
  if (count >= records.length) return [...records];
  const picked = records.map((r, i) => ({ i, k: random.next() })).sort((a, b) => a.k - b.k).slice(0, count);
  return picked.sort((a, b) => a.i - b.i).map(({ i }) => records[i]);
}

/** The reservoir as stored: gzip of one JSON record per line. */
export function encodeReservoir(records: readonly DataRecord[]): Buffer {
  return gzipSync(Buffer.from(records.map((r) => JSON.stringify(r)).join('\n'), 'utf8'), { level: 6 });
}

/** Reads a stored reservoir; `where` names it in errors. */
export function decodeReservoir(data: Buffer, where: string): DataRecord[] {
  let text: string;
  try {
    text = gunzipSync(data).toString('utf8');
  } catch (err) {
    throw Object.assign(new Error(`replay reservoir ${where} is not gzip data (${(err as Error).message}); delete continual state to start over`), { nonRetryable: true });
  }
  if (text === '') return [];
  return text.split('\n').map((line, i) => {
    try {
      return JSON.parse(line) as DataRecord;
    } catch {
      throw Object.assign(new Error(`replay reservoir ${where}: line ${i + 1} is not JSON`), { nonRetryable: true });
    }
  });
}
