import { pairedBootstrap, quantile, type PredictionRow } from '../../cli/report/bootstrap';

const rows = (predicted: (i: number) => string, n = 300): PredictionRow[] => Array.from({ length: n }, (_, i) => ({ id: `r${i}`, label: ['a', 'b', 'c'][i % 3], predicted: predicted(i) }));
const truth = (i: number) => ['a', 'b', 'c'][i % 3];

describe('paired bootstrap of a lift', () => {
  test('identical predictions: every resampled difference is zero', () => {
    const a = rows((i) => (i % 5 === 0 ? 'a' : truth(i)));
    expect(pairedBootstrap(a, a, 'macroF1')).toEqual({ ok: true, low: 0, high: 0, resamples: 1000, records: 300 });
  });

  test('a clearly better candidate: the interval is above zero and holds the observed difference', () => {
    const better = rows((i) => (i % 20 === 0 ? 'a' : truth(i))); // ~95% right
    const worse = rows((i) => (i % 3 === 0 ? 'b' : truth(i))); // ~67% right
    const result = pairedBootstrap(better, worse, 'accuracy');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.low).toBeGreaterThan(0.2);
    expect(result.high).toBeLessThan(0.37);
    expect(pairedBootstrap(worse, better, 'accuracy')).toMatchObject({ high: -result.low, low: -result.high });
  });

  test('the same seed gives the same interval; records in another order pair by id', () => {
    const a = rows((i) => (i % 4 === 0 ? 'c' : truth(i)));
    const b = rows((i) => (i % 7 === 0 ? 'a' : truth(i)));
    const once = pairedBootstrap(a, b, 'macroF1');
    expect(pairedBootstrap(a, [...b].reverse(), 'macroF1')).toEqual(once);
    expect(pairedBootstrap(a, b, 'macroF1', { seed: 2 })).not.toEqual(once);
  });

  test('evaluations of different records have no paired interval, and say why', () => {
    const a = rows(truth);
    expect(pairedBootstrap(a, a.slice(1), 'accuracy')).toEqual({ ok: false, reason: 'not evaluated on the same records (300 vs 299)' });
    const renamed = a.map((r, i) => (i === 5 ? { ...r, id: 'other' } : r));
    expect(pairedBootstrap(renamed, a, 'accuracy')).toMatchObject({ ok: false, reason: expect.stringContaining('record "other" is only in the candidate') });
    const relabelled = a.map((r, i) => (i === 5 ? { ...r, label: 'a' } : r));
    expect(pairedBootstrap(relabelled, a, 'accuracy')).toMatchObject({ ok: false, reason: expect.stringContaining('has label "a" in one evaluation and "c" in the other') });
  });

  test('quantiles interpolate between order statistics as numpy does', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([0, 10], 0.025)).toBeCloseTo(0.25, 12);
  });

  test('rougeL: the mean of per-record ROUGE-L differences (generations), paired by id; missing scores give no interval', () => {
    const gen = (score: (i: number) => number): PredictionRow[] => Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, label: `subject ${i}`, predicted: 'x', rougeL: score(i) }));
    const tuned = gen((i) => (i % 2 === 0 ? 0.6 : 0.4));
    const base = gen((i) => (i % 2 === 0 ? 0.2 : 0.1));
    const result = pairedBootstrap(tuned, [...base].reverse(), 'rougeL');
    expect(result).toMatchObject({ ok: true, records: 200 });
    if (!result.ok) return;
    expect(result.low).toBeGreaterThan(0.3);
    expect(result.high).toBeLessThan(0.4);
    expect(pairedBootstrap(tuned, base.map(({ rougeL: _, ...row }) => row), 'rougeL')).toMatchObject({ ok: false, reason: expect.stringMatching(/per-record ROUGE-L/) });
  });
});
