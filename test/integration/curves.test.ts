import * as path from 'node:path';
import { readCurves } from '../../activities/curves';
import { newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// A stage that reports 200,000 steps: its curve is an artifact, so activity results, the next
// stage's input and the workflow result stay small (Temporal refuses payloads over ~2 MB; the
// history inline would be ~11 MB).

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const STEPS = 200_000;
// A bring-your-own trainer reporting every step through the command protocol.
const program = `
const lines = [];
for (let step = 1; step <= ${STEPS}; step++) {
  lines.push(JSON.stringify({ tempered: 'progress', step, totalSteps: ${STEPS}, loss: 2 / Math.sqrt(step), lr: 0.001 }));
  if (lines.length === 5000) { process.stdout.write(lines.join('\\n') + '\\n'); lines.length = 0; }
}
process.stdout.write(lines.join('\\n') + '\\n');
`;

test('a stage reporting 200,000 steps keeps its curve in the store and its payloads small', async () => {
  const spec = `
apiVersion: tempered.dev/v1
name: long-curve
stages:
  train:
    type: command
    command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(program)}]
  after-train: { type: noop, input: train }
`;
  const plan = planPipeline(loadSpecText(spec, path.join(__dirname, 'long-curve.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const summary = await waitForSummary(h.client, workflowId, 300_000);
  expect(summary.stages.train.error).toBeUndefined();
  expect(summary.status).toBe('succeeded');
  expect(summary.stages['after-train'].status).toBe('succeeded');

  // the workflow's result (and so every payload that carried the stage's result) is small
  expect(JSON.stringify(summary).length).toBeLessThan(20_000);
  expect(summary.stages.train.metrics).toMatchObject({ progressLines: STEPS, curve: { points: STEPS, last: { step: STEPS, loss: 2 / Math.sqrt(STEPS) } } });
  const ref = summary.stages.train.outputs.find((o) => o.name === 'curves');
  expect(ref).toBeDefined();
  const curve = await readCurves(h.store, { ...ref!, mediaType: 'application/jsonl' });
  expect(curve).toHaveLength(STEPS);
  expect(curve[0]).toEqual({ step: 1, loss: 2, lr: 0.001 });
  expect(curve[STEPS - 1].step).toBe(STEPS);
}, 360_000);
