// Mail header detection. A mail starts with an RFC 822/5322 header block — `Name: value` fields,
// folded continuation lines that start with whitespace, optionally preceded by an mbox `From ` line —
// and the body begins after the first blank line.

const MBOX_FROM_LINE = /^From \S/;
/** Field name: printable ASCII except colon, no spaces (RFC 5322 §2.2). */
const HEADER_FIELD = /^([!-9;-~]+):/;
const CONTINUATION = /^[ \t]/;
// Requiring one well-known field keeps prose such as "Note: ..." from being taken for headers.
const MAIL_FIELDS = new Set([
  'from',
  'to',
  'cc',
  'subject',
  'date',
  'received',
  'return-path',
  'message-id',
  'mime-version',
  'content-type',
  'delivered-to',
  'reply-to',
  'sender',
]);

/** Where a mail's header block lies in a text: offsets, so callers slice only what they need. */
export interface MailHeaderBlock {
  /** First header field: 0, or after an mbox `From ` line. */
  start: number;
  /** First character of the body, after the blank line (the text's length when there is no body). */
  bodyStart: number;
}

/** The header block `text` starts with, if it starts with one holding a well-known mail field; else undefined. */
export function findMailHeaders(text: string): MailHeaderBlock | undefined {
  let position = 0;
  let start = 0;
  let first = true;
  let sawMailField = false;
  while (position < text.length) {
    let end = text.indexOf('\n', position);
    if (end === -1) end = text.length;
    const line = text.slice(position, end).replace(/\r$/, '');
    if (line.trim() === '') {
      return first || !sawMailField ? undefined : { start, bodyStart: Math.min(end + 1, text.length) };
    }
    if (first && MBOX_FROM_LINE.test(line)) {
      // mbox separator, not a field
      start = Math.min(end + 1, text.length);
    } else if (!first && CONTINUATION.test(line)) {
      // folded continuation of the previous field
    } else {
      const field = HEADER_FIELD.exec(line);
      if (!field) return undefined;
      const name = field[1].toLowerCase();
      if (MAIL_FIELDS.has(name) || name.startsWith('x-')) sawMailField = true;
    }
    first = false;
    position = end + 1;
  }
  // Headers and no body at all.
  return sawMailField ? { start, bodyStart: text.length } : undefined;
}

/**
 * The body of `text` if it starts with a mail header block (headers dropped), else undefined. Only
 * the top block goes: MIME parts keep their headers and transfer encodings (clean decodes mail
 * with `decodeMail` instead; this stays for comparison and for callers that want the raw body).
 */
export function stripMailHeaders(text: string): string | undefined {
  const block = findMailHeaders(text);
  return block === undefined ? undefined : text.slice(block.bodyStart);
}
