import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Metrics } from '../../workflows/types';
import { readDataset } from '../datasets';
import { classificationReport, perplexity } from '../ml/metrics';
import type { StageImplementation } from '../stage-runner';
import { optionsOf } from '../stage-options';
import { sample } from '../training/examples';
import { runTorch, torchEnv, TorchProgramError, writeJsonlFile, type TorchModelDescriptor } from './common';
import { fetchModel, uploadModel } from './model';

// The torch engine's quantize (python/tempered_torch/quantize.py): dynamic int8 — int8 weights per
// output channel and int8 matrix products on CPU — so the model gets smaller and faster, both
// measured here against its float original on the same test records in the same process.

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

interface Scored {
  predicted?: string;
  nll?: number;
  tokens?: number;
}

export const torchQuantizeStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'quantize');
  const env = await torchEnv(ctx);
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-quantize-'));
  try {
    const source = await fetchModel(ctx, options.model, path.join(work, 'model'), env.python);
    if (source.descriptor.quantized) throw new TorchProgramError(`"${options.model}" is int8 already; quantize the float model it came from`, true);
    const dataset = ctx.input.dataInputs.length > 0 ? ctx.input.inputs[ctx.input.dataInputs[0]] : undefined;
    const records = dataset?.outputs.test && options.compareExamples > 0 ? sample(await readDataset(ctx, dataset.outputs.test, 'the test split'), options.compareExamples, ctx.input.seed, 'quantize') : [];
    const testFile = path.join(work, 'test.jsonl');
    if (records.length > 0) await writeJsonlFile(testFile, records);
    const job = { ...source.job, out_dir: path.join(work, 'out'), eval_dir: path.join(work, 'eval'), ...(records.length > 0 ? { test: testFile } : {}) };
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job, null, 2));
    let reported: Record<string, unknown> = {};
    await runTorch(ctx, env.python, 'quantize', jobFile, work, (message) => {
      if (message.kind === 'metrics') reported = { ...reported, ...message.values };
      else if (message.kind === 'progress') ctx.progress({ engine: 'torch', ...message.details });
    });

    // The int8 model is whole on its own (adapters merged): it keeps the lineage, not the adapter flag.
    const descriptor: TorchModelDescriptor = { ...source.descriptor, adapter: false, quantized: { scheme: 'dynamic-int8' } };
    const outputs = await uploadModel(ctx, job.out_dir, descriptor);

    const bytesBefore = Number(reported.bytesBefore);
    const bytesAfter = Number(reported.bytesAfter);
    const metrics: Metrics = {
      engine: 'torch',
      scheme: options.scheme,
      method: 'dynamic int8 (int8 weights per output channel, activations quantized per batch; embeddings int8 at rest)',
      compute: `int8 matrix products on CPU (${String(reported.quantizedEngine)})`,
      bytesBefore,
      bytesAfter,
      reduction: round(1 - bytesAfter / bytesBefore),
      linearLayers: reported.linearLayers,
    };
    if (records.length > 0) {
      const read = async (name: string) => (await readFile(path.join(job.eval_dir, `${name}.jsonl`), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Scored);
      const [before, after] = [await read('float'), await read('int8')];
      const classify = source.descriptor.objective === 'classify';
      const metricOf = (scored: Scored[]) =>
        classify
          ? classificationReport(records.map((r) => r.label ?? ''), scored.map((s) => s.predicted ?? ''), source.descriptor.labels ?? []).macroF1
          : perplexity(scored.reduce((n, s) => n + (s.nll ?? 0), 0) / Math.max(1, scored.reduce((n, s) => n + (s.tokens ?? 0), 0)));
      const [metricBefore, metricAfter] = [metricOf(before), metricOf(after)];
      const latencyBeforeMs = Number(reported.latencyBeforeMs);
      const latencyAfterMs = Number(reported.latencyAfterMs);
      Object.assign(metrics, {
        metric: classify ? 'macroF1' : 'perplexity',
        metricBefore: round(metricBefore),
        metricAfter: round(metricAfter),
        metricDelta: round(metricAfter - metricBefore),
        ...(classify ? { predictionAgreement: round(before.filter((b, i) => b.predicted === after[i]?.predicted).length / before.length) } : {}),
        latencyBeforeMs: round(latencyBeforeMs),
        latencyAfterMs: round(latencyAfterMs),
        latencyDelta: round(latencyAfterMs - latencyBeforeMs),
        speedup: round(latencyBeforeMs / latencyAfterMs),
        latencyRecords: reported.latencyRecords,
        threads: reported.threads,
      });
    }
    return { outputs, metrics };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};
