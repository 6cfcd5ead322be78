import { isIPv6 } from 'node:net';
import type { CleanOptions } from '../../pipelines/stage-types';

/** Which kinds of sensitive data to replace (clean's `redact` when not `false`). */
export type RedactOptions = Exclude<CleanOptions['redact'], false>;

/** Replacements made, per kind. */
export interface RedactionCounts {
  emails: number;
  phones: number;
  ips: number;
  cards: number;
}

// Each pattern finds candidates; the replacer validates them (Luhn, digit counts, net.isIPv6) and
// returns the candidate unchanged when it is not the real thing. Lookarounds keep matches from
// starting or ending inside longer tokens, which is what protects years, versions and ids.

const EMAIL = /(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])/g;

// IPv6 candidates: 3+ colon-separated hex groups (or `::` forms), possibly ending in dotted IPv4.
const IPV6 = /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])/g;
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
// Exactly four octets: `1.2.3` (versions) and `1.2.3.4.5` (OIDs, longer versions) are left alone.
const IPV4 = new RegExp(`(?<![\\d.])${OCTET}(?:\\.${OCTET}){3}(?!\\.?\\d)`, 'g');

// 13–19 digits, either contiguous or in groups of 3–6 split by single spaces or dashes (4-4-4-4, 4-6-5),
// standing alone: digit runs inside identifiers, CSS classes, URL paths and file names (`SB1234…,00.html`,
// `.a1234…-footer`, `/10/1234….htm`) are not cards, and 1 in 10 of them would pass Luhn by chance.
const CARD = /(?<![\w./-])(?:\d{13,19}|\d{3,6}(?:[ -]\d{3,6}){2,5})(?![\w-]|\.\w)/g;

// International: `+` country code, then groups; 8–15 digits in all (E.164 allows at most 15).
const PHONE_INTERNATIONAL = /(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,6}(?![\w]|[.-]\d)/g;
// North American: (202) 555-0143, 202-555-0143, 202.555.0143, 202 555 0143, 1-800-555-0199.
// A separator (or parentheses) is required, so bare 10-digit ids and 4-digit years never match.
const PHONE_US = /(?<![\w+(.-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w]|[.-]\d)/g;

/** Luhn checksum, as card numbers carry. */
export function passesLuhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Replaces the enabled kinds with `<EMAIL>`, `<PHONE>`, `<IP>`, `<CARD>` and counts replacements. */
export function redactSensitive(text: string, options: RedactOptions): { text: string; counts: RedactionCounts } {
  const counts: RedactionCounts = { emails: 0, phones: 0, ips: 0, cards: 0 };
  let out = text;
  // Order matters: e-mails first (their local parts may hold digits), IPs before cards and phones
  // (dotted quads look like phone groups), cards before phones (card groups look like phone groups).
  if (options.emails) {
    out = out.replace(EMAIL, () => {
      counts.emails++;
      return '<EMAIL>';
    });
  }
  if (options.ips) {
    out = out.replace(IPV6, (candidate) => {
      // Digits are required so that code like `Foo::bar::baz` is never taken for an address.
      if (!/\d/.test(candidate) || !isIPv6(candidate)) return candidate;
      counts.ips++;
      return '<IP>';
    });
    out = out.replace(IPV4, () => {
      counts.ips++;
      return '<IP>';
    });
  }
  if (options.cards) {
    out = out.replace(CARD, (candidate) => {
      const digits = candidate.replace(/[ -]/g, '');
      if (digits.length < 13 || digits.length > 19 || !passesLuhn(digits)) return candidate;
      counts.cards++;
      return '<CARD>';
    });
  }
  if (options.phones) {
    out = out.replace(PHONE_INTERNATIONAL, (candidate) => {
      const digits = candidate.replace(/\D/g, '').length;
      if (digits < 8 || digits > 15) return candidate;
      counts.phones++;
      return '<PHONE>';
    });
    out = out.replace(PHONE_US, () => {
      counts.phones++;
      return '<PHONE>';
    });
  }
  return { text: out, counts };
}
