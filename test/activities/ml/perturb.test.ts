import { distance } from 'fastest-levenshtein';
import { createRandom, type Random } from '../../../activities/data/random';
import { synonymsFromTable } from '../../../activities/data/synonym-source';
import { keyboardNeighbours, perturbText } from '../../../activities/ml/perturb';

const WORD = /[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*/gu;

/** `count` random lowercase ASCII words of 3-8 letters, space-separated. */
function randomWords(random: Random, count: number): string[] {
  return Array.from({ length: count }, () =>
    Array.from({ length: 3 + random.int(6) }, () => String.fromCharCode(97 + random.int(26))).join(''),
  );
}

/** True when `after` is `before` with one swap of adjacent characters, deletion, or keyboard-neighbour insertion/substitution. */
function isOneTypo(before: string, after: string): boolean {
  const a = Array.from(before);
  const b = Array.from(after);
  if (b.length === a.length - 1) return distance(before, after) === 1;
  if (b.length === a.length + 1) {
    // some character, once removed, leaves the original, and is a neighbour of the one before it
    return b.some((c, k) => k > 0 && keyboardNeighbours(b[k - 1]).includes(c) && [...b.slice(0, k), ...b.slice(k + 1)].join('') === before);
  }
  if (b.length !== a.length) return false;
  const diff = a.flatMap((c, k) => (c !== b[k] ? [k] : []));
  if (diff.length === 1) return keyboardNeighbours(a[diff[0]]).includes(b[diff[0]]);
  return diff.length === 2 && diff[1] === diff[0] + 1 && a[diff[0]] === b[diff[1]] && a[diff[1]] === b[diff[0]];
}

describe('keyboardNeighbours', () => {
  it('gives touching QWERTY keys in the character case', () => {
    expect([...keyboardNeighbours('s')].sort().join('')).toBe('adewxz');
    expect([...keyboardNeighbours('q')].sort().join('')).toBe('12aw');
    expect(keyboardNeighbours('G')).toBe(keyboardNeighbours('g').toUpperCase());
    expect(keyboardNeighbours('é')).toBe('');
  });
});

describe('perturbText', () => {
  const text = "The quick brown fox, don't you know?\n\tIt JUMPS over 3 lazy dogs... 日本語 and 𝒜𝒞𝒟, rock'n'roll.\r\n";

  it('leaves the text alone at zero rates, counting words', () => {
    expect(perturbText(text, {}, createRandom(1))).toEqual({
      text,
      counts: { words: 16, typos: 0, synonyms: 0, caseChanges: 0 },
    });
  });

  it('is deterministic for a seed and changes with it', () => {
    const options = { typos: 0.5, case: 0.3 };
    const a = perturbText(text, options, createRandom(7));
    expect(perturbText(text, options, createRandom(7))).toEqual(a);
    const fn = createRandom(7);
    expect(perturbText(text, options, () => fn.next())).toEqual(a); // a bare () => number works too
    expect(perturbText(text, options, createRandom(8)).text).not.toBe(a.text);
  });

  it('changes words only, never spacing, punctuation or surrogate pairs', () => {
    for (let seed = 0; seed < 50; seed++) {
      const { text: out } = perturbText(text, { typos: 1, case: 1 }, createRandom(seed));
      expect(out.replace(WORD, '')).toBe(text.replace(WORD, ''));
      expect(Buffer.from(out, 'utf8').toString('utf8')).toBe(out); // no lone surrogate
    }
  });

  it('makes one typo per chosen word at the requested rate', () => {
    const words = randomWords(createRandom(3), 4000);
    const { text: out, counts } = perturbText(words.join(' '), { typos: 0.3 }, createRandom(4));
    expect(counts.words).toBe(4000);
    expect(counts.typos / counts.words).toBeGreaterThan(0.27);
    expect(counts.typos / counts.words).toBeLessThan(0.33);
    const after = out.split(' ');
    expect(after).toHaveLength(4000);
    const changed = words.filter((w, i) => w !== after[i]);
    expect(changed.length).toBe(counts.typos); // every typo changes its word
    words.forEach((w, i) => {
      if (w !== after[i]) expect([w, after[i], isOneTypo(w, after[i])]).toEqual([w, after[i], true]);
    });
  });

  it('uses every kind of typo', () => {
    const words = randomWords(createRandom(5), 2000);
    const after = perturbText(words.join(' '), { typos: 1 }, createRandom(6)).text.split(' ');
    const kinds = { shorter: 0, longer: 0, sameLength: 0 };
    words.forEach((w, i) => {
      if (after[i].length < w.length) kinds.shorter++;
      else if (after[i].length > w.length) kinds.longer++;
      else kinds.sameLength++;
    });
    // deletion, insertion, and swap + substitution: 1/4, 1/4, 1/2 of 2000
    expect(kinds.shorter).toBeGreaterThan(400);
    expect(kinds.longer).toBeGreaterThan(400);
    expect(kinds.sameLength).toBeGreaterThan(850);
  });

  it('recases words at the requested rate', () => {
    const words = randomWords(createRandom(7), 4000);
    const { text: out, counts } = perturbText(words.join(' '), { case: 0.2 }, createRandom(8));
    expect(counts.caseChanges / counts.words).toBeGreaterThan(0.18);
    expect(counts.caseChanges / counts.words).toBeLessThan(0.22);
    const after = out.split(' ');
    words.forEach((w, i) => {
      if (after[i] !== w) expect([w.toUpperCase(), w[0].toUpperCase() + w.slice(1)]).toContain(after[i]);
    });
  });

  it('swaps in synonyms at the requested rate, keeping capitalisation', () => {
    const synonyms = synonymsFromTable({ big: ['large', 'huge'], quick: ['fast'], dog: ['hound'] });
    const words = Array.from({ length: 3000 }, (_, i) => ['big', 'quick', 'dog'][i % 3]);
    const { text: out, counts } = perturbText(words.join(' '), { synonyms: 0.4 }, createRandom(9), synonyms);
    expect(counts.synonyms / counts.words).toBeGreaterThan(0.37);
    expect(counts.synonyms / counts.words).toBeLessThan(0.43);
    expect(new Set(out.split(' '))).toEqual(new Set(['big', 'quick', 'dog', 'large', 'huge', 'fast', 'hound']));

    const cased = perturbText('Big DOG quick cat', { synonyms: 1 }, createRandom(1), synonyms);
    expect(cased.text).toMatch(/^(Large|Huge) HOUND fast cat$/);
    expect(cased.counts.synonyms).toBe(3); // "cat" has no synonym
    expect(perturbText('big', { synonyms: 1 }, createRandom(1)).text).toBe('big'); // no source, no swap
  });

  it('rejects probabilities outside [0, 1]', () => {
    expect(() => perturbText('a', { typos: 1.5 }, createRandom(1))).toThrow(/typos probability 1.5 is not in \[0, 1\]/);
    expect(() => perturbText('a', { case: NaN }, createRandom(1))).toThrow(RangeError);
  });
});
