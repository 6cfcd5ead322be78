// Evaluation metrics as pure functions. Each one follows a reference implementation exactly (named
// in its doc) so that numbers reported by Tempered can be compared with published ones; the tests
// pin values computed by those implementations.

// Bound once: inside vm contexts (jest) every global lookup in a hot loop is intercepted.
const exp = Math.exp;
const log = Math.log;

/** Inputs that cannot be scored; says what is wrong and how the inputs must look. */
export class MetricInputError extends Error {
  override readonly name = 'MetricInputError';
  readonly nonRetryable = true;
  constructor(
    readonly metric: string,
    problem: string,
  ) {
    super(`${metric}: ${problem}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Language modelling

/**
 * Perplexity = exp(mean negative log-likelihood per token), the NLL in nats (natural log, as
 * cross-entropy losses compute it). Throws on NaN or a negative mean.
 */
export function perplexity(meanNll: number): number {
  if (Number.isNaN(meanNll) || meanNll < 0) {
    throw new MetricInputError('perplexity', `mean negative log-likelihood ${meanNll} is not a number >= 0`);
  }
  return exp(meanNll);
}

// ---------------------------------------------------------------------------------------------
// Classification

/** Scores of one class. */
export interface ClassScores {
  /** tp / (tp + fp); 0 when the class was never predicted. */
  precision: number;
  /** tp / (tp + fn); 0 when the class never occurs in yTrue. */
  recall: number;
  /** 2·P·R / (P + R); 0 when P + R = 0. */
  f1: number;
  /** Occurrences of the class in yTrue. */
  support: number;
}

/** What classificationReport returns. */
export interface ClassificationReport<L extends string | number = string | number> {
  /** Fraction of all samples predicted exactly; 0 for no samples. */
  accuracy: number;
  /** Unweighted mean of the per-class F1 over `confusion.labels`; 0 for no labels. */
  macroF1: number;
  /** Scores by label (the label as a string key). */
  perClass: Record<string, ClassScores>;
  /** matrix[i][j] = samples with true label labels[i] predicted as labels[j]. */
  confusion: { labels: L[]; matrix: number[][] };
}

/**
 * Accuracy, per-class precision/recall/F1/support, macro-F1 and the confusion matrix, with
 * scikit-learn's definitions (`classification_report`, `f1_score(average='macro')`,
 * `confusion_matrix`) and `zero_division=0`: any ratio with a zero denominator is 0.
 *
 * `labels` (default: every label in yTrue or yPred, sorted — numbers ascending, strings by UTF-16
 * code unit) fixes the classes scored and their order. As in scikit-learn, accuracy counts every
 * sample, per-class counts see every sample (a prediction of a listed class for an unlisted true
 * label is a false positive), and the confusion matrix leaves out samples whose true or predicted
 * label is not listed.
 */
export function classificationReport<L extends string | number>(
  yTrue: readonly L[],
  yPred: readonly L[],
  labels?: readonly L[],
): ClassificationReport<L> {
  const metric = 'classificationReport';
  if (yTrue.length !== yPred.length) {
    throw new MetricInputError(metric, `yTrue has ${yTrue.length} labels but yPred has ${yPred.length}; pass one prediction per sample`);
  }
  const classes = labels ? [...labels] : sortedLabels([...yTrue, ...yPred]);
  const index = new Map<L, number>();
  classes.forEach((label, i) => {
    if (index.has(label)) throw new MetricInputError(metric, `label ${JSON.stringify(label)} is listed twice in labels`);
    index.set(label, i);
  });
  const k = classes.length;
  const matrix = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const truePositives = new Array<number>(k).fill(0);
  const predicted = new Array<number>(k).fill(0);
  const support = new Array<number>(k).fill(0);
  let correct = 0;
  for (let s = 0; s < yTrue.length; s++) {
    const t = index.get(yTrue[s]);
    const p = index.get(yPred[s]);
    if (yTrue[s] === yPred[s]) correct++;
    if (t !== undefined) support[t]++;
    if (p !== undefined) predicted[p]++;
    if (t !== undefined && t === p) truePositives[t]++;
    if (t !== undefined && p !== undefined) matrix[t][p]++;
  }
  const perClass: Record<string, ClassScores> = {};
  let f1Sum = 0;
  classes.forEach((label, i) => {
    const precision = ratio(truePositives[i], predicted[i]);
    const recall = ratio(truePositives[i], support[i]);
    const f1 = fScore(precision, recall);
    f1Sum += f1;
    perClass[String(label)] = { precision, recall, f1, support: support[i] };
  });
  return {
    accuracy: ratio(correct, yTrue.length),
    macroF1: ratio(f1Sum, k),
    perClass,
    confusion: { labels: classes, matrix },
  };
}

function sortedLabels<L extends string | number>(values: readonly L[]): L[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

function fScore(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

// ---------------------------------------------------------------------------------------------
// BLEU (sacreBLEU)

/** Corpus BLEU and the statistics behind it, as sacreBLEU's BLEUScore. */
export interface BleuScore {
  /** BLEU, 0–100. */
  score: number;
  /** Modified n-gram precisions for n = 1..4, in percent (after smoothing). */
  precisions: number[];
  /** Brevity penalty: 1 if sysLen >= refLen, else exp(1 − refLen/sysLen) (0 when sysLen = 0). */
  bp: number;
  /** Hypothesis tokens, summed over the corpus. */
  sysLen: number;
  /** Reference tokens, summed over the corpus (per hypothesis, the closest reference length). */
  refLen: number;
  /** Clipped n-gram matches for n = 1..4. */
  counts: number[];
  /** Hypothesis n-grams for n = 1..4. */
  totals: number[];
}

const BLEU_MAX_ORDER = 4;
/** sacreBLEU's my_log(0): a floor that drives the score to 0 when a precision is 0. */
const BLEU_LOG_ZERO = -9999999999;

/**
 * Corpus-level BLEU (Papineni et al., 2002) exactly as sacreBLEU 2.x computes it with its defaults
 * (`BLEU()`; signature `nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.x`): mteval-v13a
 * tokenization, case-sensitive, n-grams up to 4 with counts clipped by the maximum count in any one
 * reference, matches and totals summed over the corpus before dividing, the closest reference length
 * per hypothesis (shorter wins a tie), and "exp" smoothing (NIST's: the k-th order with no match gets
 * precision 1 / (2^k · total)).
 *
 * `references[i]` holds the references of `hypotheses[i]` (one or more; counts may vary). This is
 * the transpose of sacreBLEU's `refs` argument, which is a list of reference streams.
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly (readonly string[])[]): BleuScore {
  if (references.length !== hypotheses.length) {
    throw new MetricInputError(
      'corpusBleu',
      `${hypotheses.length} hypotheses but ${references.length} reference lists; references[i] must hold the references ` +
        `of hypotheses[i] (sacreBLEU's refs are transposed: one stream per reference)`,
    );
  }
  const counts = new Array<number>(BLEU_MAX_ORDER).fill(0);
  const totals = new Array<number>(BLEU_MAX_ORDER).fill(0);
  let sysLen = 0;
  let refLen = 0;
  hypotheses.forEach((hypothesis, i) => {
    const refs = references[i];
    if (refs.length === 0) throw new MetricInputError('corpusBleu', `hypothesis ${i} has no reference; give each at least one`);
    // Reference n-gram counts: the maximum over references, as sacreBLEU merges them.
    const refNgrams = new Map<string, number>();
    const refLengths: number[] = [];
    for (const ref of refs) {
      const tokens = tokenize13a(ref);
      refLengths.push(tokens.length);
      for (const [ngram, count] of countNgrams(tokens, BLEU_MAX_ORDER)) {
        if (count > (refNgrams.get(ngram) ?? 0)) refNgrams.set(ngram, count);
      }
    }
    const tokens = tokenize13a(hypothesis);
    sysLen += tokens.length;
    refLen += closestRefLength(tokens.length, refLengths);
    for (const [ngram, count] of countNgrams(tokens, BLEU_MAX_ORDER)) {
      const n = ngramOrder(ngram);
      totals[n - 1] += count;
      counts[n - 1] += Math.min(count, refNgrams.get(ngram) ?? 0);
    }
  });
  return bleuFromStatistics(counts, totals, sysLen, refLen);
}

/** sacreBLEU's BLEU.compute_bleu with smooth_method='exp', effective_order=False. */
function bleuFromStatistics(counts: number[], totals: number[], sysLen: number, refLen: number): BleuScore {
  let bp = 1;
  if (sysLen < refLen) bp = sysLen > 0 ? exp(1 - refLen / sysLen) : 0;
  const precisions = new Array<number>(BLEU_MAX_ORDER).fill(0);
  const result = { precisions, bp, sysLen, refLen, counts, totals };
  if (counts.every((c) => c === 0)) return { score: 0, ...result };
  let smooth = 1;
  for (let n = 1; n <= BLEU_MAX_ORDER; n++) {
    if (totals[n - 1] === 0) break; // later orders keep precision 0, so the score is 0
    if (counts[n - 1] === 0) {
      smooth *= 2;
      precisions[n - 1] = 100 / (smooth * totals[n - 1]);
    } else {
      precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
    }
  }
  let logSum = 0;
  for (const p of precisions) logSum += p === 0 ? BLEU_LOG_ZERO : log(p);
  return { score: bp * exp(logSum / BLEU_MAX_ORDER), ...result };
}

function closestRefLength(hypLength: number, refLengths: readonly number[]): number {
  let closestDiff = -1;
  let closest = -1;
  for (const length of refLengths) {
    const diff = Math.abs(hypLength - length);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closest = length;
    } else if (diff === closestDiff && length < closest) {
      closest = length;
    }
  }
  return closest;
}

/** N-grams of orders 1..maxOrder, keyed by their tokens joined with "\n" (tokenize13a leaves none in a token). */
function countNgrams(tokens: readonly string[], maxOrder: number): Map<string, number> {
  const ngrams = new Map<string, number>();
  for (let n = 1; n <= maxOrder; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = n === 1 ? tokens[i] : tokens.slice(i, i + n).join('\n');
      ngrams.set(key, (ngrams.get(key) ?? 0) + 1);
    }
  }
  return ngrams;
}

function ngramOrder(key: string): number {
  let n = 1;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) === 10) n++;
  return n;
}

/** Characters Python's str.split()/str.strip() treat as whitespace (str.isspace()). */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPLIT = new RegExp(`[${PY_SPACE}]+`);
const PY_TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);

/** sacreBLEU's 13a regexes (tokenizer_re.py), in order. */
const TOKENIZER_13A_RULES: readonly [RegExp, string][] = [
  // symbols: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
  [/([{-~[-` -&(-+:-@/])/gu, ' $1 '],
  // period and comma unless preceded by a digit
  [/([^0-9])([.,])/gu, '$1 $2 '],
  // period and comma unless followed by a digit
  [/([.,])([^0-9])/gu, ' $1 $2'],
  // dash when preceded by a digit
  [/([0-9])(-)/gu, '$1 $2 '],
];

/**
 * sacreBLEU's default tokenization of one segment (BLEU._preprocess_segment + Tokenizer13a):
 * trailing whitespace stripped, `<skipped>` and hyphen-newline removed, newlines to spaces, four
 * HTML entities unescaped, punctuation split off, then split on whitespace (Python's definition).
 */
export function tokenize13a(segment: string): string[] {
  let line = segment.replace(PY_TRAILING_SPACE, '');
  line = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (line.includes('&')) {
    line = line.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  }
  line = ` ${line} `;
  for (const [pattern, replacement] of TOKENIZER_13A_RULES) line = line.replace(pattern, replacement);
  return line.split(PY_SPLIT).filter((token) => token !== '');
}

// ---------------------------------------------------------------------------------------------
// ROUGE (Google's rouge-score)

/** Precision, recall and F1 of one ROUGE variant, each 0–1. */
export interface RougeScore {
  precision: number;
  recall: number;
  f1: number;
}

/** ROUGE-1, ROUGE-2 and ROUGE-L. */
export interface RougeScores {
  rouge1: RougeScore;
  rouge2: RougeScore;
  rougeL: RougeScore;
}

/**
 * ROUGE of one hypothesis against one or more references, exactly as Google's `rouge-score`
 * (`RougeScorer(['rouge1', 'rouge2', 'rougeL'])`, its defaults: no stemming) computes it: text
 * lowercased, every run of characters other than a-z and 0-9 made a space, split on spaces.
 * ROUGE-N: clipped n-gram overlap over hypothesis n-grams (precision) and reference n-grams (recall).
 * ROUGE-L: longest common subsequence over hypothesis length (precision) and reference length
 * (recall). F1 is the balanced F-measure (beta = 1), 0 when P + R = 0; an empty side scores 0.
 * With several references each variant takes the reference with the highest F1 (the first on a
 * tie), as `score_multi` does.
 */
export function rougePair(hypothesis: string, references: string | readonly string[]): RougeScores {
  const refs = typeof references === 'string' ? [references] : references;
  if (refs.length === 0) throw new MetricInputError('rouge', 'a hypothesis has no reference; give each at least one');
  const hyp = tokenizeRouge(hypothesis);
  const hypUnigrams = countWordNgrams(hyp, 1);
  const hypBigrams = countWordNgrams(hyp, 2);
  let best: RougeScores | undefined;
  for (const ref of refs) {
    const tokens = tokenizeRouge(ref);
    const scores: RougeScores = {
      rouge1: ngramOverlap(countWordNgrams(tokens, 1), hypUnigrams),
      rouge2: ngramOverlap(countWordNgrams(tokens, 2), hypBigrams),
      rougeL: lcsScore(tokens, hyp),
    };
    if (!best) {
      best = scores;
      continue;
    }
    for (const key of ['rouge1', 'rouge2', 'rougeL'] as const) if (scores[key].f1 > best[key].f1) best[key] = scores[key];
  }
  return best!;
}

/**
 * Mean over the corpus of rougePair(hypotheses[i], references[i]) — precision, recall and F1 each
 * averaged separately (the arithmetic mean; rouge-score's BootstrapAggregator reports a bootstrap
 * estimate of the same mean as "mid"). All zeros for an empty corpus.
 */
export function rouge(hypotheses: readonly string[], references: readonly (string | readonly string[])[]): RougeScores {
  if (references.length !== hypotheses.length) {
    throw new MetricInputError(
      'rouge',
      `${hypotheses.length} hypotheses but ${references.length} references; pass one entry per hypothesis`,
    );
  }
  const sum: RougeScores = {
    rouge1: { precision: 0, recall: 0, f1: 0 },
    rouge2: { precision: 0, recall: 0, f1: 0 },
    rougeL: { precision: 0, recall: 0, f1: 0 },
  };
  hypotheses.forEach((hypothesis, i) => {
    const scores = rougePair(hypothesis, references[i]);
    for (const key of ['rouge1', 'rouge2', 'rougeL'] as const) {
      sum[key].precision += scores[key].precision;
      sum[key].recall += scores[key].recall;
      sum[key].f1 += scores[key].f1;
    }
  });
  const n = Math.max(hypotheses.length, 1);
  for (const key of ['rouge1', 'rouge2', 'rougeL'] as const) {
    sum[key] = { precision: sum[key].precision / n, recall: sum[key].recall / n, f1: sum[key].f1 / n };
  }
  return sum;
}

/** rouge-score's default tokenizer (tokenize.tokenize without a stemmer). */
export function tokenizeRouge(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ')
    .filter((token) => token !== '');
}

function countWordNgrams(tokens: readonly string[], n: number): Map<string, number> {
  const ngrams = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join(' ');
    ngrams.set(key, (ngrams.get(key) ?? 0) + 1);
  }
  return ngrams;
}

function ngramOverlap(reference: Map<string, number>, hypothesis: Map<string, number>): RougeScore {
  let overlap = 0;
  let refTotal = 0;
  let hypTotal = 0;
  for (const [ngram, count] of reference) {
    overlap += Math.min(count, hypothesis.get(ngram) ?? 0);
    refTotal += count;
  }
  for (const count of hypothesis.values()) hypTotal += count;
  const precision = overlap / Math.max(hypTotal, 1);
  const recall = overlap / Math.max(refTotal, 1);
  return { precision, recall, f1: fScore(precision, recall) };
}

function lcsScore(reference: readonly string[], hypothesis: readonly string[]): RougeScore {
  if (reference.length === 0 || hypothesis.length === 0) return { precision: 0, recall: 0, f1: 0 };
  const length = lcsLength(reference, hypothesis);
  const precision = length / hypothesis.length;
  const recall = length / reference.length;
  return { precision, recall, f1: fScore(precision, recall) };
}

/** Length of the longest common subsequence: O(|a|·|b|) time, O(|b|) memory. */
function lcsLength(a: readonly string[], b: readonly string[]): number {
  let previous = new Int32Array(b.length + 1);
  let current = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      current[j] = a[i - 1] === b[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], current[j - 1]);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length];
}

/** Generation metrics under both engines' names: `generated` (how many), `bleu` (sacreBLEU's corpus score), `rouge: { rouge1, rouge2, rougeL }` (F1 means), each as wanted, to 6 significant digits. */
export function generationScores(generations: ReadonlyArray<{ generated: string; reference: string }>, wanted: ReadonlySet<string>): { generated: number; bleu?: number; rouge?: { rouge1: number; rouge2: number; rougeL: number } } {
  const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);
  const hypotheses = generations.map((g) => g.generated);
  const references = generations.map((g) => g.reference);
  const metrics: { generated: number; bleu?: number; rouge?: { rouge1: number; rouge2: number; rougeL: number } } = { generated: hypotheses.length };
  if (wanted.has('bleu')) metrics.bleu = round(corpusBleu(hypotheses, references.map((r) => [r])).score);
  if (wanted.has('rouge')) {
    const r = rouge(hypotheses, references);
    metrics.rouge = { rouge1: round(r.rouge1.f1), rouge2: round(r.rouge2.f1), rougeL: round(r.rougeL.f1) };
  }
  return metrics;
}
