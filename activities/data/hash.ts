import { createHash } from 'node:crypto';

// Bound once at module level: inside vm contexts (jest, sandboxes) every lookup of a global such as
// `Math` goes through an interceptor, which made the hashing loops ~50x slower there.
const imul = Math.imul;

/** 32-bit FNV-1a of a string's UTF-16 code units; `seed` (default the FNV offset basis) varies it. */
export function fnv1a32(text: string, seed = 0x811c9dc5): number {
  let h = seed | 0;
  for (let i = 0; i < text.length; i++) {
    h = imul(h ^ text.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finalizer: a bijection on 32-bit integers with full avalanche. */
export function fmix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hex sha256 of a UTF-8 string. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** First `length` (default 16) hex digits of sha256: 64 bits, ample for ids within one dataset. */
export function shortSha256(text: string, length = 16): string {
  return sha256Hex(text).slice(0, length);
}
