import path from 'node:path';
import type { CollectOptions, Source } from '../../pipelines/stage-types';
import { compileUserRegex, matchUserRegex, UserRegexError, type UserRegex } from '../../pipelines/user-regex';
import type { Watermark } from './watermark';
import { parseCsv } from './csv';
import { decodeText } from './decode';
import {
  DuplicateIdError,
  EmptySourceError,
  InvalidOptionError,
  LabelFromPathError,
  MalformedRecordError,
  MissingFieldError,
} from './errors';
import { shortSha256 } from './hash';
import { seedFrom } from './random';
import type { DataRecord } from './record';
import { createS3SourceReader, type S3SourceReader } from './s3-source';
import { compareStrings, describeSource, listSource, type SourceFile } from './source-files';
import { advanceIdWatermark, advanceTimeWatermark, isNewFile, type TimedFile } from './watermark';

/** What collectRecords needs besides its options. */
export interface CollectContext {
  /** Directory that relative source globs resolve against: the spec file's directory. */
  baseDir: string;
  /** Run seed; fixes which records `sample` and `limit` keep. */
  seed: number;
  /** Called after each file with the number of files read so far. */
  onProgress?(filesRead: number): void;
  /** S3 access for `s3:` sources. Default: createS3SourceReader() on first use. */
  s3?: S3SourceReader;
  /** For `incremental`: the watermark of the previous completed cycle. Default: none, so everything is new. */
  since?: Watermark;
}

/** How incremental collect tells new from old. */
type IncrementalBy = Watermark['by'];

/** Counts for one source, in source order. */
export interface SourceMetrics {
  source: string;
  files: number;
  bytes: number;
  /** Records read from this source, before sampling. */
  records: number;
  /** Records of this source in the output. */
  kept: number;
  /** Matched paths skipped because another matched path reads the same file (symlinked directories); only when some were. */
  duplicatePaths?: number;
}

/** What collect did, by reason. (A type alias, not an interface, so it is assignable to the stage `Metrics` record.) */
export type CollectMetrics = {
  files: number;
  bytes: number;
  /** Records read, before sampling and limit. */
  read: number;
  /** Records output. */
  records: number;
  removed: { emptySegments: number; sampledOut: number; overLimit: number };
  /** Files that were not UTF-8 and were decoded as Windows-1252 (only with that encoding policy). */
  decodedAsWindows1252: number;
  /** Output records per label, keys sorted. */
  labels: Record<string, number>;
  unlabeled: number;
  sources: SourceMetrics[];
  /** Only with `incremental`: what was new. */
  incremental?: IncrementalMetrics;
  /** Only with `incremental`: true when nothing was new, so `records` is 0. */
  nothingNew?: boolean;
};

/** What incremental collect found new since the previous watermark. */
export type IncrementalMetrics = {
  by: IncrementalBy;
  /** The previous watermark's newest time in ms (mtime, lastModified) or its number of ids (id); null on the first cycle. */
  previous: number | null;
  /** mtime, lastModified: files whose name or time the watermark did not hold, which were read. */
  newFiles?: number;
  /** mtime, lastModified: files listed with the name and time the watermark held, skipped unread. */
  unchangedFiles?: number;
  /** id: records read whose id an earlier cycle saw, dropped before sample and limit. */
  alreadySeenRecords?: number;
  /** Records no earlier cycle saw, before sample and limit. */
  newRecords: number;
};

/** What collectRecords returns. */
export interface CollectResult {
  records: DataRecord[];
  metrics: CollectMetrics;
  /** Only with `incremental`: the watermark to keep once this cycle completes. */
  watermark?: Watermark;
}

/** A record with where it came from, until ids are checked. */
interface LocatedRecord {
  record: DataRecord;
  location: string;
  sourceIndex: number;
}

/**
 * Reads every source in order into records. Local and npm files are taken in sorted path order,
 * S3 objects in key order; records keep file order. Each file is known by a name — its path relative
 * to baseDir (absolute when outside it), `npm:<package>/<path in package>`, or `s3://bucket/key` —
 * which labelFromPath is matched against and `meta.source` records. Ids come from `idField`, else
 * from a hash of (name, position in file), so adding unrelated files never changes them. Labels come
 * from `labelField` (jsonl/csv), else from labelFromPath. Each record gets one uniform draw from
 * hash(seed, id): `sample` keeps draws below the rate, independently of other records, and `limit`
 * keeps the smallest draws; kept records stay in input order.
 *
 * With `incremental`, only what is new since `ctx.since` is kept: files whose name or modification
 * time differs from what the watermark holds (unchanged ones are not even read), or records with
 * unseen ids; sample and limit apply to those. Nothing new — no new file, no unseen id, an empty
 * inbox, or new files holding no records yet — is not an error but a result with `nothingNew`. The
 * returned watermark covers everything listed or read this cycle, sampled or not.
 */
export async function collectRecords(options: CollectOptions, ctx: CollectContext): Promise<CollectResult> {
  const delta = options.incremental && new Delta(options.incremental.by, options.sources, ctx.since);
  const labelRule =
    options.labelFromPath === undefined
      ? undefined
      : { regex: options.labelFromPath, pattern: compileLabelPattern(options.labelFromPath) };
  let s3 = ctx.s3;
  const located: LocatedRecord[] = [];
  const sourceMetrics: SourceMetrics[] = [];
  const removed = { emptySegments: 0, sampledOut: 0, overLimit: 0 };
  let filesRead = 0;
  let decodedAsWindows1252 = 0;

  // A continual pipeline may be scheduled before its first data arrives: then an empty inbox is
  // just nothing new.
  const allowEmpty = delta !== undefined;
  for (const [sourceIndex, source] of options.sources.entries()) {
    const { files, duplicatePaths } = await listSource(source, { baseDir: ctx.baseDir, s3: () => (s3 ??= createS3SourceReader()), allowEmpty });
    const metrics: SourceMetrics = {
      source: describeSource(source),
      files: 0,
      bytes: 0,
      records: 0,
      kept: 0,
      ...(duplicatePaths > 0 ? { duplicatePaths } : {}),
    };
    sourceMetrics.push(metrics);
    const fresh = delta ? await delta.newFiles(files) : undefined;
    for (const [i, file] of files.entries()) {
      if (fresh && !fresh[i]) continue;
      const bytes = await file.read();
      const { text, fellBack } = decodeText(bytes, file.name, options.encoding);
      if (fellBack) decodedAsWindows1252++;
      const pathLabel = labelRule ? labelFromPath(file.name, labelRule.pattern, labelRule.regex) : undefined;
      const parsed = recordsFromFile(text, file.name, pathLabel, options);
      removed.emptySegments += parsed.empty;
      for (const { record, location } of parsed.records) located.push({ record, location, sourceIndex });
      metrics.files++;
      metrics.bytes += bytes.byteLength;
      metrics.records += parsed.records.length;
      filesRead++;
      ctx.onProgress?.(filesRead);
    }
  }

  if (located.length === 0 && !delta) {
    throw new EmptySourceError(
      options.sources.map(describeSource).join(', '),
      ctx.baseDir,
      'yielded no records: every matched file is empty or whitespace-only',
      'check that the glob selects the data files and that format and segment suit them',
    );
  }
  assertUniqueIds(located);

  const fresh = delta ? delta.unseen(located) : located;
  const kept = sampleAndLimit(fresh, options, ctx.seed, removed);
  if (kept.length === 0 && fresh.length > 0) {
    throw new EmptySourceError(
      options.sources.map(describeSource).join(', '),
      ctx.baseDir,
      `kept no records after sample ${options.sample} (of ${fresh.length} ${delta ? 'new' : 'read'})`,
      'raise sample',
    );
  }

  const labels = new Map<string, number>();
  let unlabeled = 0;
  for (const { record, sourceIndex } of kept) {
    sourceMetrics[sourceIndex].kept++;
    if (record.label === undefined) unlabeled++;
    else labels.set(record.label, (labels.get(record.label) ?? 0) + 1);
  }
  const metrics: CollectMetrics = {
    files: filesRead,
    bytes: sourceMetrics.reduce((sum, s) => sum + s.bytes, 0),
    read: located.length,
    records: kept.length,
    removed,
    decodedAsWindows1252,
    labels: Object.fromEntries([...labels].sort(([a], [b]) => compareStrings(a, b))),
    unlabeled,
    sources: sourceMetrics,
  };
  const records = kept.map((r) => r.record);
  if (!delta) return { records, metrics };
  return {
    records,
    metrics: { ...metrics, incremental: delta.metrics(fresh.length), nothingNew: fresh.length === 0 },
    watermark: delta.advance(located),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading one file

function compileLabelPattern(regex: string): UserRegex {
  try {
    return compileUserRegex(regex);
  } catch (error) {
    if (!(error instanceof UserRegexError)) throw error;
    throw new InvalidOptionError('collect labelFromPath', regex, error.problem, error.fix);
  }
}

/** The path's label: the regex's `label` group, else its first group, else the whole match. RE2 matches in linear time, so no path can stall the worker. */
function labelFromPath(name: string, pattern: UserRegex, regex: string): string {
  const match = matchUserRegex(pattern, name);
  const label = match ? (match.named.label ?? match.groups[0] ?? match.match) : undefined;
  if (label === undefined || label === '') throw new LabelFromPathError(name, regex);
  return label;
}

function formatOf(name: string, format: CollectOptions['format']): 'text' | 'jsonl' | 'csv' {
  if (format !== 'auto') return format;
  const extension = path.posix.extname(name).toLowerCase();
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  if (extension === '.csv') return 'csv';
  return 'text';
}

const derivedId = (name: string, position: number): string => shortSha256(`${name}\u0000${position}`);

/** Records of one decoded file and the number of empty segments/rows skipped. */
function recordsFromFile(
  text: string,
  name: string,
  pathLabel: string | undefined,
  options: CollectOptions,
): { records: Array<{ record: DataRecord; location: string }>; empty: number } {
  const format = formatOf(name, options.format);
  if (format === 'text') return textRecords(text, name, pathLabel, options.segment);
  const rows = format === 'jsonl' ? jsonlRows(text, name) : csvRows(text, name, options);
  const records: Array<{ record: DataRecord; location: string }> = [];
  let empty = 0;
  for (const { line, fields, describe } of rows) {
    const location = `${name}:${line}`;
    const textValue = fieldValue(fields, options.textField, 'textField', name, line, describe, true);
    if (textValue.trim() === '') {
      empty++;
      continue;
    }
    const label =
      options.labelField !== undefined
        ? fieldValue(fields, options.labelField, 'labelField', name, line, describe, false)
        : pathLabel;
    const id =
      options.idField !== undefined
        ? fieldValue(fields, options.idField, 'idField', name, line, describe, false)
        : derivedId(name, records.length + empty);
    records.push({
      record: { id, text: textValue, ...(label !== undefined ? { label } : {}), meta: { source: name, line } },
      location,
    });
  }
  return { records, empty };
}

function textRecords(
  text: string,
  name: string,
  label: string | undefined,
  segment: CollectOptions['segment'],
): { records: Array<{ record: DataRecord; location: string }>; empty: number } {
  // `file` keeps the text untouched (cleaning is the clean stage's job); paragraphs and lines are
  // trimmed because their edges are just the separators.
  const segments =
    segment === 'file'
      ? [text]
      : segment === 'paragraph'
        ? text.split(/\r?\n[^\S\r\n]*(?:\r?\n[^\S\r\n]*)+/).map((s) => s.trim())
        : text.split(/\r\n|\n|\r/).map((s) => s.trim());
  const records: Array<{ record: DataRecord; location: string }> = [];
  let empty = 0;
  for (const [position, value] of segments.entries()) {
    if (value.trim() === '') {
      empty++;
      continue;
    }
    records.push({
      record: {
        id: derivedId(name, position),
        text: value,
        ...(label !== undefined ? { label } : {}),
        meta: segment === 'file' ? { source: name } : { source: name, [segment]: position + 1 },
      },
      location: segment === 'file' ? name : `${name} (${segment} ${position + 1})`,
    });
  }
  return { records, empty };
}

/** A JSONL line or CSV row as named fields. */
interface Row {
  line: number;
  fields: Record<string, unknown>;
  /** What the row holds, for "field missing" messages. */
  describe(): string;
}

function jsonlRows(text: string, name: string): Row[] {
  const rows: Row[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    if (raw.trim() === '') continue;
    const line = index + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      // A last line without its newline that does not parse is a file cut off mid-record.
      const cutOff = index === lines.length - 1;
      throw new MalformedRecordError(
        name,
        line,
        `invalid JSON (${(error as Error).message})${cutOff ? '; the file ends inside this record, so it was probably truncated (an interrupted download or copy)' : ''}`,
        cutOff ? 're-create the file, or delete its incomplete last line' : 'write exactly one JSON object per line',
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new MalformedRecordError(
        name,
        line,
        `expected a JSON object, found ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`,
        'write exactly one JSON object per line',
      );
    }
    const fields = value as Record<string, unknown>;
    rows.push({ line, fields, describe: () => `fields present: ${Object.keys(fields).join(', ') || 'none'}` });
  }
  return rows;
}

function csvRows(text: string, name: string, options: CollectOptions): Row[] {
  const { columns, headerLine, records } = parseCsv(text, name);
  if (columns.length === 0) return [];
  const describe = (): string => `columns in the header on line ${headerLine}: ${columns.join(', ')}`;
  if (!columns.includes(options.textField)) {
    throw new MissingFieldError(name, headerLine, options.textField, 'textField', `is not a column (${describe()})`);
  }
  return records.map(({ line, fields }) => ({ line, fields, describe }));
}

/** A field as a string: labels and ids may be numbers or booleans; text must be a string. */
function fieldValue(
  fields: Record<string, unknown>,
  field: string,
  option: string,
  name: string,
  line: number,
  describe: () => string,
  mustBeString: boolean,
): string {
  if (!Object.prototype.hasOwnProperty.call(fields, field) || fields[field] === undefined || fields[field] === null) {
    throw new MissingFieldError(name, line, field, option, `is missing (${describe()})`);
  }
  const value = fields[field];
  if (typeof value === 'string') return value;
  if (!mustBeString && (typeof value === 'number' || typeof value === 'boolean')) return String(value);
  throw new MissingFieldError(
    name,
    line,
    field,
    option,
    `is ${Array.isArray(value) ? 'an array' : `a ${typeof value}`}, expected a string`,
  );
}

// ---------------------------------------------------------------------------------------------
// Selecting records

function assertUniqueIds(located: readonly LocatedRecord[]): void {
  const seen = new Map<string, string>();
  for (const { record, location } of located) {
    const first = seen.get(record.id);
    if (first !== undefined) throw new DuplicateIdError(record.id, first, location);
    seen.set(record.id, location);
  }
}

function sampleAndLimit(
  located: LocatedRecord[],
  options: CollectOptions,
  seed: number,
  removed: CollectMetrics['removed'],
): LocatedRecord[] {
  // One uniform draw per record, from (seed, id) alone: keep draws below `sample`, and for `limit`
  // the smallest draws, which is the same as lowering the sampling threshold.
  const draws = located.map((r) => seedFrom(seed, `collect\u0000${r.record.id}`) / 4294967296);
  let indices = located.map((_, i) => i).filter((i) => draws[i] < options.sample);
  removed.sampledOut = located.length - indices.length;
  if (options.limit !== undefined && indices.length > options.limit) {
    removed.overLimit = indices.length - options.limit;
    indices = indices
      .sort((a, b) => draws[a] - draws[b] || a - b)
      .slice(0, options.limit)
      .sort((a, b) => a - b);
  }
  return indices.map((i) => located[i]);
}

// ---------------------------------------------------------------------------------------------
// Telling new from old

/** One incremental collect: checks that `by` suits the sources, decides what is new, advances the watermark. */
class Delta {
  /** mtime, lastModified: every file listed this cycle, read or not. */
  private readonly listed: TimedFile[] = [];
  private unchangedFiles = 0;
  private alreadySeenRecords = 0;

  constructor(
    readonly by: IncrementalBy,
    sources: readonly Source[],
    private readonly since: Watermark | undefined,
  ) {
    if (since !== undefined && since.by !== this.by) {
      throw new InvalidOptionError(
        'collect incremental.by',
        this.by,
        `does not match the previous cycle's watermark, which was kept by ${JSON.stringify(since.by)}`,
        `restore incremental.by ${JSON.stringify(since.by)}, or delete the pipeline's continual state to start over (the next cycle then reads everything)`,
      );
    }
    for (const source of sources) assertTimeFits(by, source);
  }

  /** Which of `files` to read, in order; times are looked up a few dozen at a time (a stat each, for local files). */
  async newFiles(files: readonly SourceFile[]): Promise<boolean[]> {
    const times = new Array<number | undefined>(files.length);
    const concurrency = 32;
    for (let start = 0; start < files.length; start += concurrency) {
      const batch = files.slice(start, start + concurrency);
      const got = await Promise.all(batch.map((f) => (this.by === 'id' ? undefined : f.modifiedMs())));
      got.forEach((t, j) => (times[start + j] = t));
    }
    return files.map((file, i) => this.isNew(file, times[i]));
  }

  /** Whether to read `file`: always for id; for times, whether its name or time is not the watermark's. */
  private isNew(file: SourceFile, timeMs: number | undefined): boolean {
    if (this.by === 'id') return true;
    if (timeMs === undefined) {
      throw new InvalidOptionError(
        'collect incremental.by',
        this.by,
        `needs each object's LastModified time, but the listing gave none for ${JSON.stringify(file.name)}`,
        'use incremental.by "id", or an endpoint whose ListObjectsV2 returns LastModified',
      );
    }
    this.listed.push({ name: file.name, timeMs });
    if (isNewFile(file.name, timeMs, this.since)) return true;
    this.unchangedFiles++;
    return false;
  }

  /** The records whose id no earlier cycle saw (for times, every record read: their files are new). */
  unseen(located: LocatedRecord[]): LocatedRecord[] {
    if (this.by !== 'id') return located;
    const seen = new Set(this.since?.ids);
    const fresh = located.filter((r) => !seen.has(r.record.id));
    this.alreadySeenRecords = located.length - fresh.length;
    return fresh;
  }

  /** What was new, for the stage metrics. */
  metrics(newRecords: number): IncrementalMetrics {
    if (this.by === 'id') {
      return { by: this.by, previous: this.since?.ids?.length ?? null, alreadySeenRecords: this.alreadySeenRecords, newRecords };
    }
    const newFiles = this.listed.length - this.unchangedFiles;
    return { by: this.by, previous: this.since?.at ?? null, newFiles, unchangedFiles: this.unchangedFiles, newRecords };
  }

  /** The watermark after this cycle, given every record read. */
  advance(located: readonly LocatedRecord[]): Watermark {
    if (this.by === 'id') return advanceIdWatermark(this.since, located.map((r) => r.record.id));
    return advanceTimeWatermark(this.by, this.listed);
  }
}

/** mtime exists only on disk and lastModified only in S3; id suits every source. */
function assertTimeFits(by: IncrementalBy, source: Source): void {
  if (by === 'mtime' && 's3' in source) {
    throw new InvalidOptionError(
      'collect incremental.by',
      by,
      `does not apply to the S3 source ${JSON.stringify(source.s3)}: objects have no file mtime`,
      'use incremental.by "lastModified" for S3 sources, or "id" when local and S3 sources are mixed',
    );
  }
  if (by === 'lastModified' && 'path' in source) {
    throw new InvalidOptionError(
      'collect incremental.by',
      by,
      `does not apply to the local source ${JSON.stringify(source.path)}: lastModified is the S3 object time`,
      'use incremental.by "mtime" for local and npm: sources, or "id" when local and S3 sources are mixed',
    );
  }
}
