// Mail to text. A mail is found as before (a header block holding a well-known mail field, see
// mail-headers.ts) and then parsed with postal-mime, which handles what a header stripper cannot:
// multipart bodies, quoted-printable and base64 transfer encodings, charsets, attachments.

import PostalMime from 'postal-mime';
import { stripHtml } from './html';
import { findMailHeaders } from './mail-headers';
import { hasQuotedPrintableResidue } from './mime-residue';

/** A mail's body as text. */
export interface MailBody {
  /**
   * The text/plain parts, else the text/html parts (markup kept: clean's `stripHtml` removes it),
   * else empty. A multipart/alternative counts once, by its plain version.
   */
  text: string;
  /** False when postal-mime refused the mail or found no part in it: `text` is then the body as it stands, as `stripMailHeaders` gives it. */
  parsed: boolean;
  /** True when the body is the HTML version: the mail has no text/plain part. */
  fromHtml: boolean;
  /** Parts left out as attachments (files, images, non-text parts, parts marked `attachment`). */
  attachments: number;
  /** True when the mail's characters were turned back into Windows-1252 bytes for its declared charsets (see mailBytes). */
  legacyBytes: boolean;
  /** True when text parts that declare no charset were read as Windows-1252, because their bytes were not UTF-8. */
  undeclaredAsWindows1252: boolean;
  /** True when text parts labelled 7bit or 8bit (or not labelled) held quoted-printable, and were decoded as such. */
  relabelledQuotedPrintable: boolean;
  /** True when the body held a multipart its header did not announce (the header missing, or naming a boundary the body does not use), now decoded too. */
  repairedMultipart: boolean;
  /** The Subject header, its encoded words decoded; absent when the mail has none or postal-mime refused it. */
  subject?: string;
}

/**
 * The body of `text` if it is a mail, else undefined. Headers, MIME part headers and boundaries
 * and attachments are dropped; transfer encodings and charsets are decoded by postal-mime. Three
 * repairs for the broken mail that spam is full of, each a second parse of a corrected copy, kept
 * only when it helps: a text part that declares no charset and is not UTF-8 is read as Windows-1252
 * (as collect's `utf-8-or-windows-1252` reads files); a part labelled 7bit or 8bit whose text is
 * quoted-printable is decoded as such; and a body that holds a multipart its header did not
 * announce — the header missing, or naming a boundary the body does not use — is parsed as one.
 * A mail postal-mime refuses (its limits on header size and nesting) keeps its body as it stands,
 * without the top header block.
 */
export async function decodeMail(text: string): Promise<MailBody | undefined> {
  const block = findMailHeaders(text);
  if (block === undefined) return undefined;
  const mail = block.start === 0 ? text : text.slice(block.start);
  const rawBody = text.slice(block.bodyStart);
  let source = mail;
  let body = await parseMail(source);
  if (body && replacementCharacters(body.text) > replacementCharacters(mail)) {
    // Bytes that are not UTF-8 in a part without a charset: postal-mime assumed UTF-8.
    const retrySource = withCharsetDefault(source, 'windows-1252');
    const retry = await parseMail(retrySource);
    if (retry && replacementCharacters(retry.text) < replacementCharacters(body.text)) {
      source = retrySource;
      body = { ...retry, undeclaredAsWindows1252: true };
    }
  }
  if (body && hasQuotedPrintableResidue(body.fromHtml ? stripHtml(body.text) : body.text)) {
    // Quoted-printable text in a part labelled 7bit or 8bit (or not labelled): decoded only when
    // that clears it, so text that merely holds an `=3D` stays as it is. HTML is judged by its
    // text, so that attributes (`width=20 `) do not count.
    const retry = await parseMail(withQuotedPrintable(source));
    if (retry && !hasQuotedPrintableResidue(retry.fromHtml ? stripHtml(retry.text) : retry.text)) {
      body = { ...retry, undeclaredAsWindows1252: body.undeclaredAsWindows1252, relabelledQuotedPrintable: true };
    }
  }
  const result: MailBody = body ?? {
    text: rawBody,
    parsed: false,
    fromHtml: false,
    attachments: 0,
    legacyBytes: false,
    undeclaredAsWindows1252: false,
    relabelledQuotedPrintable: false,
    repairedMultipart: false,
  };
  // A mismatched boundary leaves the header's multipart type right (alternative: one version of the text).
  const declared = /^content-type[ \t]*:[ \t]*multipart\/([a-z-]+)/im.exec(text.slice(block.start, block.bodyStart));
  return repairEmbeddedMultipart(result, declared ? declared[1].toLowerCase() : 'mixed', 0);
}

/** What postal-mime makes of `mail`, or undefined when it refuses it or finds no part at all. */
async function parseMail(mail: string): Promise<MailBody | undefined> {
  const { bytes, legacy } = mailBytes(mail);
  let email: PostalMime.Email;
  try {
    email = await PostalMime.parse(bytes);
  } catch {
    return undefined;
  }
  // A multipart mail whose boundary never occurs parses to nothing: its body is all there is.
  if (email.text === undefined && email.html === undefined && email.attachments.length === 0) return undefined;
  return {
    text: c1AsWindows1252(email.text ?? email.html ?? ''),
    parsed: true,
    fromHtml: email.text === undefined && email.html !== undefined,
    attachments: email.attachments.length,
    legacyBytes: legacy,
    undeclaredAsWindows1252: false,
    relabelledQuotedPrintable: false,
    repairedMultipart: false,
    ...(email.subject !== undefined ? { subject: email.subject } : {}),
  };
}

/** Multipart repairs (each a re-parse) one body goes through at most: a multipart inside a multipart inside the body. */
const MAX_REPAIRS = 2;

/**
 * Most text a body may have before an unannounced multipart: MIME's customary note ("This is a
 * multi-part message in MIME format."), not prose that quotes a MIME message as an example.
 */
const MAX_PREAMBLE_LINES = 3;
const MAX_PREAMBLE_CHARS = 300;

/** A line `--boundary` followed by a part header: how a multipart body looks. */
const EMBEDDED_BOUNDARY = /^--([^\r\n]*[^\s-][^\r\n]*?)[ \t]*\r?\n(?:content-(?:type|transfer-encoding|disposition)\s*:)/im;

/**
 * A body that holds a multipart its header did not announce, parsed as one (as `subtype`: the
 * header's when it declared a multipart whose boundary does not occur, else mixed); its preamble (text
 * before the first boundary) and epilogue (after the closing one) are kept, as they are text.
 * Only when the multipart opens the body (after at most a short preamble) and its boundary line
 * occurs again further on, so that prose quoting a MIME message, or a lone `--` line, is left alone.
 */
async function repairEmbeddedMultipart(body: MailBody, subtype: string, repairs: number): Promise<MailBody> {
  if (repairs >= MAX_REPAIRS || !body.text.includes('--')) return body;
  const found = EMBEDDED_BOUNDARY.exec(body.text);
  if (!found) return body;
  const preamble = body.text.slice(0, found.index);
  if (preamble.length > MAX_PREAMBLE_CHARS || preamble.split('\n').filter((line) => line.trim() !== '').length > MAX_PREAMBLE_LINES) return body;
  const boundary = found[1];
  const delimiter = `\n--${boundary}`;
  const last = body.text.lastIndexOf(delimiter);
  if (last < found.index) return body;
  const closing = body.text.indexOf(`${delimiter}--`, found.index);
  const end = closing === -1 ? body.text.length : body.text.indexOf('\n', closing + delimiter.length + 2);
  const embedded = body.text.slice(found.index, end === -1 ? body.text.length : end);
  const inner = await parseMail(`MIME-Version: 1.0\nContent-Type: multipart/${subtype}; boundary="${boundary.replace(/"/g, '')}"\n\n${embedded}`);
  if (!inner) return body;
  const epilogue = end === -1 ? '' : body.text.slice(end);
  const repaired: MailBody = {
    ...inner,
    text: [preamble.trim(), inner.text, epilogue.trim()].filter((part) => part !== '').join('\n\n'),
    attachments: body.attachments + inner.attachments,
    undeclaredAsWindows1252: body.undeclaredAsWindows1252,
    relabelledQuotedPrintable: body.relabelledQuotedPrintable,
    repairedMultipart: true,
    subject: body.subject,
  };
  return repairEmbeddedMultipart(repaired, 'mixed', repairs + 1);
}

const REPLACEMENT = /\ufffd/g;

function replacementCharacters(text: string): number {
  return text.includes('\ufffd') ? (text.match(REPLACEMENT)?.length ?? 0) : 0;
}

/** `Content-Type` fields, folded lines included, anywhere (the top block and every part's headers). */
const CONTENT_TYPE_FIELD = /^content-type[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*/gim;
const CHARSET = /charset\s*=\s*["']?([^"';\s]+)/gi;
const UTF8 = /^utf-?8$/i;

/**
 * `mail` with `charset` added to every text Content-Type that names none, and a Content-Type
 * added to a top header block that has none (whose body is text/plain by default).
 */
function withCharsetDefault(mail: string, charset: string): string {
  const withCharsets = mail.replace(CONTENT_TYPE_FIELD, (field) =>
    /^content-type[ \t]*:\s*text\//i.test(field) && !/charset\s*=/i.test(field) ? `${field.trimEnd()}; charset=${charset}` : field,
  );
  const headerEnd = withCharsets.search(/\r?\n\r?\n/);
  const header = headerEnd === -1 ? withCharsets : withCharsets.slice(0, headerEnd);
  return /^content-type[ \t]*:/im.test(header) ? withCharsets : `Content-Type: text/plain; charset=${charset}\n${withCharsets}`;
}

const TRANSFER_ENCODING_FIELD = /^(content-transfer-encoding[ \t]*:[ \t]*)(?:7bit|8bit|binary)[ \t]*$/gim;

/** `mail` with every 7bit/8bit/binary transfer encoding, and a top header block's missing one, made quoted-printable. */
function withQuotedPrintable(mail: string): string {
  const relabelled = mail.replace(TRANSFER_ENCODING_FIELD, '$1quoted-printable');
  const headerEnd = relabelled.search(/\r?\n\r?\n/);
  const header = headerEnd === -1 ? relabelled : relabelled.slice(0, headerEnd);
  return /^content-transfer-encoding[ \t]*:/im.test(header) ? relabelled : `Content-Transfer-Encoding: quoted-printable\n${relabelled}`;
}

/** Windows-1252's characters for bytes 0x80–0x9F, as activities/data/decode.ts reads them (unassigned bytes keep their C1 code point). */
const WINDOWS_1252_C1 =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';
/** The same, by character: the byte each stands for. */
const WINDOWS_1252_HIGH = new Map<number, number>([...WINDOWS_1252_C1].map((c, i) => [c.charCodeAt(0), 0x80 + i]));

/**
 * `text` with C1 controls read as the Windows-1252 characters of their bytes. Text has no C1
 * controls; they come from a decoder that read Windows-1252 or Latin-1 bytes as ISO-8859-1 (Node
 * 20's TextDecoder does, for both labels; WHATWG, and Node 24, read both as Windows-1252), or from
 * such characters encoded once more as UTF-8.
 */
function c1AsWindows1252(text: string): string {
  return /[\u0080-\u009f]/.test(text) ? text.replace(/[\u0080-\u009f]/g, (c) => WINDOWS_1252_C1[c.charCodeAt(0) - 0x80]) : text;
}

/**
 * The bytes to parse `mail` from. Records hold text, not bytes, and MIME charsets apply to bytes.
 * Base64 and quoted-printable parts are ASCII, so any encoding gives their bytes back; 8-bit parts
 * are not. collect read each file as UTF-8, or as Windows-1252 when it was not UTF-8
 * (`utf-8-or-windows-1252`, the legacy mail case), so when every character has a Windows-1252
 * byte and the mail declares charsets none of which is UTF-8 (iso-8859-1, us-ascii, gb2312,
 * koi8-r, ...), the text is turned back into those bytes: postal-mime then decodes them by the
 * declared charset — the same characters for the Latin ones, the right ones instead of mojibake for
 * the others. Otherwise the bytes are UTF-8, which is also what postal-mime assumes for a part
 * without a charset.
 */
export function mailBytes(mail: string): { bytes: Uint8Array; legacy: boolean } {
  if (/^[\u0000-\u007f]*$/.test(mail)) return { bytes: Buffer.from(mail, 'latin1'), legacy: false };
  let declared = false;
  for (const [field] of mail.matchAll(CONTENT_TYPE_FIELD)) {
    for (const [, charset] of field.matchAll(CHARSET)) {
      if (UTF8.test(charset)) return { bytes: Buffer.from(mail, 'utf8'), legacy: false };
      declared = true;
    }
  }
  const legacy = declared ? windows1252Bytes(mail) : undefined;
  return legacy ? { bytes: legacy, legacy: true } : { bytes: Buffer.from(mail, 'utf8'), legacy: false };
}

/** `text` as Windows-1252 bytes, or undefined when a character has none. */
function windows1252Bytes(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80 || (c >= 0xa0 && c <= 0xff)) {
      bytes[i] = c;
      continue;
    }
    const byte = WINDOWS_1252_HIGH.get(c) ?? (c <= 0x9f && c >= 0x80 ? c : undefined);
    if (byte === undefined) return undefined;
    bytes[i] = byte;
  }
  return bytes;
}
