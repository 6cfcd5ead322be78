import type { CollectOptions } from '../../pipelines/stage-types';
import { InvalidUtf8Error } from './errors';

/** How collect turns file bytes into text (collect `encoding`). `utf-8` rejects invalid bytes;
 * `utf-8-or-windows-1252` falls back per file to Windows-1252, the usual charset of legacy mail corpora. */
export type TextEncodingPolicy = CollectOptions['encoding'];

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// Node's TextDecoder('windows-1252') decodes as ISO-8859-1 (0x80–0x9F stay C1 controls), so the
// one range where the two differ is mapped here. Unassigned bytes keep their C1 code point, as WHATWG does.
const WINDOWS_1252_C1 =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/** Decodes UTF-8 (a BOM is dropped); throws InvalidUtf8Error naming `file` and the first bad byte. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new InvalidUtf8Error(file, firstInvalidUtf8Offset(bytes));
  }
}

/** Decodes Windows-1252. */
export function decodeWindows1252(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('latin1')
    .replace(/[\u0080-\u009f]/g, (c) => WINDOWS_1252_C1[c.charCodeAt(0) - 0x80]);
}

/** Decodes per `policy`; `fellBack` tells whether the Windows-1252 fallback was used. */
export function decodeText(
  bytes: Uint8Array,
  file: string,
  policy: TextEncodingPolicy,
): { text: string; fellBack: boolean } {
  if (policy === 'utf-8') return { text: decodeUtf8(bytes, file), fellBack: false };
  try {
    return { text: strictUtf8.decode(bytes), fellBack: false };
  } catch {
    return { text: decodeWindows1252(bytes), fellBack: true };
  }
}

/** Offset of the byte at which UTF-8 decoding first fails, or -1 if `bytes` is valid UTF-8. */
export function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  // A streaming decoder throws as soon as a prefix contains an invalid sequence and only buffers an
  // incomplete trailing one, so "prefix fails" is monotonic in the prefix length: binary search it.
  // O(n log n), paid only on the error path.
  const prefixFails = (length: number): boolean => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, length), { stream: true });
      return false;
    } catch {
      return true;
    }
  };
  if (!prefixFails(bytes.length)) {
    try {
      strictUtf8.decode(bytes);
      return -1;
    } catch {
      // Only a truncated sequence at the very end: report where it starts.
      let start = bytes.length - 1;
      while (start > 0 && bytes.length - start < 4 && (bytes[start] & 0xc0) === 0x80) start--;
      return start;
    }
  }
  let low = 1;
  let high = bytes.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (prefixFails(mid)) high = mid;
    else low = mid + 1;
  }
  // Byte `failed` made decoding fail; if it interrupted a multi-byte sequence, that sequence's
  // lead byte is where the bad bytes start.
  const failed = low - 1;
  for (let j = failed - 1; j >= 0 && j >= failed - 3; j--) {
    const b = bytes[j];
    if ((b & 0xc0) === 0x80) continue;
    const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return j + length > failed ? j : failed;
  }
  return failed;
}
