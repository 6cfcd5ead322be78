import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { ACTIVITY_OPTION_RULES, activityOptionIssues, retryPolicyOf } from '../../pipelines/activity-options';
import { SpecValidationError } from '../../pipelines/errors';
import { loadSpecFile, loadSpecText } from '../../pipelines/load';
import { planPipeline, type StageActivityOptions } from '../../pipelines/plan';
import { MAX_DESCRIPTION_CHARS } from '../../pipelines/schema';
import { outputPathProblem } from '../../pipelines/stage-types';
import { problemsOf } from '../support/spec-problems';

// Values Temporal would refuse, that switch a safety off, or that are absurd fail at validation,
// each with its position; and no stage can silently vanish from the stages map.

const header = 'apiVersion: tempered.dev/v1\nname: t\n';

const byPath = (yaml: string) => Object.fromEntries(problemsOf(yaml).map((p) => [p.path, p]));

describe('activity options', () => {
  test.each([
    ['timeout: 0', 'stages.a.timeout', /must be from 1s to 30d, found 0ms: Temporal refuses a zero start-to-close timeout.*set e.g. "timeout: 1h"/],
    ['timeout: "0s"', 'stages.a.timeout', /found 0ms/],
    ['timeout: 31d', 'stages.a.timeout', /found 31d/],
    ['heartbeatTimeout: 0', 'stages.a.heartbeatTimeout', /must be from 2s to 1h, found 0ms: 0 turns lost-worker detection off/],
    ['heartbeatTimeout: 1500ms', 'stages.a.heartbeatTimeout', /found 1500ms/],
    ['heartbeatTimeout: 2h', 'stages.a.heartbeatTimeout', /found 2h/],
    ['retry: { maxAttempts: 0 }', 'stages.a.retry.maxAttempts', /found 0: Temporal reads 0 as "retry forever"/],
    ['retry: { maxAttempts: -1 }', 'stages.a.retry.maxAttempts', /found -1/],
    ['retry: { maxAttempts: 1.5 }', 'stages.a.retry.maxAttempts', /must be a whole number from 1 to 100, found 1.5/],
    ['retry: { backoffCoefficient: 0.9 }', 'stages.a.retry.backoffCoefficient', /must be from 1 to 10, found 0.9: Temporal refuses less than 1/],
    ['retry: { initialInterval: 0 }', 'stages.a.retry.initialInterval', /must be from 1ms to 1d, found 0ms: Temporal refuses 0/],
    ['retry: { maximumInterval: 0 }', 'stages.a.retry.maximumInterval', /found 0ms: Temporal refuses 0/],
    ['retry: { maximumInterval: 2d }', 'stages.a.retry.maximumInterval', /found 2d/],
  ])('%s is refused at its position, naming the value and the fix', (option, key, message) => {
    const problems = byPath(`${header}stages:\n  a: { type: noop, ${option} }\n`);
    expect(problems[key]).toMatchObject({ line: 4 });
    expect(problems[key].column).toBeGreaterThan(20);
    expect(problems[key].message).toMatch(message);
  });

  test('the same bounds hold for defaults', () => {
    const problems = byPath(`${header}defaults: { timeout: 0, heartbeatTimeout: 0, retry: { maxAttempts: 0 } }\nstages:\n  a: { type: noop }\n`);
    expect(Object.keys(problems).sort()).toEqual(['defaults.heartbeatTimeout', 'defaults.retry.maxAttempts', 'defaults.timeout']);
  });

  test('maximumInterval shorter than initialInterval is refused, also when one of them is inherited', () => {
    const own = byPath(`${header}stages:\n  a: { type: noop, retry: { initialInterval: 2m, maximumInterval: 1m } }\n`);
    expect(own['stages.a.retry.maximumInterval'].message).toMatch(/maximumInterval \(1m\) is shorter than initialInterval \(2m\), which Temporal refuses/);
    const inherited = byPath(`${header}defaults: { retry: { maximumInterval: 30s } }\nstages:\n  a: { type: noop, retry: { initialInterval: 1m } }\n`);
    expect(inherited['stages.a.retry.initialInterval'].message).toMatch(/maximumInterval \(30s, from defaults.retry\) is shorter than initialInterval \(1m\)/);
    const fromDefault = byPath(`${header}stages:\n  a: { type: noop, retry: { initialInterval: 5m } }\n`);
    expect(fromDefault['stages.a.retry.initialInterval'].message).toMatch(/maximumInterval \(1m, from the default\)/);
    const defaults = byPath(`${header}defaults: { retry: { initialInterval: 10s, maximumInterval: 5s } }\nstages:\n  a: { type: noop }\n`);
    expect(Object.keys(defaults)).toEqual(['defaults.retry.maximumInterval']);
  });

  test('the bounds themselves are accepted', () => {
    const { spec } = loadSpecText(
      `${header}defaults: { timeout: 1s, heartbeatTimeout: 2s, retry: { maxAttempts: 1, initialInterval: 1ms, maximumInterval: 1ms, backoffCoefficient: 1 } }
stages:
  a: { type: noop, timeout: 30d, heartbeatTimeout: 1h, retry: { maxAttempts: 100, initialInterval: 1d, maximumInterval: 1d, backoffCoefficient: 10 } }
`,
      'spec.yaml',
    );
    expect(spec.stages.a.timeout).toBe(30 * 86_400_000);
  });

  const valid: StageActivityOptions = {
    taskQueue: 'cpu',
    startToCloseTimeoutMs: 3_600_000,
    heartbeatTimeoutMs: 60_000,
    retry: { maximumAttempts: 3, initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 60_000 },
  };

  test("the workflow's guard finds nothing wrong in any plan of a shipped or test spec", async () => {
    const dirs = [path.join(__dirname, '../../pipelines/examples'), path.join(__dirname, '../fixtures/specs')];
    let planned = 0;
    for (const dir of dirs) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
        let plan;
        try {
          plan = planPipeline(await loadSpecFile(path.join(dir, file)));
        } catch (err) {
          if (err instanceof SpecValidationError) continue; // malformed on purpose
          throw err;
        }
        for (const stage of plan.stages) expect({ stage: stage.name, issues: activityOptionIssues(stage.activity) }).toEqual({ stage: stage.name, issues: [] });
        planned++;
      }
    }
    expect(planned).toBeGreaterThan(2);
    expect(activityOptionIssues(valid)).toEqual([]);
  });

  test("the workflow's guard names each field a hand-built plan got wrong", () => {
    const issues = activityOptionIssues({
      ...valid,
      startToCloseTimeoutMs: 0,
      heartbeatTimeoutMs: 0,
      retry: { maximumAttempts: 0, initialInterval: 5000, backoffCoefficient: 0.5, maximumInterval: 1000 },
    });
    expect(issues.map((i) => i.key)).toEqual(['timeout', 'heartbeatTimeout', 'retry.maxAttempts', 'retry.backoffCoefficient', 'retry.maximumInterval']);
    expect(issues[0].message).toMatch(/found 0ms/);
    expect(issues[4].message).toMatch(/maximumInterval \(1s\) is shorter than initialInterval \(5s\)/);
    // Missing or non-numeric options (a plan from elsewhere) are refused too, not passed to the server.
    expect(activityOptionIssues(undefined).map((i) => i.key)).toEqual([
      'timeout', 'heartbeatTimeout', 'retry.maxAttempts', 'retry.initialInterval', 'retry.backoffCoefficient', 'retry.maximumInterval', 'resources',
    ]);
    expect(activityOptionIssues({ ...valid, startToCloseTimeoutMs: '1h' as unknown as number })[0].message).toMatch(/must be a duration from 1s to 30d, found "1h"/);
  });

  test('the rule table documents every bound it enforces', () => {
    for (const rule of Object.values(ACTIVITY_OPTION_RULES)) {
      expect(rule.min).toBeLessThan(rule.max);
      expect(rule.why.length).toBeGreaterThan(10);
    }
  });
});

describe('upper bounds', () => {
  test.each([
    ['noop', 'sleepMs: 1e12', 'sleepMs', '86,400,000'],
    ['noop', 'failAttempts: 101', 'failAttempts', '100'],
    ['collect', 'sources: [{ path: "*.txt" }], limit: 1e12', 'limit', '1,000,000,000'],
    ['clean', 'input: c, maxChars: 1e9', 'maxChars', '100,000,000'],
    ['finetune', 'input: s, tokenizer: k, objective: classify, steps: 1e12', 'steps', '100,000,000'],
    ['finetune', 'input: s, tokenizer: k, objective: classify, validateEvery: 1e9', 'validateEvery', '100,000,000'],
    ['finetune', 'input: s, tokenizer: k, objective: classify, optimizer: { warmupSteps: 1e9 }', 'optimizer.warmupSteps', '100,000,000'],
    ['distill', 'input: s, teacher: f, steps: 1e12', 'steps', '100,000,000'],
  ])('%s %s is refused, stating the limit', (type, options, key, limit) => {
    const problems = byPath(`${header}stages:
  c: { type: collect, sources: [{ path: "*.txt" }] }
  s: { type: split, input: c }
  k: { type: tokenizer, input: s }
  f: { type: finetune, input: s, tokenizer: k, objective: classify }
  x: { type: ${type}, ${options} }
`);
    expect(problems[`stages.x.${key}`]).toMatchObject({ line: 8 });
    expect(problems[`stages.x.${key}`].message).toContain(`too big: expected at most ${limit}, found`);
  });

  test('a description is at most 4 KiB, for the pipeline and for a stage', () => {
    const long = 'd'.repeat(3 * 1024 * 1024);
    const problems = byPath(`${header}description: ${long}\nstages:\n  a: { type: noop, description: ${long} }\n`);
    expect(problems.description).toMatchObject({ line: 3, column: 14 });
    expect(problems.description.message).toBe(`a description is at most ${MAX_DESCRIPTION_CHARS} characters, found ${long.length}; keep it to a line and put longer notes in comments or a README`);
    expect(problems['stages.a.description']).toMatchObject({ line: 5 });
    expect(() => loadSpecText(`${header}description: ${'d'.repeat(MAX_DESCRIPTION_CHARS)}\nstages:\n  a: { type: noop }\n`, 'x.yaml')).not.toThrow();
  });
});

describe('stage names', () => {
  test('a stage named __proto__ is refused, never dropped', () => {
    const problems = byPath(`${header}stages:\n  __proto__: { type: noop }\n  b: { type: noop }\n`);
    expect(problems['stages.__proto__']).toMatchObject({ line: 4 });
    expect(problems['stages.__proto__'].message).toMatch(/stage name "__proto__" is reserved: .* the stage would vanish; rename the stage/);
  });

  test('constructor and prototype are reserved stage names', () => {
    const problems = byPath(`${header}stages:\n  constructor: { type: noop }\n  prototype: { type: noop }\n`);
    expect(problems['stages.constructor']).toMatchObject({ line: 4, column: 3 });
    expect(problems['stages.constructor'].message).toMatch(/^stage name "constructor" is reserved/);
    expect(problems['stages.prototype']).toMatchObject({ line: 5, column: 3 });
  });

  test('a reference to a name every object has is an unknown stage, not a match', () => {
    const problems = byPath(`${header}stages:\n  a: { type: noop, after: [constructor] }\n`);
    expect(problems['stages.a.after.0'].message).toMatch(/unknown stage "constructor"; stages in this spec: a/);
  });

  test('a malformed stage name is pointed at as a name', () => {
    const problems = byPath(`${header}stages:\n  Bad_Name: { type: noop }\n`);
    expect(problems['stages.Bad_Name']).toMatchObject({ line: 4, column: 3 });
    expect(problems['stages.Bad_Name'].message).toMatch(/^stage name "Bad_Name": expected lowercase letters, digits and dashes/);
  });

  test('__proto__ as any other key (a command env, a gate) is refused too', () => {
    const problems = byPath(`${header}stages:\n  a: { type: command, command: [x], env: { __proto__: "1" } }\n`);
    expect(problems['stages.a.env.__proto__'].message).toMatch(/key "__proto__" is reserved/);
    expect(Object.keys(problems)).toEqual(['stages.a.env.__proto__']);
  });

  test('a pipeline name with "--" is refused: workflow ids are <pipeline>--<run id>', () => {
    const problems = byPath(`apiVersion: tempered.dev/v1\nname: a--b\nstages:\n  a: { type: noop }\n`);
    expect(problems.name).toMatchObject({ line: 2, column: 7 });
    expect(problems.name.message).toMatch(/must not contain "--"/);
    expect(() => loadSpecText(`apiVersion: tempered.dev/v1\nname: a-b\nstages:\n  a--b: { type: noop }\n`, 'x.yaml')).not.toThrow();
  });
});

describe('command outputs', () => {
  test.each([
    ['..', /found "..": ".." would leave it/],
    ['../x', /found "..\/x": ".." would leave it/],
    ['.', /found ".": "." is the directory itself/],
    ['./', /found ".\/"/],
    ['', /an output needs a name/],
    ['/etc/passwd', /found "\/etc\/passwd": an absolute path/],
    ['a\\b', /a backslash/],
    ['a/b', /a nested path; declare its top-level directory "a\/" instead/],
    ['a//', /"\/\/" an empty name/],
    ['a b', /letters, digits/],
    ['log', /keeps for itself/],
    ['manifest.json', /keeps for itself/],
    ['log.txt/', /keeps for itself/],
  ])('%j is refused', (output, message) => {
    expect(outputPathProblem(output)).toMatch(message);
  });

  test.each(['model.bin', 'ckpt/', 'ckpt', '.hidden', 'a..b', '...'])('%j is a file or directory inside the outputs directory', (output) => {
    expect(outputPathProblem(output)).toBeUndefined();
  });

  test('directory outputs validate; duplicates are refused with the position', () => {
    const { spec } = loadSpecText(`${header}stages:\n  a: { type: command, command: [x], outputs: [model.bin, ckpt/] }\n`, 'x.yaml');
    expect(spec.stages.a).toMatchObject({ outputs: ['model.bin', 'ckpt/'] });
    const problems = byPath(`${header}stages:\n  a: { type: command, command: [x], outputs: [ckpt/, "..", ckpt] }\n`);
    expect(problems['stages.a.outputs.1']).toMatchObject({ line: 4, column: 54 });
    expect(problems['stages.a.outputs.2'].message).toMatch(/output "ckpt" is declared twice \(found "ckpt\/" before it\)/);
  });
});

test('a plan made before the retry fields took Temporal names is read the same (resumed and replayed runs)', () => {
  const legacy = { maximumAttempts: 3, initialIntervalMs: 1000, backoffCoefficient: 2, maximumIntervalMs: 60_000 };
  expect(retryPolicyOf(legacy)).toEqual({ maximumAttempts: 3, initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 60_000 });
  expect(activityOptionIssues({ taskQueue: 'cpu', startToCloseTimeoutMs: 60_000, heartbeatTimeoutMs: 30_000, retry: legacy as never })).toEqual([]);
  expect(activityOptionIssues({ taskQueue: 'cpu', startToCloseTimeoutMs: 60_000, heartbeatTimeoutMs: 30_000, retry: { ...legacy, maximumIntervalMs: 10 } as never }).map((i) => i.key)).toEqual(['retry.maximumInterval']);
});
