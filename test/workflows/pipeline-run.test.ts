import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { PipelineRun } from '../../workflows/pipeline-run';
import type { StageOutcome } from '../../workflows/types';

// collect -> clean -> split, and an independent `other`. The workflow calls skip() on a stage
// whose upstream produced nothing, or once the run has ended early.
const plan = planPipeline(
  loadSpecText(
    `apiVersion: tempered.dev/v1
name: p
stages:
  collect: { type: collect, sources: [{ path: "inbox/*.txt" }], incremental: { by: mtime } }
  clean: { type: clean, input: collect }
  split: { type: split, input: clean }
  other: { type: noop }
`,
    '/specs/p.yaml',
  ),
);
const manifest = { uri: 's3://b/manifest.json', sha256: 'a'.repeat(64), bytes: 1, mediaType: 'application/json' };
const outcome = (metrics: StageOutcome['metrics'] = {}): StageOutcome => ({ outputs: {}, metrics, manifest, attempt: 1 });
const NOTHING_NEW = 'nothing new since the last cycle';

describe('PipelineRun', () => {
  test('a run that ends early skips the rest with a note and still succeeds', () => {
    const run = new PipelineRun('r1', 'wf-1', plan);
    run.start('other');
    run.succeed('other', outcome());
    run.start('collect');
    run.succeed('collect', outcome({ endRun: NOTHING_NEW }));
    run.endEarly('collect', NOTHING_NEW);
    run.skip('clean');
    run.skip('split');

    const summary = run.finish();
    expect(summary.status).toBe('succeeded');
    expect(summary.endedEarly).toEqual({ stage: 'collect', reason: NOTHING_NEW });
    expect(summary.stages.clean).toMatchObject({ status: 'skipped', note: `not needed: ${NOTHING_NEW} (stage "collect")` });
    expect(summary.stages.split.note).toBe(summary.stages.clean.note);
    expect(summary.stages.collect).toMatchObject({ status: 'succeeded' });
    expect(summary.stages.collect.note).toBeUndefined();
    expect(summary.stages.other.note).toBeUndefined();
  });

  test('the first stage to end the run early is the one reported', () => {
    const run = new PipelineRun('r1', 'wf-1', plan);
    run.endEarly('collect', NOTHING_NEW);
    run.endEarly('other', 'something else');
    run.skip('clean');
    expect(run.finish().endedEarly).toEqual({ stage: 'collect', reason: NOTHING_NEW });
    expect(run.summary().stages.clean.note).toMatch(/\(stage "collect"\)$/);
  });

  test('a skipped stage without an early end fails the run, without a note', () => {
    const run = new PipelineRun('r1', 'wf-1', plan);
    run.start('collect');
    run.succeed('collect', outcome());
    run.start('clean');
    run.succeed('clean', outcome());
    run.skip('split');
    run.skip('other');

    const summary = run.finish();
    expect(summary.status).toBe('failed');
    expect(summary).not.toHaveProperty('endedEarly');
    expect(summary.stages.split.status).toBe('skipped');
    expect(summary.stages.split.note).toBeUndefined();
  });

  test('a failed stage fails the run even when another ended it early', () => {
    const run = new PipelineRun('r1', 'wf-1', plan);
    run.start('other');
    run.fail('other', 'boom', 3);
    run.start('collect');
    run.succeed('collect', outcome());
    run.endEarly('collect', NOTHING_NEW);
    run.skip('clean');
    run.skip('split');
    expect(run.finish().status).toBe('failed');
  });

  test('a run with every stage done succeeds without endedEarly', () => {
    const run = new PipelineRun('r1', 'wf-1', plan);
    for (const { name } of plan.stages) {
      run.start(name);
      run.succeed(name, outcome());
    }
    const summary = run.finish();
    expect(summary.status).toBe('succeeded');
    expect(summary).not.toHaveProperty('endedEarly');
  });

  test('stages skipped after a cancellation are cancelled, not noted as not needed', () => {
    const run = new PipelineRun('r1', 'wf-1', plan);
    run.endEarly('collect', NOTHING_NEW);
    run.cancel('other');
    run.skip('clean');
    expect(run.summary().stages.clean.status).toBe('cancelled');
    expect(run.summary().stages.clean.note).toBeUndefined();
  });
});

describe('PipelineRun.currentDetails (the Temporal UI line)', () => {
  test('counts finished stages and names the running and failed ones', () => {
    const run = new PipelineRun('r3', 'wf-3', plan);
    expect(run.currentDetails()).toBe('0/4 stages done');
    run.start('collect');
    run.start('other');
    run.succeed('other', { ...outcome(), cachedFrom: 'r0' });
    expect(run.currentDetails()).toBe('1/4 stages done · running collect · 1 from cache');
    run.fail('collect', 'boom', 3);
    run.skip('clean');
    run.skip('split');
    run.finish();
    expect(run.currentDetails()).toBe('failed: 1/4 stages done · failed collect · 1 from cache');
  });
});
