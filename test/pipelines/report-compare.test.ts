import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { problemsOf } from '../support/spec-problems';

// The spec's `report.compare` block: what it accepts, the positioned problems it is refused with,
// and that it reaches the plan without touching any stage's cache key.

const stages = `stages:
  c: { type: collect, sources: [{ path: "*.txt" }] }
  s: { type: split, input: c }
  tok: { type: tokenizer, input: [s], vocabSize: 500 }
  lm: { type: finetune, input: s, tokenizer: tok, objective: causal-lm, steps: 5 }
  two: { type: finetune, input: s, from: lm, objective: classify }
  one: { type: finetune, input: s, tokenizer: tok, objective: classify }
  student: { type: distill, input: s, teacher: two }
  q: { type: quantize, model: student, input: s }
  eval-two: { type: evaluate, input: s, model: two }
  eval-one: { type: evaluate, input: s, model: one }
  eval-q: { type: evaluate, input: s, model: q }
  eval-lm: { type: evaluate, input: s, model: lm }
`;

const specWith = (report: string) => `apiVersion: tempered.dev/v1\nname: p\n${report}${stages}`;

describe('report.compare', () => {
  test('names evaluate stages of the same objective; quantized and distilled models count as classifiers', () => {
    const { spec } = loadSpecText(
      specWith(`report:
  compare:
    - { name: two-phase vs single-phase, candidate: eval-two, baseline: eval-one, metrics: [macroF1, accuracy] }
    - { candidate: eval-q, baseline: eval-two }
`),
      'spec.yaml',
    );
    expect(spec.report?.compare).toEqual([
      { name: 'two-phase vs single-phase', candidate: 'eval-two', baseline: 'eval-one', metrics: ['macroF1', 'accuracy'] },
      { candidate: 'eval-q', baseline: 'eval-two' },
    ]);
  });

  test('each side must be an evaluate stage of this spec, with a positioned message and a suggestion', () => {
    const problems = problemsOf(
      specWith(`report:
  compare:
    - { candidate: eval-tow, baseline: two }
    - { candidate: eval-one, baseline: eval-one }
`),
    );
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p]));
    expect(byPath['report.compare.0.candidate'].message).toBe(
      'unknown stage "eval-tow" (did you mean "eval-two"?); a comparison names evaluate stages (evaluate stages in this spec: eval-two, eval-one, eval-q, eval-lm)',
    );
    expect(byPath['report.compare.0.candidate']).toMatchObject({ line: 5, column: 20 });
    expect(byPath['report.compare.0.baseline'].message).toMatch(/^"two" is a finetune stage; a comparison names evaluate stages/);
    expect(byPath['report.compare.1.baseline'].message).toBe('candidate and baseline are both "eval-one"; compare two different evaluations');
  });

  test('evaluations of different objectives, or a metric the objective does not report, are refused', () => {
    const problems = problemsOf(
      specWith(`report:
  compare:
    - { candidate: eval-two, baseline: eval-lm }
    - { candidate: eval-two, baseline: eval-one, metrics: [accuracy, perplexity] }
`),
    );
    const messages = problems.map((p) => `${p.path}: ${p.message}`);
    expect(messages).toEqual([
      'report.compare.0.baseline: "eval-two" evaluates a classify model and "eval-lm" a causal-lm model; they share no metric, so compare evaluations of the same objective',
      'report.compare.1.metrics.1: a classify evaluation does not report "perplexity"; it reports accuracy, macroF1',
    ]);
  });

  test('misspelt keys get a suggestion, as everywhere in a spec', () => {
    const problems = problemsOf(
      specWith(`report:
  compair: []
  compare:
    - { candidate: eval-two, basline: eval-one, metrics: [macroF2] }
`),
    );
    const messages = problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    expect(messages).toMatch(/report\.compair: unknown key "compair" \(did you mean "compare"\?\)/);
    expect(messages).toMatch(/report\.compare\.0\.basline: unknown key "basline" \(did you mean "baseline"\?\)/);
    expect(messages).toMatch(/report\.compare\.0\.metrics\.0: .*macroF2/);
  });

  test('the plan carries the comparisons; no stage config or cache key changes with them', () => {
    const report = `report:\n  compare:\n    - { name: lift, candidate: eval-two, baseline: eval-one }\n`;
    const withReport = planPipeline(loadSpecText(specWith(report), '/specs/p.yaml'));
    const without = planPipeline(loadSpecText(specWith(''), '/specs/p.yaml'));
    expect(withReport.comparisons).toEqual([{ name: 'lift', candidate: 'eval-two', baseline: 'eval-one' }]);
    expect(without.comparisons).toBeUndefined();
    expect(withReport.stages.map((s) => [s.name, s.configDigest, s.config])).toEqual(without.stages.map((s) => [s.name, s.configDigest, s.config]));
    // deterministic: the same spec plans the same
    expect(planPipeline(loadSpecText(specWith(report), '/specs/p.yaml'))).toEqual(withReport);
  });
});
