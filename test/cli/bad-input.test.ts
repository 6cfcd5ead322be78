import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { tempered } from '../support/cli';

// Malformed specs through the real `tempered validate`: each exits 2 at once with every problem,
// positioned as file:line:column, saying what was found and how to fix it.

const fixture = (name: string) => `test/fixtures/bad-input/specs/${name}`;

/** Runs `tempered validate`, which must exit 2 with nothing on stdout, well before the CLI helper's kill timeout. */
async function rejects(file: string): Promise<string> {
  const started = Date.now();
  const { code, stdout, stderr } = await tempered(['validate', file], {}, 60_000);
  expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  expect(Date.now() - started).toBeLessThan(30_000);
  expect(stderr).toMatch(new RegExp(`^\\d+ problems? in ${escape(file)}:\\n`));
  return stderr;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const DURATION = 'expected a duration such as "500ms", "30s", "5m", "2h" or a number of milliseconds';
const MAPPING = 'a spec is a YAML mapping of apiVersion, name and stages';

test.concurrent.each([
  ['ratios-not-one.yaml', ['ratios-not-one.yaml:9:13 stages.split.ratios: train + validation + test must sum to 1, found 0.8 + 0.2 + 0.2 = 1.2; e.g. { train: 0.7, validation: 0.1, test: 0.2 }']],
  ['self-dependency.yaml', ['self-dependency.yaml:8:12 stages.clean.input: stage "clean" depends on itself; name an upstream stage instead']],
  ['cycle.yaml', ['cycle.yaml:6:32 stages.clean.input: dependency cycle: clean -> collect -> split -> clean; remove one of these dependencies (input, after, or a tokenizer/from/model/teacher reference)']],
  ['unknown-stage-type.yaml', ['unknown-stage-type.yaml:8:11 stages.model.type: unknown stage type "fine-tune" (did you mean "finetune"?); known types: collect, clean, augment, split']],
  ['unknown-key.yaml', ['unknown-key.yaml:8:5 stages.collect.labelFromPth: unknown key "labelFromPth" (did you mean "labelFromPath"?); allowed here: ']],
  [
    'glob-not-a-string.yaml',
    [
      'glob-not-a-string.yaml:9:15 stages.collect.sources.0.path: a glob must be a string, found 2024; quote it, e.g. path: "2024/*.txt"',
      'glob-not-a-string.yaml:10:15 stages.collect.sources.1.path: path takes one glob, found a list of 2; write one source per glob: sources: [{ path: "ham/*.txt" }, { path: "spam/*.txt" }]',
      'glob-not-a-string.yaml:11:9 stages.collect.sources.2: a source is { path: <glob> } or { s3: s3://bucket/prefix }, found the bare string "archive/*.txt"; write - path: "archive/*.txt"',
    ],
  ],
  [
    'classify-without-tokenizer.yaml',
    ['classify-without-tokenizer.yaml:11:5 stages.classifier.tokenizer: a fresh model needs a tokenizer: set "tokenizer: <tokenizer stage>", or "from: <finetune stage>" to continue a trained model'],
  ],
  [
    'bad-durations.yaml',
    [
      `bad-durations.yaml:5:12 defaults.timeout: ${DURATION}, found "5 minutes"`,
      `bad-durations.yaml:6:21 defaults.heartbeatTimeout: ${DURATION}, found -1`,
      `bad-durations.yaml:7:29 defaults.retry.initialInterval: ${DURATION}, found "1x"`,
      `bad-durations.yaml:9:32 stages.wait.timeout: ${DURATION}, found ""`,
      `bad-durations.yaml:9:54 stages.wait.heartbeatTimeout: ${DURATION}, found "2w"`,
    ],
  ],
  [
    'unsafe-activity-options.yaml',
    [
      'unsafe-activity-options.yaml:6:12 defaults.timeout: must be from 1s to 30d, found 0ms: Temporal refuses a zero start-to-close timeout',
      'unsafe-activity-options.yaml:7:21 defaults.heartbeatTimeout: must be from 2s to 1h, found 0ms: 0 turns lost-worker detection off',
      'unsafe-activity-options.yaml:8:25 defaults.retry.maxAttempts: must be from 1 to 100, found 0: Temporal reads 0 as "retry forever"',
      'unsafe-activity-options.yaml:8:48 defaults.retry.backoffCoefficient: must be from 1 to 10, found 0.5: Temporal refuses less than 1',
      'unsafe-activity-options.yaml:8:70 defaults.retry.initialInterval: must be from 1ms to 1d, found 0ms: Temporal refuses 0',
      'unsafe-activity-options.yaml:10:45 stages.wait.retry.maxAttempts: must be a whole number from 1 to 100, found 2.5',
      'unsafe-activity-options.yaml:10:88 stages.wait.retry.maximumInterval: maximumInterval (1m) is shorter than initialInterval (2m), which Temporal refuses; raise maximumInterval to at least 2m',
      'unsafe-activity-options.yaml:11:32 stages.slow.timeout: must be from 1s to 30d, found 31d',
      'unsafe-activity-options.yaml:11:55 stages.slow.heartbeatTimeout: must be from 2s to 1h, found 1s',
    ],
  ],
  [
    'absurd-values.yaml',
    [
      'absurd-values.yaml:5:32 stages.wait.sleepMs: too big: expected at most 86,400,000, found 1000000000000; lower it',
      'absurd-values.yaml:5:52 stages.wait.failAttempts: too big: expected at most 100, found 1000',
      'absurd-values.yaml:6:66 stages.collect.limit: too big: expected at most 1,000,000,000, found 1000000000000',
      'absurd-values.yaml:9:87 stages.train.steps: too big: expected at most 100,000,000, found 1000000000000',
      'absurd-values.yaml:9:110 stages.train.checkpointEvery: too big: expected at most 100,000,000, found 1000000000',
    ],
  ],
  [
    'reserved-names.yaml',
    [
      'reserved-names.yaml:4:7 name: must not contain "--": workflow ids are <pipeline>--<run id>',
      'reserved-names.yaml:6:14 stages.__proto__: stage name "__proto__" is reserved: JavaScript takes it for an object\'s prototype, so the stage would vanish; rename the stage',
      'reserved-names.yaml:7:3 stages.constructor: stage name "constructor" is reserved',
      'reserved-names.yaml:8:37 stages.after-them.after.0: unknown stage "toString"',
    ],
  ],
  [
    'command-outputs.yaml',
    [
      'command-outputs.yaml:10:9 stages.train.outputs.0: an output must stay inside the outputs directory, found "..": ".." would leave it; name a file (e.g. "model.bin") or a directory ending in "/" (e.g. "ckpt/")',
      'command-outputs.yaml:11:9 stages.train.outputs.1: an output names one file or directory inside the outputs directory, found "."',
      'command-outputs.yaml:12:9 stages.train.outputs.2: an output is relative to the outputs directory, found "/etc/passwd"',
      'command-outputs.yaml:13:9 stages.train.outputs.3: an output is a file or directory directly inside the outputs directory, found "runs/ckpt": a nested path; declare its top-level directory "runs/" instead',
      'command-outputs.yaml:14:9 stages.train.outputs.4: an output name must not be one the stage keeps for itself, found "log.txt"',
      'command-outputs.yaml:16:9 stages.train.outputs.6: output "ckpt" is declared twice (found "ckpt/" before it)',
    ],
  ],
  ['not-a-mapping-list.yaml', [`not-a-mapping-list.yaml:2:1 (spec): ${MAPPING}, found a list of 2 items; start from pipelines/examples/demo.yaml`]],
  ['not-a-mapping-scalar.yaml', [`not-a-mapping-scalar.yaml:1:1 (spec): ${MAPPING}, found a single string value; start from pipelines/examples/demo.yaml`]],
  ['empty.yaml', [`empty.yaml (spec): ${MAPPING}, found nothing (the file is empty or only comments); start from pipelines/examples/demo.yaml`]],
  [
    'binary.yaml',
    ['binary.yaml:1:1 (spec): this is not a YAML text file (it holds binary bytes: is it compressed, an image, a program?); pass the path of a pipeline spec, or start from pipelines/examples/demo.yaml'],
  ],
])('validate rejects %s, naming the input and the fix', async (name, expected) => {
  const stderr = await rejects(fixture(name));
  for (const line of expected) expect(stderr).toContain(`  ${fixture(line)}`);
});

test('validate rejects huge values quickly, quoting them in 60 characters', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-huge-spec-'));
  try {
    // A 2 MB name and an 8 MB description (a description is one line, at most 4 KiB).
    const file = path.join(dir, 'huge.yaml');
    const name = 'x'.repeat(2 * 1024 * 1024);
    await writeFile(file, `apiVersion: tempered.dev/v1\nname: ${name}\ndescription: "${'lorem ipsum '.repeat(700 * 1024)}"\nstages:\n  wait: { type: noop }\n`);
    const stderr = await rejects(file);
    expect(stderr).toContain(`2 problems in ${file}:\n  ${file}:2:7 name: expected lowercase letters, digits and dashes (e.g. "domain-clean"), at most 64 characters, found "${'x'.repeat(56)}...`);
    expect(stderr).toContain(`  ${file}:3:14 description: a description is at most 4096 characters, found ${'lorem ipsum '.length * 700 * 1024}; keep it to a line`);
    expect(stderr.length).toBeLessThan(1000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('validate rejects a spec whose aliases expand exponentially ("billion laughs") as a spec problem', async () => {
  const stderr = await rejects(fixture('alias-bomb.yaml'));
  expect(stderr).toContain(`${fixture('alias-bomb.yaml')} (spec): YAML aliases expand too far (`);
  expect(stderr).toContain('write the repeated values out, or nest aliases less deeply');
});

test('validate names numbers too large to represent', async () => {
  const stderr = await rejects(fixture('number-overflow.yaml'));
  expect(stderr).toContain(`${fixture('number-overflow.yaml')}:5:32 stages.wait.sleepMs: expected number, found Infinity`);
  expect(stderr).toContain(`${fixture('number-overflow.yaml')}:5:53 stages.wait.failAttempts: too big: expected int to be <=9007199254740991, found 1e+23`);
});
