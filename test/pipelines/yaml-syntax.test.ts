import { SpecValidationError } from '../../pipelines/errors';
import { loadSpecText, unclosedConstructs } from '../../pipelines/load';

// A YAML syntax error is reported where the parser gave up and where the construct opened.

const spec = (line6: string) =>
  ['apiVersion: tempered.dev/v1', 'name: yaml-errors', 'stages:', '  a:', '    type: noop', line6, '  b:', '    type: noop', '    after: [a]', '  c:', '    type: noop', ''].join('\n');

function problemsOf(text: string): string[] {
  try {
    loadSpecText(text, 'spec.yaml');
  } catch (err) {
    if (err instanceof SpecValidationError) return err.problems.map((p) => `${p.line}:${p.column} ${p.message}`);
    throw err;
  }
  return [];
}

test('an unclosed [ is pointed at where it opened, not only where parsing stopped', () => {
  const problems = problemsOf(spec('    description: [ "one", "two"'));
  expect(problems.length).toBeGreaterThan(0);
  expect(problems[0]).toContain('the "[" opened at 6:18 is never closed');
});

test('an unclosed quote is pointed at where it opened', () => {
  const problems = problemsOf(spec('    description: "one'));
  expect(problems.join('\n')).toContain('the " quote opened at 6:18 is never closed');
});

test('balanced brackets and quotes report nothing unclosed', () => {
  expect(unclosedConstructs('a: [1, { b: "x" }]\nc: \'y\'\n')).toEqual([]);
  expect(problemsOf(spec('    description: "[ not a bracket"'))).toEqual([]);
});

test('redact: true means everything redacted (as the default); a wrong value says what is accepted', () => {
  const base = 'apiVersion: tempered.dev/v1\nname: r\nstages:\n  a: { type: collect, sources: [{ path: "*.txt" }] }\n';
  const loaded = loadSpecText(`${base}  b: { type: clean, input: a, redact: true }\n`, 'spec.yaml');
  const defaults = loadSpecText(`${base}  b: { type: clean, input: a }\n`, 'spec.yaml');
  const redactOf = (stage: unknown) => (stage as { redact: unknown }).redact;
  expect(redactOf(loaded.spec.stages.b)).toEqual(redactOf(defaults.spec.stages.b));
  expect(redactOf(loaded.spec.stages.b)).toEqual({ emails: true, phones: true, ips: true, cards: true });
  const problems = problemsOf(`${base}  b: { type: clean, input: a, redact: yes please }\n`);
  expect(problems.join('\n')).toContain('expected true (redact everything), false (nothing), or a map of kinds to redact');
});
