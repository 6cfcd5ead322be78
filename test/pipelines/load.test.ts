import { loadSpecText } from '../../pipelines/load';
import { problemsOf } from '../support/spec-problems';

const header = 'apiVersion: tempered.dev/v1\nname: t\n';

describe('loadSpecText', () => {
  test('applies defaults to a minimal valid spec', () => {
    const { spec } = loadSpecText(`${header}stages:\n  a: { type: noop }\n`, '/tmp/specs/x.yaml');
    expect(spec.seed).toBe(42);
    expect(spec.defaults.retry).toEqual({ maxAttempts: 3, initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 60_000 });
    expect(spec.defaults.timeout).toBe(3_600_000);
    expect(spec.stages.a).toEqual({ type: 'noop', sleepMs: 0, failAttempts: 0 });
  });

  test('parses durations in spec units', () => {
    const { spec } = loadSpecText(`${header}stages:\n  a: { type: noop, timeout: 90s, heartbeatTimeout: 1.5m, retry: { initialInterval: 250ms } }\n`, 'x.yaml');
    expect(spec.stages.a.timeout).toBe(90_000);
    expect(spec.stages.a.heartbeatTimeout).toBe(90_000);
    expect(spec.stages.a.retry?.initialInterval).toBe(250);
  });

  test('reports every problem in one pass, each with file:line:column, path and the value found', () => {
    const yaml = `${header}bogus: 1
stages:
  a:
    type: colect
  b:
    type: split
    input: a
    ratios: { train: 0.8, validation: 0.1, test: 0.2 }
    stratfy: true
  c:
    type: clean
    input: missing-stage
    timeout: 5 minutes
`;
    const problems = problemsOf(yaml);
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p]));
    expect(Object.keys(byPath).sort()).toEqual(['bogus', 'stages.a.type', 'stages.b.ratios', 'stages.b.stratfy', 'stages.c.input', 'stages.c.timeout']);
    expect(byPath.bogus).toMatchObject({ line: 3, column: 1 });
    expect(byPath['stages.a.type'].message).toMatch(/unknown stage type "colect" \(did you mean "collect"\?\)/);
    expect(byPath['stages.a.type']).toMatchObject({ line: 6, column: 11 });
    expect(byPath['stages.b.ratios'].message).toMatch(/sum to 1, found 0.8 \+ 0.1 \+ 0.2 = 1.1/);
    expect(byPath['stages.b.stratfy'].message).toMatch(/unknown key "stratfy" \(did you mean "stratify"\?\)/);
    expect(byPath['stages.b.stratfy']).toMatchObject({ line: 11, column: 5 });
    expect(byPath['stages.c.input'].message).toMatch(/unknown stage "missing-stage"; stages in this spec: a, b, c/);
    expect(byPath['stages.c.timeout'].message).toMatch(/expected a duration .* found "5 minutes"/);
    // problems come in file order
    expect(problems.map((p) => p.line)).toEqual([...problems.map((p) => p.line)].sort((x, y) => x! - y!));
  });

  test('names a dependency cycle and a stage depending on itself', () => {
    const cycle = problemsOf(`${header}stages:\n  a: { type: noop, after: [b] }\n  b: { type: noop, after: [a] }\n`);
    expect(cycle.map((p) => p.message).join('\n')).toMatch(/dependency cycle: a -> b -> a/);
    const self = problemsOf(`${header}stages:\n  a: { type: noop, after: [a] }\n`);
    expect(self[0]).toMatchObject({ path: 'stages.a.after.0' });
    expect(self[0].message).toMatch(/depends on itself/);
  });

  test('checks cross-field rules of data stages', () => {
    const problems = problemsOf(`${header}stages:
  c: { type: collect, sources: [{ path: "*.txt" }] }
  k: { type: clean, input: c, minChars: 50, maxChars: 10, nearDedup: { numPermutations: 100, bands: 32 } }
  a: { type: augment, input: k }
`);
    const messages = problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    expect(messages).toMatch(/stages.k.minChars: minChars \(50\) is greater than maxChars \(10\)/);
    expect(messages).toMatch(/stages.k.nearDedup.bands: numPermutations \(100\) must be divisible by bands \(32\)/);
    expect(messages).toMatch(/stages.a.input: augment reads a split stage/);
  });

  test('reports YAML syntax errors with their position', () => {
    const problems = problemsOf(`${header}stages:\n  a: { type: noop\n`);
    expect(problems[0].message).toMatch(/^YAML syntax/);
    expect(problems[0].line).toBeGreaterThanOrEqual(4);
  });

  test('rejects a wrong apiVersion and missing keys, naming them', () => {
    const problems = problemsOf('apiVersion: v0\nstages:\n  a: { type: collect }\n');
    const messages = problems.map((p) => `${p.path}: ${p.message}`);
    expect(messages).toContain('apiVersion: expected "tempered.dev/v1", found "v0"');
    expect(messages.some((m) => m.startsWith('name: missing required key'))).toBe(true);
    expect(messages.some((m) => m.startsWith('stages.a.sources: missing required key'))).toBe(true);
  });

  test('formats the error message as file:line:col path: message', () => {
    expect(() => loadSpecText(`${header}stages:\n  a: { type: noop, sleepMs: -1 }\n`, 'dir/spec.yaml')).toThrow(
      /dir\/spec\.yaml:4:\d+ stages\.a\.sleepMs: too small: expected number to be >=0, found -1/,
    );
  });
});

describe('training stage rules', () => {
  const base = `${header}stages:
  c: { type: collect, sources: [{ path: "*.txt" }] }
  s: { type: split, input: c }
  tok: { type: tokenizer, input: [s], vocabSize: 500 }
`;
  test('a valid two-phase chain passes and plans with every reference as an input', () => {
    const { spec } = loadSpecText(`${base}  base: { type: finetune, input: s, tokenizer: tok, objective: causal-lm, steps: 5 }
  domain: { type: finetune, input: s, from: base, objective: classify, lora: { rank: 4 } }
  eval: { type: evaluate, input: s, model: domain, gate: { macroF1: { min: 0.5 } } }
  student: { type: distill, input: s, teacher: domain }
  q: { type: quantize, model: student, input: s }
`, 'x.yaml');
    // targets default per engine: the tfjs trainer fills in query and value, torch PEFT's choice
    expect(spec.stages.domain).toMatchObject({ type: 'finetune', from: 'base', lora: { rank: 4, alpha: 16 } });
    expect((spec.stages.domain as { lora: { targets?: string[] } }).lora.targets).toBeUndefined();
    expect(spec.stages.student).toMatchObject({ model: { layers: 1, dModel: 64, heads: 2, context: 128 } });
  });

  test('references must point at stages of the right kind', () => {
    const problems = problemsOf(`${base}  ft: { type: finetune, input: c, tokenizer: s, objective: classify }
  fresh: { type: finetune, input: s, objective: causal-lm, model: { dModel: 100, heads: 3 } }
  eval: { type: evaluate, input: s, model: tok }
  student: { type: distill, input: s, teacher: eval }
`);
    const messages = problems.map((p) => `${p.path}: ${p.message}`).join('\\n');
    expect(messages).toMatch(/stages\.ft\.input: "c" is a collect stage; finetune reads a split/);
    expect(messages).toMatch(/stages\.ft\.tokenizer: "s" is a split stage; tokenizer must name a tokenizer stage/);
    expect(messages).toMatch(/stages\.fresh\.tokenizer: a fresh model needs a tokenizer/);
    expect(messages).toMatch(/stages\.fresh\.model\.heads: dModel \(100\) must be divisible by heads \(3\)/);
    expect(messages).toMatch(/stages\.eval\.model: "tok" is a tokenizer stage; model must name a finetune, distill or quantize stage/);
    expect(messages).toMatch(/stages\.student\.teacher: "eval" is an evaluate stage; teacher must name a finetune stage/);
  });

  test('an unknown reference in a named field suggests the closest stage', () => {
    const problems = problemsOf(`${base}  ft: { type: finetune, input: s, tokenizer: tokk, objective: causal-lm }
`);
    expect(problems.map((p) => p.message)).toContain('unknown stage "tokk" (did you mean "tok"?); stages in this spec: c, s, tok, ft');
  });
});
