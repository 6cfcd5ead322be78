// What a mail decoder can leave behind in text: MIME structure, transfer encodings, HTML
// entities. The residue bench (bench/clean-residue.ts) and clean's tests measure clean with it.
// Each check looks for the encoding's own marks, and leaves alone what text has of its own: a
// base64-padded token, `!=` in code, a `-=-=-` ruler, and PGP armor (signatures and keys are base64
// the author put in the text, not a transfer encoding).

import { decodeEntities } from './html';

/** Kinds of residue, each a yes/no per text. */
export interface MimeResidue {
  /** A `Content-Type:` or `Content-Transfer-Encoding:` line: a MIME part header (or one quoted in the text, as a forwarded header block). */
  partHeaders: boolean;
  /** A line opening with `--` and a multipart boundary the mail declared. */
  boundaries: boolean;
  /** Quoted-printable left encoded: `=3D`, `=20` before a space, `=` or the line end, two escapes in a row (`=E9=E8`), or a soft line break (a word ending in `=` at the end of a line). */
  quotedPrintable: boolean;
  /** Base64 left encoded: BASE64_RUN_LINES or more consecutive lines of 60–76 base64 characters. */
  base64: boolean;
  /** An HTML character reference (`&amp;`, `&#8217;`, ...) that decodes to something else. */
  entities: boolean;
}

export const RESIDUE_KINDS = ['partHeaders', 'boundaries', 'quotedPrintable', 'base64', 'entities'] as const satisfies ReadonlyArray<keyof MimeResidue>;

/** Consecutive base64-looking lines that make a run: one or two such lines also occur in text (hashes, keys). */
export const BASE64_RUN_LINES = 3;

const PART_HEADER = /^(?:content-type|content-transfer-encoding)[ \t]*:/im;
const QP_ESCAPE = /=3D|=20(?=[\s=]|$)|=[0-9A-F]{2}=[0-9A-F]{2}/m;
/** A line ending in a soft break: a word character, then `=`. */
const SOFT_BREAK = /[A-Za-z0-9]=$/;
/** The last word of a line when it is base64 with padding (`YXRjaC5jb20=`): not a soft break. */
/** An `=` that is not a quoted-printable escape. */
const OTHER_EQUALS = /=(?![0-9A-F]{2})/;
const PADDED_BASE64 = /(?:^|\s)((?:[A-Za-z0-9+/]{4})*[A-Za-z0-9+/]{2,3}=)$/;
const BASE64_LINE = /^(?=.{60,76}$)[A-Za-z0-9+/]+={0,2}$/;
const REFERENCE = /&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});/g;
const BOUNDARY_PARAMETER = /boundary\s*=\s*(?:"([^"\r\n]+)"|([^\s;"]+))/gi;
/** Armor of a signature, key or encrypted message; a clearsigned message's own text (`BEGIN PGP SIGNED MESSAGE`) is text. */
const ARMOR_BEGIN = /^-----BEGIN PGP (?!SIGNED MESSAGE)[A-Z ]+-----$/;
const ARMOR_END = /^-----END PGP [A-Z ]+-----$/;

/** The multipart boundaries `raw` declares (in its top header block or any part's). */
export function declaredBoundaries(raw: string): string[] {
  return [...new Set([...raw.matchAll(BOUNDARY_PARAMETER)].map((m) => m[1] ?? m[2]))];
}

/** What residue `text` holds; `boundaries` are the ones its source mail declared (declaredBoundaries). */
export function findMimeResidue(text: string, boundaries: readonly string[] = []): MimeResidue {
  const lines = linesOutsideArmor(text);
  return {
    partHeaders: PART_HEADER.test(text),
    boundaries: boundaries.length > 0 && lines.some((line) => line.startsWith('--') && boundaries.some((b) => line.startsWith(b, 2))),
    quotedPrintable: hasQuotedPrintable(lines, text),
    base64: hasBase64Run(lines),
    entities: hasEntity(text),
  };
}

/**
 * A line quoted-printable would end with a soft break: a word character then `=` at the end, every
 * other `=` an escape (QP writes a literal `=` as `=3D`), and its last word neither base64 padding
 * nor a URL with an empty query value (`?sid=`).
 */
/** True when `text` holds quoted-printable left encoded (see MimeResidue.quotedPrintable). */
export function hasQuotedPrintableResidue(text: string): boolean {
  return text.includes('=') && hasQuotedPrintable(linesOutsideArmor(text), text);
}

function hasQuotedPrintable(lines: readonly string[], text: string): boolean {
  return text.includes('=') && (QP_ESCAPE.test(text) || lines.some(isSoftBreak));
}

function isSoftBreak(line: string): boolean {
  if (!SOFT_BREAK.test(line) || PADDED_BASE64.test(line)) return false;
  if (OTHER_EQUALS.test(line.slice(0, -1))) return false;
  const lastWord = line.slice(line.search(/\S+$/));
  return !/[?&]|:\/\//.test(lastWord);
}

/** Lines of `text` (trailing whitespace trimmed) that are not inside a PGP armor block. */
function linesOutsideArmor(text: string): string[] {
  const lines: string[] = [];
  let inArmor = false;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (inArmor) {
      if (ARMOR_END.test(line)) inArmor = false;
    } else if (ARMOR_BEGIN.test(line)) {
      inArmor = true;
    } else {
      lines.push(line);
    }
  }
  return lines;
}

function hasBase64Run(lines: readonly string[]): boolean {
  let run = 0;
  for (const line of lines) {
    run = BASE64_LINE.test(line) ? run + 1 : 0;
    if (run >= BASE64_RUN_LINES) return true;
  }
  return false;
}

function hasEntity(text: string): boolean {
  if (!text.includes('&')) return false;
  for (const [reference] of text.matchAll(REFERENCE)) {
    if (decodeEntities(reference) !== reference) return true;
  }
  return false;
}
