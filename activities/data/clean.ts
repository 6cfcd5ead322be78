import type { CleanOptions } from '../../pipelines/stage-types';
import { sha256Hex } from './hash';
import { stripHtml } from './html';
import { decodeMail } from './mail';
import { NoRecordsLeftError } from './errors';
import { findNearDuplicates, Pacer, validateNearDedup, type ProgressListener } from './minhash';
import type { DataRecord } from './record';
import { redactSensitive, type RedactionCounts } from './redact';

/** What clean did, by reason. (A type alias so it is assignable to the stage `Metrics` record.) */
export type CleanMetrics = {
  input: number;
  output: number;
  /** `binary`: records that are control characters or undecodable bytes rather than text (see BINARY_FRACTION). */
  removed: { binary: number; tooShort: number; tooLong: number; exactDuplicate: number; nearDuplicate: number };
  /** Records kept whose stray control characters (NUL, ESC, ...) were removed. */
  strippedControl: number;
  /** Replacements made (occurrences, not records). */
  redacted: RedactionCounts;
  /** Records whose text Unicode normalization changed. */
  normalized: number;
  /** With keepHeaders: records given each header field in their meta (counted before the length filters and dedup). */
  keptHeaders?: Record<string, number>;
  /** With keepHeaders: records dropped for lacking a kept field (not a mail, or the field absent or blank). */
  missingHeaders?: number;
  /** Records that started with a mail header block, now dropped (each mail: its body is decoded, see `mime`). */
  strippedHeaders: number;
  /** What decoding those mails did. */
  mime: {
    /** Mails postal-mime parsed: MIME parts, transfer encodings and charsets decoded. The rest (strippedHeaders − parsed) lost their top header block only: postal-mime refused them, or found no part in them. */
    parsed: number;
    /** Mails without a text/plain part, whose text is their HTML version. */
    htmlOnly: number;
    /** Attachments left out (parts, not mails). */
    droppedAttachments: number;
    /** Mails turned back into their Windows-1252 bytes for their declared non-UTF-8 charsets (activities/data/mail.ts, mailBytes). */
    legacyCharset: number;
    /** Mails whose text parts declare no charset and are not UTF-8, read as Windows-1252. */
    undeclaredCharset: number;
    /** Mails with quoted-printable text in parts labelled 7bit or 8bit (or not labelled), decoded as such. */
    relabelledQuotedPrintable: number;
    /** Mails whose body held a multipart its header did not announce (the header missing, or naming a boundary the body does not use), decoded too. */
    repairedMultipart: number;
  };
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

/**
 * Characters that are never text: C0 controls except tab, line feed, carriage return, vertical
 * tab and form feed (the last two are whitespace, handled as such), DEL, and C1 controls.
 */
const CONTROL = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/g;

/**
 * A record whose characters are at least this fraction control characters or U+FFFD (bytes that
 * were not valid in its encoding) is binary, not text, and is dropped: a file of NUL bytes, an
 * image or an archive read as text. Below it, text with a few stray controls keeps its text and
 * loses the controls. Real text in a wrong encoding stays well below it (accented letters in a
 * Windows-1252 file read as UTF-8 are a few percent).
 */
export const BINARY_FRACTION = 0.25;

/** True when `text` is binary garbage rather than text (see BINARY_FRACTION). */
export function isBinaryText(text: string): boolean {
  if (text.length === 0) return false;
  let garbage = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0xfffd || (c <= 0x9f && (c <= 0x08 || (c >= 0x0e && c <= 0x1f) || c >= 0x7f))) garbage++;
  }
  return garbage >= BINARY_FRACTION * text.length;
}

/** `text` without control characters (CONTROL). */
export function stripControlCharacters(text: string): string {
  return text.replace(CONTROL, '');
}

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
 * Cleans records in order: drop binary records → decode mail (headers, MIME parts, transfer
 * encodings, charsets, attachments; then drop the body if it is binary) → strip control characters →
 * normalize → strip HTML → collapse whitespace → redact → length filters → exact dedup → near dedup.
 * Mail comes before control stripping and normalization because its charsets apply to the bytes the
 * text was read from (see mailBytes), which both would alter. Dedup runs on cleaned text and keeps the first
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
    removed: { binary: 0, tooShort: 0, tooLong: 0, exactDuplicate: 0, nearDuplicate: 0 },
    strippedControl: 0,
    redacted: { emails: 0, phones: 0, ips: 0, cards: 0 },
    normalized: 0,
    strippedHeaders: 0,
    mime: { parsed: 0, htmlOnly: 0, droppedAttachments: 0, legacyCharset: 0, undeclaredCharset: 0, relabelledQuotedPrintable: 0, repairedMultipart: 0 },
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
    // keepHeaders: header fields of a mail, cleaned like its text and kept in meta.
    let kept: Record<string, string> | undefined;
    // First, so that no later step sees (or keeps) a NUL: always on, since no model wants them.
    if (isBinaryText(text)) {
      metrics.removed.binary++;
      continue;
    }
    if (options.stripMailHeaders) {
      const mail = await decodeMail(text);
      if (mail !== undefined) {
        metrics.strippedHeaders++;
        if (mail.parsed) metrics.mime.parsed++;
        if (mail.fromHtml) metrics.mime.htmlOnly++;
        if (mail.legacyBytes) metrics.mime.legacyCharset++;
        if (mail.undeclaredAsWindows1252) metrics.mime.undeclaredCharset++;
        if (mail.relabelledQuotedPrintable) metrics.mime.relabelledQuotedPrintable++;
        if (mail.repairedMultipart) metrics.mime.repairedMultipart++;
        metrics.mime.droppedAttachments += mail.attachments;
        // A text part can hold binary too (a base64 image labelled text/plain).
        if (isBinaryText(mail.text)) {
          metrics.removed.binary++;
          continue;
        }
        text = mail.text;
        if (options.keepHeaders?.includes('subject') && mail.subject !== undefined) kept = { subject: keptHeaderValue(mail.subject, options, metrics) };
      }
      // keepHeaders promises the fields: a record without one (not a mail, or a mail without it or with it blank) is dropped.
      if (options.keepHeaders?.length && !(kept && options.keepHeaders.every((field) => kept![field]))) {
        metrics.missingHeaders = (metrics.missingHeaders ?? 0) + 1;
        continue;
      }
      if (kept) for (const field of Object.keys(kept)) metrics.keptHeaders = { ...metrics.keptHeaders, [field]: (metrics.keptHeaders?.[field] ?? 0) + 1 };
    }
    const withoutControls = stripControlCharacters(text);
    if (withoutControls !== text) metrics.strippedControl++;
    text = withoutControls;
    if (options.normalize !== 'none') {
      const normalized = text.normalize(options.normalize);
      if (normalized !== text) metrics.normalized++;
      text = normalized;
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
    survivors.push(text === record.text && !kept ? record : { ...record, text, ...(kept ? { meta: { ...record.meta, ...kept } } : {}) });
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

/** A header field as meta keeps it: control characters stripped, normalized like the text, on one line, redacted like the text. */
function keptHeaderValue(value: string, options: CleanOptions, metrics: CleanMetrics): string {
  const stripped = stripControlCharacters(value);
  const line = (options.normalize !== 'none' ? stripped.normalize(options.normalize) : stripped).replace(/\s+/g, ' ').trim();
  if (options.redact === false) return line;
  const { text, counts } = redactSensitive(line, options.redact);
  for (const kind of ['emails', 'phones', 'ips', 'cards'] as const) metrics.redacted[kind] += counts[kind];
  return text;
}

/** Why nothing was kept, and what to change. Dedup always keeps one record, so only the binary check and the length filters can empty a dataset. */
function noRecordsLeft(metrics: CleanMetrics, options: CleanOptions, longest: number): NoRecordsLeftError {
  const { binary, tooShort, tooLong } = metrics.removed;
  if (metrics.input === 0) return new NoRecordsLeftError(0, 'its input dataset is empty', 'check the stage that feeds it');
  const reasons = [
    ...(binary > 0 ? [`${binary} binary (control characters or undecodable bytes, not text)`] : []),
    ...(tooLong > 0 ? [`${tooLong} longer than maxChars ${options.maxChars}`] : []),
    ...(tooShort > 0 ? [`${tooShort} shorter than minChars ${options.minChars}`] : []),
  ];
  const fixes = [
    ...(binary > 0 ? ["check collect's sources: they matched binary files (narrow the glob), or set its encoding"] : []),
    ...(tooLong > 0 ? [`raise maxChars (the longest record has ${longest} characters after cleaning), or cut long documents into records in collect (segment: paragraph or line)`] : []),
    ...(tooShort > 0 ? ['lower minChars'] : []),
  ];
  return new NoRecordsLeftError(metrics.input, reasons.join(', '), fixes.join('; '));
}
