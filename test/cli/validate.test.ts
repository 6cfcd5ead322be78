import * as path from 'node:path';
import { parse } from 'yaml';
import { ROOT, tempered } from '../support/cli';

const fixture = (name: string) => path.join('test/fixtures/specs', name);

test('validate reports every problem of a malformed spec with its position and exits 2', async () => {
  const { code, stderr, stdout } = await tempered(['validate', fixture('malformed.yaml')]);
  expect(code).toBe(2);
  expect(stdout).toBe('');
  const lines = stderr.trim().split('\n');
  expect(lines[0]).toBe('5 problems in test/fixtures/specs/malformed.yaml:');
  expect(stderr).toContain('test/fixtures/specs/malformed.yaml:2:7 name: expected lowercase letters, digits and dashes');
  expect(stderr).toContain('malformed.yaml:5:11 stages.collect.type: unknown stage type "colect" (did you mean "collect"?)');
  expect(stderr).toContain('malformed.yaml:9:12 stages.clean.input: unknown stage "colect" (did you mean "collect"?)');
  expect(stderr).toContain('malformed.yaml:10:15 stages.clean.minChars: expected number, found "many"');
  expect(stderr).toMatch(/malformed\.yaml:14:13 stages\.split\.ratios: train \+ validation \+ test must sum to 1, found 0\.6 \+ 0\.1 \+ 0\.2 = 0\.9/);
});

test('validate of a missing file names it and exits 2', async () => {
  const { code, stderr } = await tempered(['validate', 'nope.yaml']);
  expect(code).toBe(2);
  expect(stderr).toMatch(/nope\.yaml .*cannot read the spec: no such file/);
});

test('validate --print shows the spec with defaults applied', async () => {
  const { code, stdout } = await tempered(['validate', '--print', path.join(ROOT, 'pipelines/examples/demo.yaml')]);
  expect(code).toBe(0);
  const printed = parse(stdout);
  expect(printed.defaults.retry).toEqual({ maxAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' });
  expect(printed.stages['domain-split'].ratios).toEqual({ train: 0.7, validation: 0.1, test: 0.2 });
  expect(printed.stages['domain-clean'].nearDedup.numPermutations).toBe(128);
});
