import {
  classificationReport,
  corpusBleu,
  MetricInputError,
  perplexity,
  rouge,
  rougePair,
  tokenize13a,
  tokenizeRouge,
  type RougeScores,
} from '../../../activities/ml/metrics';

describe('perplexity', () => {
  it('is exp of the mean NLL in nats', () => {
    expect(perplexity(0)).toBe(1);
    expect(perplexity(Math.log(2000))).toBeCloseTo(2000, 9); // uniform over a 2000-token vocabulary
    expect(perplexity(Infinity)).toBe(Infinity);
    expect(() => perplexity(-0.1)).toThrow(MetricInputError);
    expect(() => perplexity(NaN)).toThrow(/not a number >= 0/);
  });
});

// Expected values computed with scikit-learn 1.9.1:
//   from sklearn.metrics import accuracy_score, precision_recall_fscore_support, f1_score, confusion_matrix
//   labs = labels or sorted(set(y_true) | set(y_pred))
//   precision_recall_fscore_support(y_true, y_pred, labels=labs, zero_division=0)
//   f1_score(y_true, y_pred, labels=labs, average='macro', zero_division=0)
//   accuracy_score(y_true, y_pred); confusion_matrix(y_true, y_pred, labels=labs)
describe('classificationReport', () => {
  it('matches scikit-learn, with zero division as 0', () => {
    const report = classificationReport(['ham', 'spam', 'ham', 'ham', 'spam', 'eggs'], ['ham', 'ham', 'ham', 'spam', 'spam', 'ham']);
    expect(report.accuracy).toBeCloseTo(0.5, 12);
    expect(report.macroF1).toBeCloseTo(0.35714285714285715, 12);
    expect(report.perClass.eggs).toEqual({ precision: 0, recall: 0, f1: 0, support: 1 }); // never predicted
    expect(report.perClass.ham.precision).toBeCloseTo(0.5, 12);
    expect(report.perClass.ham.recall).toBeCloseTo(0.6666666666666666, 12);
    expect(report.perClass.ham.f1).toBeCloseTo(0.5714285714285714, 12);
    expect(report.perClass.spam).toEqual({ precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
    expect(report.confusion).toEqual({
      labels: ['eggs', 'ham', 'spam'],
      matrix: [
        [0, 1, 0],
        [0, 2, 1],
        [0, 1, 1],
      ],
    });
  });

  it('scores the given labels in the given order, absent ones included', () => {
    const report = classificationReport([0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 2, 1, 1, 0], [2, 0, 1, 3]);
    expect(report.accuracy).toBeCloseTo(0.5714285714285714, 12);
    expect(report.macroF1).toBeCloseTo(0.41666666666666663, 12);
    expect(report.perClass['2'].f1).toBeCloseTo(0.6666666666666666, 12);
    expect(report.perClass['3']).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(report.confusion.matrix).toEqual([
      [2, 1, 0, 0],
      [0, 1, 1, 0],
      [1, 0, 1, 0],
      [0, 0, 0, 0],
    ]);
  });

  it('counts unlisted labels like scikit-learn: in accuracy and as false positives, not in the matrix', () => {
    const report = classificationReport(['a', 'b', 'c', 'a', 'c'], ['a', 'c', 'c', 'b', 'a'], ['a', 'c']);
    expect(report.accuracy).toBeCloseTo(0.4, 12);
    expect(report.macroF1).toBeCloseTo(0.5, 12);
    expect(report.perClass.c).toEqual({ precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
    expect(report.confusion.matrix).toEqual([
      [1, 0],
      [1, 1],
    ]);
  });

  it('sorts numeric labels numerically and handles no samples', () => {
    expect(classificationReport([10, 9, 100], [10, 9, 100]).confusion.labels).toEqual([9, 10, 100]);
    expect(classificationReport([], [])).toEqual({ accuracy: 0, macroF1: 0, perClass: {}, confusion: { labels: [], matrix: [] } });
  });

  it('rejects mismatched inputs', () => {
    expect(() => classificationReport(['a'], ['a', 'b'])).toThrow(/yTrue has 1 labels but yPred has 2/);
    expect(() => classificationReport(['a'], ['a'], ['a', 'a'])).toThrow(/listed twice/);
  });
});

// Expected values computed with sacreBLEU 2.6.0 (defaults: tokenize='13a', smooth_method='exp',
// lowercase=False, effective_order=False). Python used, for each case (hyps, refs) below:
//   streams = [[r[k] if k < len(r) else None for r in refs] for k in range(max(map(len, refs)))]
//   b = sacrebleu.corpus_bleu(hyps, streams)
//   b.score, b.precisions, b.bp, b.sys_len, b.ref_len, b.counts, b.totals
describe('corpusBleu', () => {
  interface Case {
    hyps: string[];
    refs: string[][];
    score: number;
    precisions: number[];
    bp: number;
    sysLen: number;
    refLen: number;
    counts: number[];
    totals: number[];
  }
  const cases: Record<string, Case> = {
    // sacreBLEU's README example (two reference streams): it prints BLEU = 48.53.
    readmeTwoReferences: {
      hyps: ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'],
      refs: [
        ['The dog bit the man.', 'The dog had bit the man.'],
        ['It was not unexpected.', 'No one was surprised.'],
        ['The man bit him first.', 'The man had bitten the dog.'],
      ],
      score: 48.530827009929865,
      precisions: [82.3529411764706, 50.0, 45.45454545454545, 37.5],
      bp: 0.9428731438548749,
      sysLen: 17,
      refLen: 18,
      counts: [14, 7, 5, 3],
      totals: [17, 14, 11, 8],
    },
    shortHypothesesBrevityPenalty: {
      hyps: ['the cat sat on the', 'a quick brown fox jumps'],
      refs: [['the cat sat on the mat today'], ['a quick brown fox jumps over the lazy dog']],
      score: 54.88116360940266,
      precisions: [100, 100, 100, 100],
      bp: 0.5488116360940264,
      sysLen: 10,
      refLen: 16,
      counts: [10, 8, 6, 4],
      totals: [10, 8, 6, 4],
    },
    noTrigramOrFourgramMatchesExpSmoothing: {
      hyps: ['the cat sat on a mat today'],
      refs: [['the cat is on the mat']],
      score: 15.619699684601283,
      precisions: [57.142857142857146, 16.666666666666668, 10.0, 6.25],
      bp: 1,
      sysLen: 7,
      refLen: 6,
      counts: [4, 1, 0, 0],
      totals: [7, 6, 5, 4],
    },
    noFourGramsAtAll: {
      hyps: ['the cat sat'],
      refs: [['the cat sat on the mat']],
      score: 0,
      precisions: [100, 100, 100, 0],
      bp: 0.36787944117144233,
      sysLen: 3,
      refLen: 6,
      counts: [3, 2, 1, 0],
      totals: [3, 2, 1, 0],
    },
    noMatches: {
      hyps: ['completely different words here'],
      refs: [['the cat sat on the mat']],
      score: 0,
      precisions: [0, 0, 0, 0],
      bp: 0.6065306597126334,
      sysLen: 4,
      refLen: 6,
      counts: [0, 0, 0, 0],
      totals: [4, 3, 2, 1],
    },
    tokenization13a: {
      hyps: [
        'It costs $3.50, i.e. 1,000 cents -- well-known &amp; "quoted" (really)!  ',
        "Version 2-3 was <skipped>released in\n2019: don't panic... Café — naïve 😀 e.g.",
      ],
      refs: [
        ['It costs $3.50 , i.e. 1,000 cents - well-known & "quoted" (really) !'],
        ['Version 2-3 was released in 2019: do not panic... Café – naive 😀 e.g.', "version 2 - 3 released in 2019 ; don't panic"],
      ],
      score: 76.86077979395792,
      precisions: [93.02325581395348, 85.36585365853658, 74.35897435897436, 64.86486486486487],
      bp: 0.9770125183673897,
      sysLen: 43,
      refLen: 44,
      counts: [40, 35, 29, 24],
      totals: [43, 41, 39, 37],
    },
    caseSensitiveVariableReferenceCounts: {
      hyps: ['The Cat sat on the mat.', 'There is a cat on the mat.', ''],
      refs: [['the cat sat on the mat.'], ['There is a cat on the mat.', 'A cat is on the mat.', 'On the mat there is a cat.'], ['Nothing to say.']],
      score: 63.30526533317553,
      precisions: [86.66666666666667, 84.61538461538461, 81.81818181818181, 77.77777777777777],
      bp: 0.7659283383646487,
      sysLen: 15,
      refLen: 19,
      counts: [13, 11, 9, 7],
      totals: [15, 13, 11, 9],
    },
  };

  it.each(Object.entries(cases))('matches sacreBLEU: %s', (_name, c) => {
    const bleu = corpusBleu(c.hyps, c.refs);
    expect(bleu.score).toBeCloseTo(c.score, 10);
    bleu.precisions.forEach((p, i) => expect(p).toBeCloseTo(c.precisions[i], 10));
    expect(bleu.bp).toBeCloseTo(c.bp, 12);
    expect({ sysLen: bleu.sysLen, refLen: bleu.refLen, counts: bleu.counts, totals: bleu.totals }).toEqual({
      sysLen: c.sysLen,
      refLen: c.refLen,
      counts: c.counts,
      totals: c.totals,
    });
  });

  it('tokenizes as sacreBLEU 13a', () => {
    // Python: Tokenizer13a()(s.rstrip()).split()  (sacrebleu.tokenizers.tokenizer_13a)
    expect(tokenize13a('end-\nof-line hyphen, 3-4 pm, a.b.c, x,y 1.5. 2,')).toEqual(
      ['endof-line', 'hyphen', ',', '3', '-', '4', 'pm', ',', 'a', '.', 'b', '.', 'c', ',', 'x', ',', 'y', '1.5', '.', '2', ','],
    );
    expect(tokenize13a('tabs\tand\u00a0nbsp\u2003em\u0085nel\u001cfs\ufeffbom')).toEqual(['tabs', 'and', 'nbsp', 'em', 'nel', 'fs\ufeffbom']);
    expect(tokenize13a('&lt;tag&gt; &quot;q&quot; &amp;amp; {braces} [brackets] ~tilde^ `tick` @at #hash')).toEqual(
      ['<', 'tag', '>', '"', 'q', '"', '&', 'amp', ';', '{', 'braces', '}', '[', 'brackets', ']', '~', 'tilde', '^', '`', 'tick', '`', '@', 'at', '#', 'hash'],
    );
  });

  it('takes references per hypothesis and says so when given streams', () => {
    expect(() => corpusBleu(['a', 'b'], [['a', 'b']])).toThrow(/references\[i\] must hold the references of hypotheses\[i\]/);
    expect(() => corpusBleu(['a'], [[]])).toThrow(/hypothesis 0 has no reference/);
    expect(corpusBleu([], []).score).toBe(0);
  });
});

// Expected values computed with Google's rouge-score 0.1.2:
//   from rouge_score import rouge_scorer
//   scorer = rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'])   # use_stemmer=False (default)
//   s = scorer.score(ref, hyp)   # or scorer.score_multi(refs, hyp) for a list of references
//   {k: [v.precision, v.recall, v.fmeasure] for k, v in s.items()}
describe('rouge', () => {
  type Triple = [number, number, number];
  interface Case {
    hyp: string;
    ref: string | string[];
    rouge1: Triple;
    rouge2: Triple;
    rougeL: Triple;
  }
  const cases: Record<string, Case> = {
    catMat: {
      hyp: 'the cat sat on the mat',
      ref: 'the cat is on the mat',
      rouge1: [0.8333333333333334, 0.8333333333333334, 0.8333333333333334],
      rouge2: [0.6, 0.6, 0.6],
      rougeL: [0.8333333333333334, 0.8333333333333334, 0.8333333333333334],
    },
    linExample: {
      hyp: 'the gunman kill police',
      ref: 'police killed the gunman',
      rouge1: [0.75, 0.75, 0.75],
      rouge2: [0.3333333333333333, 0.3333333333333333, 0.3333333333333333],
      rougeL: [0.5, 0.5, 0.5],
    },
    punctuationCase: {
      hyp: "Hello, World! It's 2024... café-bar & Co.",
      ref: "hello world: it's 2024 - the cafe bar and co",
      rouge1: [0.875, 0.7, 0.7777777777777777],
      rouge2: [0.5714285714285714, 0.4444444444444444, 0.5],
      rougeL: [0.875, 0.7, 0.7777777777777777],
    },
    clipping: {
      hyp: 'the the the the cat',
      ref: 'the cat the dog',
      rouge1: [0.6, 0.75, 0.6666666666666665],
      rouge2: [0.25, 0.3333333333333333, 0.28571428571428575],
      rougeL: [0.4, 0.5, 0.4444444444444445],
    },
    emptyHypothesis: {
      hyp: '',
      ref: 'the cat',
      rouge1: [0, 0, 0],
      rouge2: [0, 0, 0],
      rougeL: [0, 0, 0],
    },
    onlyPunctuation: {
      hyp: '!!! ... ???',
      ref: 'the cat',
      rouge1: [0, 0, 0],
      rouge2: [0, 0, 0],
      rougeL: [0, 0, 0],
    },
    multiRef: {
      hyp: 'the cat sat on the mat',
      ref: ['a dog lay on a rug', 'the cat lay on the rug', 'on the mat sat the cat'],
      rouge1: [1, 1, 1],
      rouge2: [0.6, 0.6, 0.6],
      rougeL: [0.6666666666666666, 0.6666666666666666, 0.6666666666666666],
    },
    lcsOrder: {
      hyp: 'a b c d e f g',
      ref: 'g a c b e d f',
      rouge1: [1, 1, 1],
      rouge2: [0, 0, 0],
      rougeL: [0.5714285714285714, 0.5714285714285714, 0.5714285714285714],
    },
  };

  const expectScores = (actual: RougeScores, expected: Pick<Case, 'rouge1' | 'rouge2' | 'rougeL'>): void => {
    for (const key of ['rouge1', 'rouge2', 'rougeL'] as const) {
      const [precision, recall, f1] = expected[key];
      expect(actual[key].precision).toBeCloseTo(precision, 12);
      expect(actual[key].recall).toBeCloseTo(recall, 12);
      expect(actual[key].f1).toBeCloseTo(f1, 12);
    }
  };

  it.each(Object.entries(cases))('matches rouge-score: %s', (_name, c) => {
    expectScores(rougePair(c.hyp, c.ref), c);
  });

  it('averages over the corpus', () => {
    // Python: the mean over these three pairs of each of precision, recall, fmeasure.
    const names = ['catMat', 'linExample', 'punctuationCase'] as const;
    const scores = rouge(
      names.map((n) => cases[n].hyp),
      names.map((n) => cases[n].ref),
    );
    expectScores(scores, {
      rouge1: [0.8194444444444445, 0.7611111111111111, 0.7870370370370371],
      rouge2: [0.5015873015873016, 0.45925925925925926, 0.4777777777777778],
      rougeL: [0.7361111111111112, 0.6777777777777777, 0.7037037037037037],
    });
    expect(() => rouge(['a'], [])).toThrow(/1 hypotheses but 0 references/);
  });

  it('tokenizes as rouge-score: lowercase, non-alphanumerics split', () => {
    expect(tokenizeRouge("Don't STOP—naïve café_2x")).toEqual(['don', 't', 'stop', 'na', 've', 'caf', '2x']);
  });
});
