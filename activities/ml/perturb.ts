import type { Random } from '../data/random';
import type { SynonymSource } from '../data/synonym-source';

// Robustness perturbations: the noise real inputs carry (typos, paraphrase, careless casing),
// applied per word with given probabilities so that a model's score on perturbed test inputs can
// be compared with its score on clean ones. Only words change; spacing, punctuation and line
// breaks are left exactly as they were.

/** Per-word probabilities, each in [0, 1]; a word may receive several kinds. */
export interface PerturbOptions {
  /** Probability of one typo (adjacent swap, deletion, keyboard-neighbour insertion or substitution). Default 0. */
  typos?: number;
  /** Probability of replacing a word that has synonyms by a random one (needs a synonym source). Default 0. */
  synonyms?: number;
  /** Probability of recasing a word to another of lower / UPPER / Title case. Default 0. */
  case?: number;
}

/** How many perturbations were made. */
export type PerturbCounts = {
  /** Words seen (runs of letters, digits and inner apostrophes with at least one letter). */
  words: number;
  typos: number;
  synonyms: number;
  caseChanges: number;
};

/** A perturbed text and what was done to it. */
export interface PerturbResult {
  text: string;
  counts: PerturbCounts;
}

/** A seeded stream (activities/data/random's createRandom) or any function uniform on [0, 1). */
export type RandomSource = Random | (() => number);

/** A word: letters/digits/marks, optionally joined by apostrophes ("don't", "rock'n'roll"). */
const WORD = /[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*/gu;
const HAS_LETTER = /\p{L}/u;
const APOSTROPHES = "'’";

/** QWERTY rows; each row is shifted half a key right of the one above. */
const KEYBOARD_ROWS = ['1234567890', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm'];

/** Lowercase key → keys touching it (same row left/right, two above, two below). */
const KEYBOARD_NEIGHBOURS: ReadonlyMap<string, string> = (() => {
  const neighbours = new Map<string, string>();
  KEYBOARD_ROWS.forEach((row, r) => {
    for (let c = 0; c < row.length; c++) {
      const near = [row[c - 1], row[c + 1]];
      // The row above starts half a key left: columns c and c+1 touch; the row below, c-1 and c.
      if (r > 0) near.push(KEYBOARD_ROWS[r - 1][c], KEYBOARD_ROWS[r - 1][c + 1]);
      if (r + 1 < KEYBOARD_ROWS.length) near.push(KEYBOARD_ROWS[r + 1][c - 1], KEYBOARD_ROWS[r + 1][c]);
      neighbours.set(row[c], near.filter((k): k is string => k !== undefined).join(''));
    }
  });
  return neighbours;
})();

/** Keyboard neighbours of a character, in its case; empty for characters off the QWERTY letter/digit keys. */
export function keyboardNeighbours(char: string): string {
  const lower = char.toLowerCase();
  const near = KEYBOARD_NEIGHBOURS.get(lower) ?? '';
  return char === lower ? near : near.toUpperCase();
}

/**
 * Perturbs `text` word by word: each word independently gets, in this order, a synonym with
 * probability `synonyms` (when `synonymSource` knows one; the replacement keeps the word's
 * capitalisation), one typo with probability `typos`, and a case change with probability `case`.
 * A typo is one of the operations that apply to the word, chosen uniformly: swapping two different
 * adjacent characters, deleting a character (never the only one between apostrophes or word ends),
 * inserting a keyboard neighbour of a character after it, or substituting a character by a keyboard
 * neighbour. A case change picks
 * uniformly among lower, UPPER and Title case those that differ from the word. Words where the chosen
 * kind cannot apply (no synonym, one character with no neighbour key, nothing to recase) are left
 * as they are and not counted. All randomness comes from `random`, so a seeded source repeats exactly.
 */
export function perturbText(
  text: string,
  options: PerturbOptions,
  random: RandomSource,
  synonymSource?: SynonymSource,
): PerturbResult {
  const { typos = 0, synonyms = 0, case: casing = 0 } = options;
  for (const [name, p] of Object.entries({ typos, synonyms, case: casing })) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`perturbText: ${name} probability ${p} is not in [0, 1]`);
  }
  const next = typeof random === 'function' ? random : () => random.next();
  const pick = (n: number): number => Math.min(n - 1, Math.floor(next() * n));
  const counts: PerturbCounts = { words: 0, typos: 0, synonyms: 0, caseChanges: 0 };

  const perturbed = text.replace(WORD, (word) => {
    if (!HAS_LETTER.test(word)) return word;
    counts.words++;
    let out = word;
    if (synonyms > 0 && synonymSource && next() < synonyms) {
      const lower = word.toLowerCase();
      const candidates = synonymSource.synonyms(lower).filter((s) => s !== lower);
      if (candidates.length > 0) {
        out = matchCase(candidates[pick(candidates.length)], word);
        counts.synonyms++;
      }
    }
    if (typos > 0 && next() < typos) {
      const typo = applyTypo(out, pick);
      if (typo !== undefined) {
        out = typo;
        counts.typos++;
      }
    }
    if (casing > 0 && next() < casing) {
      const variants = [out.toLowerCase(), out.toUpperCase(), titleCase(out)].filter((v, i, all) => v !== out && all.indexOf(v) === i);
      if (variants.length > 0) {
        out = variants[pick(variants.length)];
        counts.caseChanges++;
      }
    }
    return out;
  });
  return { text: perturbed, counts };
}

type TypoKind = 'swap' | 'delete' | 'insert' | 'substitute';

/**
 * One random typo in `word`, or undefined if none applies. Works on code points, so a surrogate pair
 * is never split, and leaves apostrophes alone with a letter on each side, so the word stays one word.
 */
function applyTypo(word: string, pick: (n: number) => number): string | undefined {
  const chars = Array.from(word);
  const letter = (i: number): boolean => i >= 0 && i < chars.length && !APOSTROPHES.includes(chars[i]);
  const swappable = chars.flatMap((c, i) => (letter(i) && letter(i + 1) && c !== chars[i + 1] ? [i] : []));
  const deletable = chars.flatMap((_, i) => (letter(i) && (letter(i - 1) || letter(i + 1)) ? [i] : []));
  const keyed = chars.flatMap((c, i) => (keyboardNeighbours(c) !== '' ? [i] : []));
  const kinds: TypoKind[] = [];
  if (swappable.length > 0) kinds.push('swap');
  if (deletable.length > 0) kinds.push('delete');
  if (keyed.length > 0) kinds.push('insert', 'substitute');
  if (kinds.length === 0) return undefined;
  switch (kinds[pick(kinds.length)]) {
    case 'swap': {
      const i = swappable[pick(swappable.length)];
      [chars[i], chars[i + 1]] = [chars[i + 1], chars[i]];
      break;
    }
    case 'delete':
      chars.splice(deletable[pick(deletable.length)], 1);
      break;
    case 'insert': {
      const i = keyed[pick(keyed.length)];
      const near = keyboardNeighbours(chars[i]);
      chars.splice(i + 1, 0, near[pick(near.length)]);
      break;
    }
    case 'substitute': {
      const i = keyed[pick(keyed.length)];
      const near = keyboardNeighbours(chars[i]);
      chars[i] = near[pick(near.length)];
      break;
    }
  }
  return chars.join('');
}

/** `replacement` in the capitalisation of `original`: ALL CAPS, Capitalised, or as given. */
function matchCase(replacement: string, original: string): string {
  const upper = original.toUpperCase();
  if (original === upper && original !== original.toLowerCase() && Array.from(original).length > 1) return replacement.toUpperCase();
  const first = Array.from(original)[0];
  if (first !== first.toLowerCase()) return titleCase(replacement);
  return replacement;
}

function titleCase(word: string): string {
  const [first = '', ...rest] = Array.from(word);
  return first.toUpperCase() + rest.join('').toLowerCase();
}
