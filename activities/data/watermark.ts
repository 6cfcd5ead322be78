import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import type { Watermark } from '../continual/state';

// Where incremental collect stood after a completed cycle. Time watermarks keep the newest time
// seen plus the names seen at exactly that time, so a file written in the same millisecond as the
// mark, but listed only next cycle, still counts as new. Times are integer ms so that the JSON
// round trip through the store is exact.

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

/** Whether a file is new since `since`: everything is new without a watermark (or one that has no time yet). */
export function isNewFile(name: string, timeMs: number, since: Watermark | undefined): boolean {
  if (since?.at === undefined) return true;
  return timeMs > since.at || (timeMs === since.at && !(since.namesAtMark ?? []).includes(name));
}

/**
 * The watermark after a cycle that listed `files` — every file the sources listed, new or not,
 * sampled or not — so that none of them counts as new again unless it is modified.
 */
export function advanceTimeWatermark(
  by: 'mtime' | 'lastModified',
  since: Watermark | undefined,
  files: readonly TimedFile[],
): Watermark {
  const previous = since?.at;
  const at = files.reduce<number | undefined>((max, f) => (max === undefined || f.timeMs > max ? f.timeMs : max), previous);
  if (at === undefined) return { by };
  const atMark = files.filter((f) => f.timeMs === at).map((f) => f.name);
  const names = at === previous ? [...(since?.namesAtMark ?? []), ...atMark] : atMark;
  return { by, at, namesAtMark: sortedUnique(names) };
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
