// Byte-level BPE (Sennrich et al., 2016; byte-level as in GPT-2, Radford et al., 2019).
//
// Text is cut into pre-tokens by GPT-2's pattern, each pre-token is turned into its UTF-8 bytes, and
// learned merges join adjacent symbols. Every one of the 256 byte values is a base token, so any
// string round-trips exactly: decode(encode(text)) === text, with no unknown token ever produced.
// (The one exception is a JS string holding a lone surrogate, which is not Unicode text and has no
// UTF-8 form: TextEncoder writes U+FFFD for it, as everywhere else in Node.)
//
// Token ids: the special tokens first (0..S-1, in the order given), then the 256 bytes (S + byte
// value), then each distinct token created by a merge, in merge order. See BpeTokenizerJson for the
// serialised form.

/** Special tokens when none are given: padding, begin/end of sequence, unknown. */
export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ['<pad>', '<bos>', '<eos>', '<unk>'];
/** The special tokens every tokenizer must have (the model pads and frames sequences with them). */
const REQUIRED_SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>'] as const;

/** Identifies the serialised format; bump `version` on any incompatible change. */
export const BPE_FORMAT = 'tempered.bpe';
export const BPE_FORMAT_VERSION = 1;

/**
 * GPT-2's pre-tokenizer: English contractions, runs of letters, of digits, and of other symbols,
 * each with at most one leading space, and whitespace runs that leave their last space to the word
 * after them. Every character falls in some match, so the pieces concatenate back to the text.
 * Whitespace is Unicode's White_Space (as in Python and Rust), not JS's `\s`, which differs on
 * U+FEFF and U+0085.
 */
const PRE_TOKEN_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** Per-word encodings kept by a tokenizer; the cache is cleared when it grows past this. */
const ENCODE_CACHE_ENTRIES = 100_000;
/** Longer pre-tokens (rare: whitespace or symbol runs) are encoded every time, not cached. */
const ENCODE_CACHE_MAX_WORD = 256;

// Bound once: inside vm contexts (jest) every global lookup in a hot loop is intercepted.
const floor = Math.floor;
const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF instead of silently dropping it.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const strictUtf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });

/** Options of trainBpe. */
export interface BpeTrainOptions {
  /** Final vocabulary size, counting special tokens and the 256 byte tokens. Required. */
  vocabSize: number;
  /** A pair must occur at least this often (counted over the corpus) to be merged. Default 2. */
  minFrequency?: number;
  /** Special tokens, ids 0.. in this order; must include <pad>, <bos> and <eos>. Default DEFAULT_SPECIAL_TOKENS. */
  specialTokens?: readonly string[];
}

/** Options of BpeTokenizer.decode. */
export interface DecodeOptions {
  /** Write special tokens as their text (e.g. `<eos>`) instead of dropping them. Default false. */
  keepSpecialTokens?: boolean;
}

/**
 * Serialised tokenizer, version 1 (`JSON.stringify(tokenizer)` writes it):
 * ```json
 * { "format": "tempered.bpe", "version": 1, "preTokenizer": "gpt2",
 *   "specialTokens": ["<pad>", "<bos>", "<eos>", "<unk>"],
 *   "merges": ["Ġ t", "h e", "Ġt he", ...] }
 * ```
 * `merges` are in priority order (first learned = applied first), each "left right" written in
 * GPT-2's byte-to-unicode alphabet, the one of GPT-2's and Hugging Face's merges.txt: every byte is
 * one printable character (bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ` stand for themselves; the other 68,
 * including space, map to U+0100 onwards: space is `Ġ`, `\n` is `Ċ`), so neither side contains a space.
 * Ids are implied: special tokens 0..S-1, bytes S..S+255, then each merge's result, in merge order,
 * unless an earlier token already has the same bytes (then the merge reuses that id).
 */
export interface BpeTokenizerJson {
  format: typeof BPE_FORMAT;
  version: typeof BPE_FORMAT_VERSION;
  /** The pre-tokenization pattern; only "gpt2" exists. */
  preTokenizer: 'gpt2';
  specialTokens: string[];
  merges: string[];
}

/** A tokenizer file or options that cannot be used; the message says what and how to fix it. */
export class TokenizerConfigError extends Error {
  override readonly name = 'TokenizerConfigError';
  readonly nonRetryable = true;
  constructor(
    readonly problem: string,
    fix: string,
  ) {
    super(`${problem}; ${fix}`);
  }
}

/** Cuts text into GPT-2 pre-tokens; `preTokenize(text).join('') === text`. */
export function preTokenize(text: string): string[] {
  return text.match(PRE_TOKEN_PATTERN) ?? [];
}

/** A merge rule: symbols `left` and `right`, adjacent, become `result`. */
interface Merge {
  left: number;
  right: number;
  result: number;
}

/** A byte-level BPE tokenizer: learned with trainBpe, or restored with BpeTokenizer.fromJSON. */
export class BpeTokenizer {
  /** Number of token ids (0..vocabSize-1). */
  readonly vocabSize: number;
  readonly specialTokens: readonly string[];
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Id of `<unk>` if it is a special token. Byte-level BPE never produces it; kept for models that reserve it. */
  readonly unkId: number | undefined;
  /** UTF-8 bytes of every token; empty for special tokens. */
  private readonly tokenBytes: Uint8Array[];
  private readonly merges: Merge[];
  /** Merge priority (index in `merges`) by pair key `left * vocabSize + right`. */
  private readonly rankByPair = new Map<number, number>();
  private readonly cache = new Map<string, readonly number[]>();

  /**
   * Builds a tokenizer from special tokens and merges given as pairs of token ids (see the id layout
   * at the top of this file); trainBpe and fromJSON are the usual ways in.
   */
  constructor(specialTokens: readonly string[], merges: readonly (readonly [number, number])[]) {
    checkSpecialTokens(specialTokens);
    this.specialTokens = [...specialTokens];
    const vocab = new ByteVocabulary(specialTokens.length);
    this.merges = merges.map(([left, right], rank) => {
      for (const id of [left, right]) {
        if (!Number.isInteger(id) || id < specialTokens.length || id >= vocab.size) {
          throw new TokenizerConfigError(
            `merge ${rank} ([${left}, ${right}]) refers to token ${id}, which is not a byte or merged token defined before it ` +
              `(valid: ${specialTokens.length}..${vocab.size - 1})`,
            'list merges in the order they were learned',
          );
        }
      }
      return { left, right, result: vocab.merge(left, right) };
    });
    this.tokenBytes = vocab.tokens;
    this.vocabSize = vocab.size;
    for (const [rank, { left, right }] of this.merges.entries()) {
      const key = left * this.vocabSize + right;
      if (!this.rankByPair.has(key)) this.rankByPair.set(key, rank);
    }
    const idOf = (token: string): number => this.specialTokens.indexOf(token);
    this.padId = idOf('<pad>');
    this.bosId = idOf('<bos>');
    this.eosId = idOf('<eos>');
    this.unkId = this.specialTokens.includes('<unk>') ? idOf('<unk>') : undefined;
  }

  /** Number of merge rules (may exceed the merged tokens when two merges spell the same bytes). */
  get mergeCount(): number {
    return this.merges.length;
  }

  /** Id of a special token, or undefined. */
  specialTokenId(token: string): number | undefined {
    const id = this.specialTokens.indexOf(token);
    return id < 0 ? undefined : id;
  }

  /**
   * Token ids of `text`. Special-token text in the input (e.g. a literal "<eos>") is encoded as
   * ordinary text, never as the special id, so data cannot inject control tokens.
   */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const word of preTokenize(text)) {
      let wordIds = this.cache.get(word);
      if (wordIds === undefined) {
        wordIds = this.encodeWord(utf8Encoder.encode(word));
        if (word.length <= ENCODE_CACHE_MAX_WORD) {
          if (this.cache.size >= ENCODE_CACHE_ENTRIES) this.cache.clear();
          this.cache.set(word, wordIds);
        }
      }
      for (let i = 0; i < wordIds.length; i++) ids.push(wordIds[i]);
    }
    return ids;
  }

  /**
   * Text of token ids. Byte sequences that are not valid UTF-8 (e.g. a generation cut inside a
   * multi-byte character) become U+FFFD. Throws RangeError on an id outside 0..vocabSize-1.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const specialCount = this.specialTokens.length;
    let bytes = new Uint8Array(Math.max(16, ids.length * 4));
    let length = 0;
    let text = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.checkId(id);
      if (id < specialCount) {
        if (!options.keepSpecialTokens) continue;
        text += utf8Decoder.decode(bytes.subarray(0, length)) + this.specialTokens[id];
        length = 0;
        continue;
      }
      const token = this.tokenBytes[id];
      if (length + token.length > bytes.length) {
        const grown = new Uint8Array(Math.max(bytes.length * 2, length + token.length));
        grown.set(bytes.subarray(0, length));
        bytes = grown;
      }
      bytes.set(token, length);
      length += token.length;
    }
    return text + utf8Decoder.decode(bytes.subarray(0, length));
  }

  /**
   * A token for humans: a special token's text; otherwise the token's text, with each byte that is
   * not part of a complete UTF-8 character written `<0xNN>` (e.g. `<0xE2>`).
   */
  tokenToString(id: number): string {
    this.checkId(id);
    if (id < this.specialTokens.length) return this.specialTokens[id];
    const bytes = this.tokenBytes[id];
    let out = '';
    let i = 0;
    outer: while (i < bytes.length) {
      for (let width = 1; width <= 4 && i + width <= bytes.length; width++) {
        try {
          out += strictUtf8Decoder.decode(bytes.subarray(i, i + width));
          i += width;
          continue outer;
        } catch {
          // not a complete character yet: try one more byte
        }
      }
      out += `<0x${bytes[i].toString(16).toUpperCase().padStart(2, '0')}>`;
      i++;
    }
    return out;
  }

  /** The serialised form (see BpeTokenizerJson); `JSON.stringify(tokenizer)` uses it. */
  toJSON(): BpeTokenizerJson {
    const name = (id: number): string => bytesToGpt2Unicode(this.tokenBytes[id]);
    return {
      format: BPE_FORMAT,
      version: BPE_FORMAT_VERSION,
      preTokenizer: 'gpt2',
      specialTokens: [...this.specialTokens],
      merges: this.merges.map(({ left, right }) => `${name(left)} ${name(right)}`),
    };
  }

  /** Restores a tokenizer from its serialised form (a parsed object or the JSON text). */
  static fromJSON(json: unknown): BpeTokenizer {
    const data: unknown = typeof json === 'string' ? parseJson(json) : json;
    const fix = `expected an object written by BpeTokenizer.toJSON() ({"format": "${BPE_FORMAT}", "version": ${BPE_FORMAT_VERSION}, ...})`;
    if (typeof data !== 'object' || data === null) throw new TokenizerConfigError('tokenizer JSON is not an object', fix);
    const record = data as Record<string, unknown>;
    if (record.format !== BPE_FORMAT) {
      throw new TokenizerConfigError(`tokenizer JSON has format ${JSON.stringify(record.format)}`, fix);
    }
    if (record.version !== BPE_FORMAT_VERSION) {
      throw new TokenizerConfigError(
        `tokenizer JSON has version ${JSON.stringify(record.version)}, this build reads version ${BPE_FORMAT_VERSION}`,
        'retrain the tokenizer or use the Tempered version that wrote it',
      );
    }
    if (record.preTokenizer !== 'gpt2') {
      throw new TokenizerConfigError(`tokenizer JSON has preTokenizer ${JSON.stringify(record.preTokenizer)}`, 'only "gpt2" exists');
    }
    const { specialTokens, merges } = record;
    if (!Array.isArray(specialTokens) || !specialTokens.every((t) => typeof t === 'string')) {
      throw new TokenizerConfigError('tokenizer JSON "specialTokens" is not an array of strings', fix);
    }
    if (!Array.isArray(merges) || !merges.every((m) => typeof m === 'string')) {
      throw new TokenizerConfigError('tokenizer JSON "merges" is not an array of strings', fix);
    }
    checkSpecialTokens(specialTokens);
    // Resolve the byte-to-unicode names to ids, replaying the id assignment of the constructor.
    const idByName = new Map<string, number>();
    for (let byte = 0; byte < 256; byte++) idByName.set(BYTE_TO_UNICODE[byte], specialTokens.length + byte);
    let nextId = specialTokens.length + 256;
    const pairs = merges.map((merge: string, rank): [number, number] => {
      const parts = merge.split(' ');
      const ids = parts.map((part) => idByName.get(part));
      if (parts.length !== 2 || ids[0] === undefined || ids[1] === undefined) {
        throw new TokenizerConfigError(
          `merge ${rank} ${JSON.stringify(merge)} is not two tokens known at that point, separated by one space`,
          'merges must list "left right" in learning order, in GPT-2 byte-to-unicode form',
        );
      }
      const name = parts[0] + parts[1];
      if (!idByName.has(name)) idByName.set(name, nextId++);
      return [ids[0], ids[1]];
    });
    return new BpeTokenizer(specialTokens, pairs);
  }

  /** BPE over one pre-token's bytes: repeatedly merge the adjacent pair of lowest rank, leftmost first. */
  private encodeWord(bytes: Uint8Array): number[] {
    const n = bytes.length;
    const base = this.specialTokens.length;
    if (n === 1) return [base + bytes[0]];
    // A doubly linked list of symbols and a min-heap of candidate merges keyed rank * n + position:
    // O(n log n) even for a long run of one character, where rescanning every pair would be O(n²).
    const symbol = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      symbol[i] = base + bytes[i];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap: number[] = [];
    const vocabSize = this.vocabSize;
    const rankByPair = this.rankByPair;
    const offer = (position: number): void => {
      const after = next[position];
      if (after < 0) return;
      const rank = rankByPair.get(symbol[position] * vocabSize + symbol[after]);
      if (rank !== undefined) heapPush(heap, rank * n + position);
    };
    for (let i = 0; i + 1 < n; i++) offer(i);
    while (heap.length > 0) {
      const top = heapPop(heap);
      const rank = floor(top / n);
      const position = top - rank * n;
      const after = next[position];
      // Stale entries: the left symbol was absorbed, or either symbol changed since the push.
      if (symbol[position] < 0 || after < 0) continue;
      const merge = this.merges[rank];
      if (symbol[position] !== merge.left || symbol[after] !== merge.right) continue;
      symbol[position] = merge.result;
      symbol[after] = -1;
      const afterAfter = next[after];
      next[position] = afterAfter;
      if (afterAfter >= 0) prev[afterAfter] = position;
      if (prev[position] >= 0) offer(prev[position]);
      offer(position);
    }
    const ids: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) ids.push(symbol[i]);
    return ids;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside this tokenizer's vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}

/**
 * Learns a byte-level BPE tokenizer from texts (read once; each text is pre-tokenized on its own).
 * Merges are learned until the vocabulary has `vocabSize` tokens or no adjacent pair occurs
 * `minFrequency` times. Each step merges the most frequent pair. Ties go to the pair that comes first
 * in (left, right) order, tokens ordered as Hugging Face tokenizers orders them: byte tokens by their
 * GPT-2 byte-to-unicode character, then merged tokens by creation. So the result depends only on the
 * word counts, not on input order, and the merges equal those of `tokenizers`' BpeTrainer with a
 * ByteLevel pre-tokenizer (add_prefix_space=False) and the full byte alphabet — checked in the tests.
 *
 * Cost: pre-tokenized words are counted once; each merge then visits only the distinct words that
 * contain the pair (an index from pair to words) and updates pair counts by difference, with a
 * lazily invalidated max-heap choosing the next pair.
 */
export function trainBpe(texts: Iterable<string>, options: BpeTrainOptions): BpeTokenizer {
  const { vocabSize, minFrequency = 2, specialTokens = DEFAULT_SPECIAL_TOKENS } = options;
  checkSpecialTokens(specialTokens);
  const base = specialTokens.length;
  if (!Number.isInteger(vocabSize) || vocabSize < base + 256 || vocabSize > 2 ** 20) {
    throw new TokenizerConfigError(
      `vocabSize ${vocabSize} is not an integer in ${base + 256}..${2 ** 20}`,
      `set vocabSize to at least ${base} special + 256 byte tokens plus the merges wanted (e.g. 2000-8000)`,
    );
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new TokenizerConfigError(`minFrequency ${minFrequency} is not a positive integer`, 'use 2 (the default) or more');
  }

  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const word of preTokenize(text)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  }

  // Distinct words as symbol sequences; single-byte words can never merge and are dropped.
  const words: Int32Array[] = [];
  const frequency: number[] = [];
  for (const [word, count] of wordCounts) {
    const bytes = utf8Encoder.encode(word);
    if (bytes.length < 2) continue;
    const symbols = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) symbols[i] = base + bytes[i];
    words.push(symbols);
    frequency.push(count);
  }
  wordCounts.clear();

  // Pair key = left * vocabSize + right (ids stay below vocabSize).
  const pairCount = new Map<number, number>();
  const wordsWithPair = new Map<number, number[]>();
  const noteWord = (key: number, word: number): void => {
    const list = wordsWithPair.get(key);
    if (list === undefined) wordsWithPair.set(key, [word]);
    else if (list[list.length - 1] !== word) list.push(word);
  };
  for (let w = 0; w < words.length; w++) {
    const symbols = words[w];
    const count = frequency[w];
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = symbols[i] * vocabSize + symbols[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + count);
      noteWord(key, w);
    }
  }
  // The heap orders pairs by tie-break rank: byte tokens sorted by their byte-to-unicode character
  // (so space, `Ġ`, sorts after the printable bytes), merged tokens by id. `idAtRank` inverts it.
  const rankOf = new Int32Array(vocabSize);
  const idAtRank = new Int32Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) rankOf[id] = id;
  BYTES_BY_UNICODE.forEach((byte, position) => (rankOf[base + byte] = base + position));
  for (let id = 0; id < vocabSize; id++) idAtRank[rankOf[id]] = id;
  const heap = new PairHeap();
  const push = (count: number, key: number): void => {
    const left = floor(key / vocabSize);
    heap.push(count, rankOf[left] * vocabSize + rankOf[key - left * vocabSize]);
  };
  for (const [key, count] of pairCount) push(count, key);

  const vocab = new ByteVocabulary(base);
  const merges: [number, number][] = [];
  const visited = new Int32Array(words.length);
  let stamp = 0;
  while (vocab.size < vocabSize && heap.size > 0) {
    // Pop until an entry matches its pair's current count (counts only fall between pushes).
    const count = heap.topCount();
    const ranked = heap.pop();
    const leftRank = floor(ranked / vocabSize);
    const left = idAtRank[leftRank];
    const right = idAtRank[ranked - leftRank * vocabSize];
    const key = left * vocabSize + right;
    const current = pairCount.get(key);
    if (current !== count) {
      if (current !== undefined && current < count) push(current, key);
      continue;
    }
    if (count < minFrequency) break;

    const result = vocab.merge(left, right);
    merges.push([left, right]);

    const delta = new Map<number, number>();
    const add = (pair: number, amount: number): void => {
      delta.set(pair, (delta.get(pair) ?? 0) + amount);
    };
    stamp++;
    for (const w of wordsWithPair.get(key) ?? []) {
      if (visited[w] === stamp) continue;
      visited[w] = stamp;
      const symbols = words[w];
      const n = symbols.length;
      let first = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) {
          first = i;
          break;
        }
      }
      if (first < 0) continue; // the pair left this word in an earlier merge
      const f = frequency[w];
      const merged = new Int32Array(n);
      let m = 0;
      for (let i = 0; i < n; ) {
        if (i >= first && i + 1 < n && symbols[i] === left && symbols[i + 1] === right) {
          merged[m++] = result;
          i += 2;
        } else {
          merged[m++] = symbols[i++];
        }
      }
      // Pairs change only around merged positions; the rest cancel out in `delta`. Subtracting
      // the old pairs and adding the new is simpler than patching neighbours, which gets subtle
      // for overlapping runs such as "aaa".
      for (let i = 0; i + 1 < n; i++) add(symbols[i] * vocabSize + symbols[i + 1], -f);
      for (let i = 0; i + 1 < m; i++) {
        const pair = merged[i] * vocabSize + merged[i + 1];
        add(pair, f);
        if (merged[i] === result || merged[i + 1] === result) noteWord(pair, w);
      }
      words[w] = merged.slice(0, m);
    }
    wordsWithPair.delete(key);
    for (const [pair, amount] of delta) {
      if (amount === 0) continue;
      const updated = (pairCount.get(pair) ?? 0) + amount;
      if (updated <= 0) {
        pairCount.delete(pair);
        wordsWithPair.delete(pair);
      } else {
        pairCount.set(pair, updated);
        if (amount > 0) push(updated, pair);
      }
    }
  }
  return new BpeTokenizer(specialTokens, merges);
}

/** Token ids to bytes, assigning ids to merge results (an existing id when the bytes already exist). */
class ByteVocabulary {
  readonly tokens: Uint8Array[] = [];
  private readonly idByBytes = new Map<string, number>();

  constructor(specialCount: number) {
    for (let i = 0; i < specialCount; i++) this.tokens.push(new Uint8Array(0));
    for (let byte = 0; byte < 256; byte++) this.add(Uint8Array.of(byte));
  }

  get size(): number {
    return this.tokens.length;
  }

  /** Id of the concatenation of two tokens. */
  merge(left: number, right: number): number {
    const a = this.tokens[left];
    const b = this.tokens[right];
    const bytes = new Uint8Array(a.length + b.length);
    bytes.set(a);
    bytes.set(b, a.length);
    return this.idByBytes.get(latin1(bytes)) ?? this.add(bytes);
  }

  private add(bytes: Uint8Array): number {
    const id = this.tokens.length;
    this.tokens.push(bytes);
    this.idByBytes.set(latin1(bytes), id);
    return id;
  }
}

/** Max-heap of (count, ranked pair key): higher count first, then lower key, i.e. lower (left, right). */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  topCount(): number {
    return this.counts[0];
  }

  push(count: number, key: number): void {
    const counts = this.counts;
    const keys = this.keys;
    let i = keys.length;
    counts.push(count);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(count, key, counts[parent], keys[parent])) break;
      counts[i] = counts[parent];
      keys[i] = keys[parent];
      i = parent;
    }
    counts[i] = count;
    keys[i] = key;
  }

  /** Removes the top entry and returns its key. */
  pop(): number {
    const counts = this.counts;
    const keys = this.keys;
    const top = keys[0];
    const lastCount = counts.pop()!;
    const lastKey = keys.pop()!;
    const n = keys.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(counts[child + 1], keys[child + 1], counts[child], keys[child])) child++;
      if (!this.before(counts[child], keys[child], lastCount, lastKey)) break;
      counts[i] = counts[child];
      keys[i] = keys[child];
      i = child;
    }
    counts[i] = lastCount;
    keys[i] = lastKey;
    return top;
  }

  private before(countA: number, keyA: number, countB: number, keyB: number): boolean {
    return countA > countB || (countA === countB && keyA < keyB);
  }
}

function heapPush(heap: number[], value: number): void {
  let i = heap.length;
  heap.push(value);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= value) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): number {
  const top = heap[0];
  const last = heap.pop()!;
  const n = heap.length;
  if (n === 0) return top;
  let i = 0;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap[child + 1] < heap[child]) child++;
    if (heap[child] >= last) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = last;
  return top;
}

function checkSpecialTokens(specialTokens: readonly string[]): void {
  const problems: string[] = [];
  if (specialTokens.some((t) => typeof t !== 'string' || t === '')) problems.push('an empty or non-string token');
  const duplicates = specialTokens.filter((t, i) => specialTokens.indexOf(t) !== i);
  if (duplicates.length > 0) problems.push(`duplicates ${JSON.stringify([...new Set(duplicates)])}`);
  const missing = REQUIRED_SPECIAL_TOKENS.filter((t) => !specialTokens.includes(t));
  if (missing.length > 0) problems.push(`no ${missing.join(', ')}`);
  if (problems.length > 0) {
    throw new TokenizerConfigError(
      `special tokens ${JSON.stringify(specialTokens)} have ${problems.join('; ')}`,
      `list distinct non-empty tokens including ${REQUIRED_SPECIAL_TOKENS.join(', ')} (default ${JSON.stringify(DEFAULT_SPECIAL_TOKENS)})`,
    );
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerConfigError(
      `tokenizer JSON does not parse (${(error as Error).message})`,
      'pass the text written by JSON.stringify(tokenizer)',
    );
  }
}

/** One char per byte: a cheap exact Map key for a byte string. */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** GPT-2's bytes_to_unicode(): printable bytes stand for themselves, the rest map to U+0100 onwards. */
const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table: string[] = new Array<string>(256);
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + shifted++);
  return table;
})();

/** Byte values sorted by their byte-to-unicode character. */
const BYTES_BY_UNICODE: readonly number[] = [...Array(256).keys()].sort(
  (a, b) => BYTE_TO_UNICODE[a].charCodeAt(0) - BYTE_TO_UNICODE[b].charCodeAt(0),
);

function bytesToGpt2Unicode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes[i]];
  return out;
}
