import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { planResume, verifyResume } from '../../cli/resume';
import { commitManifest, FileArtifactStore } from '../../activities/store';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { ArtifactRef, RunSummary } from '../../workflows/types';

// `resume --dry-run` says what the run will do: a reused result is read back the way the stage
// cache reads it, and one that no longer verifies is recomputed, with its descendants.

const spec = (seed = 42) => `apiVersion: tempered.dev/v1
name: r
seed: ${seed}
stages:
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  clean: { type: clean, input: collect }
  split: { type: split, input: clean }
  other: { type: noop }
  report: { type: noop, after: [split, other] }
`;

let store: FileArtifactStore;
let summary: RunSummary;
const outputs: Record<string, ArtifactRef> = {};
beforeEach(async () => {
  store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-resume-verify-')));
  const stages: RunSummary['stages'] = {};
  for (const [name, status] of Object.entries({ collect: 'succeeded', clean: 'succeeded', split: 'failed', other: 'succeeded', report: 'skipped' } as const)) {
    let manifest: ArtifactRef | undefined;
    if (status === 'succeeded') {
      outputs[name] = await store.put(`runs/r/old/${name}/records.jsonl`, `{"id":"${name}","text":"x"}\n`, 'application/x-ndjson');
      ({ manifest } = await commitManifest(store, `runs/r/old/${name}/`, {
        runId: 'old', pipeline: 'r', stage: name, type: 'noop', cacheKey: 'k', outputs: { records: outputs[name] }, metrics: {}, inputs: {},
      }));
    }
    stages[name] = { status, type: 'x', taskQueue: 'cpu', attempts: 1, cached: false, outputs: [], metrics: {}, ...(manifest ? { manifest } : {}) };
  }
  summary = { runId: 'old', workflowId: 'r--old', pipeline: 'r', status: 'failed', stages };
});

const actions = (decisions: Array<{ stage: string; action: string; reason: string }>) =>
  Object.fromEntries(decisions.map((d) => [d.stage, `${d.action}: ${d.reason}`]));

test('everything still verifies: the dry run reuses what planResume chose', async () => {
  const plan = planPipeline(loadSpecText(spec(), 'x.yaml'));
  const planned = planResume({ plan, summary }, plan);
  const verified = await verifyResume(store, planned, plan);
  expect(verified).toEqual(planned);
  expect(Object.keys(verified.reuse).sort()).toEqual(['clean', 'collect', 'other']);
});

test('a deleted artifact is recomputed, saying why, and so is everything downstream of it', async () => {
  const plan = planPipeline(loadSpecText(spec(), 'x.yaml'));
  await store.delete(store.keyFromUri(outputs.collect.uri));
  const verified = await verifyResume(store, planResume({ plan, summary }, plan), plan);
  expect(actions(verified.decisions)).toEqual({
    collect: expect.stringMatching(/^run: recompute \(its result from run old no longer verifies: .*records\.jsonl/),
    other: 'reuse: succeeded in run old',
    clean: 'run: recompute (upstream collect will run again)',
    split: 'run: it failed',
    report: 'run: upstream split will run again',
  });
  expect(Object.keys(verified.reuse)).toEqual(['other']);
});

test('a flipped byte is caught by its sha256', async () => {
  const plan = planPipeline(loadSpecText(spec(), 'x.yaml'));
  await writeFile(fileURLToPath(outputs.other.uri), '{"id":"other","text":"y"}\n'); // same size, other bytes
  const verified = await verifyResume(store, planResume({ plan, summary }, plan), plan);
  expect(actions(verified.decisions).other).toMatch(/^run: recompute \(its result from run old no longer verifies: .*sha256/);
  expect(Object.keys(verified.reuse).sort()).toEqual(['clean', 'collect']);
});

test('a changed pipeline seed runs every stage again', () => {
  const before = planPipeline(loadSpecText(spec(42), 'x.yaml'));
  const after = planPipeline(loadSpecText(spec(7), 'x.yaml'));
  const { decisions, reuse } = planResume({ plan: before, summary }, after);
  expect(reuse).toEqual({});
  expect(actions(decisions).collect).toBe('run: the pipeline seed changed (42 -> 7)');
});
