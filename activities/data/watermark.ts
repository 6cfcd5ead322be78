import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';

// Where incremental collect stood after a completed cycle. A time watermark maps every file the
// cycle listed to its modification time, and a file is new when its name is missing or its time
// differs. A high-water mark (newest time only) would skip, forever, a file that lands with a time
// older than the mark: renamed into place after writing, copied with its time (`cp -p`, `rsync -t`,
// unpacking an archive), an S3 upload in flight during a listing, or anything listed after one file
// with a future time (clock skew). Every cycle lists every file anyway, so remembering each one
// costs only the watermark's size, which grows with the listing. Times are integer ms so that the
// JSON round trip through the store is exact.

/**
 * Where a source stood when a cycle read it. Kept as a gzip JSON artifact: it grows with the
 * listing (`files`) or with every id seen (`ids`).
 */
export interface Watermark {
  by: 'mtime' | 'lastModified' | 'id';
  /** mtime / lastModified: the newest modification time in `files`, ms since the epoch; shown, not compared. Absent when no file was listed. */
  at?: number;
  /** mtime / lastModified: every file the cycle listed, by name, with its modification time in ms; a file is new when missing or its time differs. */
  files?: Record<string, number>;
  /** Only in watermarks written before `files` existed, which kept a high-water mark: names whose time equals `at`. Read (as that mark), never written. */
  namesAtMark?: string[];
  /** id: every record id seen so far, sorted. */
  ids?: string[];
}

/** A file as listed by a source this cycle, with its modification time in integer ms. */
export interface TimedFile {
  name: string;
  timeMs: number;
}

/** A stored watermark that cannot be read back: the run cannot know what is new, so retrying cannot help. */
export class MalformedWatermarkError extends Error {
  override readonly name = 'MalformedWatermarkError';
  readonly nonRetryable = true;
  constructor(
    readonly where: string,
    problem: string,
  ) {
    super(
      `watermark ${JSON.stringify(where)} ${problem}; it is written only by the promote stage, so restore it, ` +
        `or delete the pipeline's continual state to start over (the next cycle then reads everything)`,
    );
  }
}

/**
 * Whether a file is new since `since`: everything is new without a watermark. A watermark written
 * before `files` existed (a high-water mark) is still honoured as it was written — older than `at`,
 * or at `at` under a name in `namesAtMark`, is seen — so upgrading does not read everything again;
 * the cycle that reads it writes `files`.
 */
export function isNewFile(name: string, timeMs: number, since: Watermark | undefined): boolean {
  if (since?.files) return !Object.hasOwn(since.files, name) || since.files[name] !== timeMs;
  if (since?.at === undefined) return true;
  return timeMs > since.at || (timeMs === since.at && !(since.namesAtMark ?? []).includes(name));
}

/**
 * The watermark after a cycle that listed `files` — every file the sources listed, new or not,
 * sampled or not — so that none of them counts as new again unless its time changes. Files the
 * previous watermark held but this listing did not are dropped, which keeps the watermark as large
 * as the listing: a file removed and later put back is read again.
 */
export function advanceTimeWatermark(by: 'mtime' | 'lastModified', files: readonly TimedFile[]): Watermark {
  // Sorted names compress better (shared prefixes sit together) and make the JSON reproducible.
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (sorted.length === 0) return { by, files: {} };
  const at = sorted.reduce((max, f) => Math.max(max, f.timeMs), -Infinity);
  return { by, at, files: Object.fromEntries(sorted.map((f) => [f.name, f.timeMs])) };
}

/** The id watermark after a cycle that read `ids`: every id seen so far, sorted. */
export function advanceIdWatermark(since: Watermark | undefined, ids: Iterable<string>): Watermark {
  return { by: 'id', ids: sortedUnique([...(since?.ids ?? []), ...ids]) };
}

/** The watermark as stored: gzip of its JSON (id sets can be large). */
export function encodeWatermark(watermark: Watermark): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(watermark), 'utf8'), { level: 9 });
}

const WatermarkSchema = z.strictObject({
  by: z.enum(['mtime', 'lastModified', 'id']),
  at: z.number().int().optional(),
  // zod drops a `__proto__` key, so a file of exactly that name is read again every cycle.
  files: z.record(z.string(), z.number().int()).optional(),
  namesAtMark: z.array(z.string()).optional(),
  ids: z.array(z.string()).optional(),
});

/** Reads a stored watermark; `where` (its URI) names it in errors. */
export function decodeWatermark(data: Uint8Array, where: string): Watermark {
  let text: string;
  try {
    text = gunzipSync(data).toString('utf8');
  } catch (error) {
    throw new MalformedWatermarkError(where, `is not gzip data (${(error as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new MalformedWatermarkError(where, `is not JSON (${(error as Error).message})`);
  }
  const parsed = WatermarkSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'the value'}: ${issue.message}`);
    throw new MalformedWatermarkError(where, `is not a watermark (${problems.join('; ')})`);
  }
  return parsed.data;
}

/** Code-unit order, so every machine sorts alike. */
function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}
