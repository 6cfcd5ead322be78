import type { CleanOptions } from '../../pipelines/stage-types';
import { sha256Hex } from './hash';
import { stripHtml } from './html';
import { stripMailHeaders } from './mail-headers';
import { NoRecordsLeftError } from './errors';
import { findNearDuplicates, Pacer, validateNearDedup, type ProgressListener } from './minhash';
import type { DataRecord } from './record';
import { redactSensitive, type RedactionCounts } from './redact';

/** What clean did, by reason. (A type alias so it is assignable to the stage `Metrics` record.) */
export type CleanMetrics = {
  input: number;
  output: number;
  removed: { tooShort: number; tooLong: number; exactDuplicate: number; nearDuplicate: number };
  /** Replacements made (occurrences, not records). */
  redacted: RedactionCounts;
  /** Records whose text Unicode normalization changed. */
  normalized: number;
  /** Records that started with a mail header block, now dropped. */
  strippedHeaders: number;
  /** Records whose text HTML stripping changed. */
  strippedHtml: number;
  /** Records whose text whitespace collapsing changed. */
  collapsedWhitespace: number;
  /** Near-duplicate search effort: pairs compared after LSH. */
  nearDuplicateCandidatePairs: number;
};

/** What cleanRecords needs besides its options. */
export interface CleanContext {
  /** Called as the work advances (phases `cleaning records`, then near-dedup's); default none. */
  onProgress?: ProgressListener;
}

const CLEANING = 'cleaning records';

/** Collapses horizontal whitespace runs to one space, 3+ newlines to a blank line, and trims. */
export function collapseWhitespace(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Length in code points, so that astral characters (emoji, rare CJK) count once. */
function codePointLength(text: string): number {
  let surrogatePairs = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) surrogatePairs++;
  }
  return text.length - surrogatePairs;
}

/**
 * Cleans records in order: normalize → strip mail headers → strip HTML → collapse whitespace →
 * redact → length filters → exact dedup → near dedup. Dedup runs on cleaned text and keeps the first
 * record of each duplicate group (input order), so the result depends only on the input and options.
 * Throws NoRecordsLeftError when no record is left: an empty dataset would only fail later, less clearly.
 * Gives the event loop a turn every few tens of milliseconds, so the stage's heartbeats keep going.
 */
export async function cleanRecords(
  records: readonly DataRecord[],
  options: CleanOptions,
  ctx: CleanContext = {},
): Promise<{ records: DataRecord[]; metrics: CleanMetrics }> {
  if (options.nearDedup !== false) validateNearDedup(options.nearDedup, 'nearDedup');
  const metrics: CleanMetrics = {
    input: records.length,
    output: 0,
    removed: { tooShort: 0, tooLong: 0, exactDuplicate: 0, nearDuplicate: 0 },
    redacted: { emails: 0, phones: 0, ips: 0, cards: 0 },
    normalized: 0,
    strippedHeaders: 0,
    strippedHtml: 0,
    collapsedWhitespace: 0,
    nearDuplicateCandidatePairs: 0,
  };

  const survivors: DataRecord[] = [];
  const seenTexts = new Set<string>();
  let longest = 0;
  const pacer = new Pacer(ctx.onProgress);
  for (let i = 0; i < records.length; i++) {
    if (pacer.due()) await pacer.turn(CLEANING, i, records.length);
    const record = records[i];
    let text = record.text;
    if (options.normalize !== 'none') {
      const normalized = text.normalize(options.normalize);
      if (normalized !== text) metrics.normalized++;
      text = normalized;
    }
    if (options.stripMailHeaders) {
      const body = stripMailHeaders(text);
      if (body !== undefined) {
        metrics.strippedHeaders++;
        text = body;
      }
    }
    if (options.stripHtml) {
      const stripped = stripHtml(text);
      if (stripped !== text) metrics.strippedHtml++;
      text = stripped;
    }
    if (options.collapseWhitespace) {
      const collapsed = collapseWhitespace(text);
      if (collapsed !== text) metrics.collapsedWhitespace++;
      text = collapsed;
    }
    if (options.redact !== false) {
      const { text: redacted, counts } = redactSensitive(text, options.redact);
      metrics.redacted.emails += counts.emails;
      metrics.redacted.phones += counts.phones;
      metrics.redacted.ips += counts.ips;
      metrics.redacted.cards += counts.cards;
      text = redacted;
    }

    const length = codePointLength(text);
    longest = Math.max(longest, length);
    if (length < options.minChars) {
      metrics.removed.tooShort++;
      continue;
    }
    if (length > options.maxChars) {
      metrics.removed.tooLong++;
      continue;
    }
    if (options.exactDedup) {
      // Keyed by digest: V8 hashes long strings by length only, so a Set of raw texts degrades.
      const digest = sha256Hex(text);
      if (seenTexts.has(digest)) {
        metrics.removed.exactDuplicate++;
        continue;
      }
      seenTexts.add(digest);
    }
    survivors.push(text === record.text ? record : { ...record, text });
  }
  pacer.finish(CLEANING, records.length);

  let output = survivors;
  if (options.nearDedup !== false && survivors.length > 1) {
    const clusters = await findNearDuplicates(
      survivors.map((r) => r.text),
      options.nearDedup,
      'nearDedup',
      pacer,
    );
    metrics.nearDuplicateCandidatePairs = clusters.candidatePairs;
    output = survivors.filter((_, i) => clusters.representative[i] === i);
    metrics.removed.nearDuplicate = survivors.length - output.length;
  }
  metrics.output = output.length;
  if (output.length === 0) throw noRecordsLeft(metrics, options, longest);
  return { records: output, metrics };
}

/** Why nothing was kept, and what to change. Dedup always keeps one record, so only the length filters can empty a dataset. */
function noRecordsLeft(metrics: CleanMetrics, options: CleanOptions, longest: number): NoRecordsLeftError {
  const { tooShort, tooLong } = metrics.removed;
  if (metrics.input === 0) return new NoRecordsLeftError(0, 'its input dataset is empty', 'check the stage that feeds it');
  const reasons = [
    ...(tooLong > 0 ? [`${tooLong} longer than maxChars ${options.maxChars}`] : []),
    ...(tooShort > 0 ? [`${tooShort} shorter than minChars ${options.minChars}`] : []),
  ];
  const fixes = [
    ...(tooLong > 0 ? [`raise maxChars (the longest record has ${longest} characters after cleaning), or cut long documents into records in collect (segment: paragraph or line)`] : []),
    ...(tooShort > 0 ? ['lower minChars'] : []),
  ];
  return new NoRecordsLeftError(metrics.input, reasons.join(', '), fixes.join('; '));
}
