import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ArtifactRef, Metrics } from '../../workflows/types';
import { createRandom, loadWordNetSynonyms, seedFrom } from '../data';
import { readDataset } from '../datasets';
import { classificationReport, generationScores, perplexity, rougePair } from '../ml/metrics';
import { perturbText } from '../ml/perturb';
import type { StageImplementation } from '../stage-runner';
import { optionsOf } from '../stage-options';
import { writeJsonl } from '../store';
import { sample } from '../training/examples';
import { checkGate, GateFailedError } from '../training/gate';
import { PREDICTIONS_OUTPUT, textSnippet, type PredictionRow } from '../training/predictions';
import { runTorch, torchEnv, writeJsonlFile } from './common';
import { fetchModel } from './model';
import { referenceOf, sftRecords } from './sft';

/** Tokens generated per record for BLEU/ROUGE when the stage does not say. */
const DEFAULT_MAX_NEW_TOKENS = 32;

// The torch engine's evaluate: the model predicts in tempered_torch.predict; every metric is
// computed here with the same code as the tfjs engine's (activities/ml/metrics.ts), so the two
// engines' numbers compare.

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

export const torchEvaluateStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'evaluate');
  const env = await torchEnv(ctx);
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-eval-'));
  try {
    const dataset = ctx.input.inputs[ctx.input.dataInputs[0]];
    const records = sample(await readDataset(ctx, dataset?.outputs[options.split], `the ${options.split} split`), options.maxExamples, ctx.input.seed, 'evaluate');
    const model = await fetchModel(ctx, options.model, path.join(work, 'model'), env.python);
    const { descriptor } = model;

    const files: Record<string, string> = { test: path.join(work, 'test.jsonl') };
    const classify = descriptor.objective === 'classify';
    const sft = descriptor.objective === 'sft';
    // sft: the same conversations as training built (its templates travel in the descriptor); the reference is the reply.
    const conversations = sft ? sftRecords(records, descriptor.sft, ctx.input.stage) : undefined;
    await writeJsonlFile(files.test, conversations ?? records);
    const wanted = new Set(options.metrics ?? (classify ? ['accuracy', 'f1'] : sft ? ['perplexity', 'bleu', 'rouge'] : ['perplexity']));
    const generate = !classify && (wanted.has('bleu') || wanted.has('rouge'));
    const robustness = classify && options.robustness ? options.robustness : undefined;
    if (robustness) {
      const random = createRandom(seedFrom(ctx.input.seed, 'robustness'));
      const synonyms = robustness.synonyms > 0 ? loadWordNetSynonyms() : undefined;
      files.perturbed = path.join(work, 'perturbed.jsonl');
      await writeJsonlFile(files.perturbed, records.map((r) => ({ ...r, text: perturbText(r.text, robustness, random, synonyms).text })));
    }
    const job = {
      ...model.job,
      records: files,
      out_dir: path.join(work, 'predictions'),
      batch_size: 16,
      max_new_tokens: options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
      generate,
    };
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job));
    let reported: Record<string, unknown> = {};
    const started = Date.now();
    await runTorch(ctx, env.python, 'predict', jobFile, work, (message) => {
      if (message.kind === 'metrics') reported = { ...reported, ...message.values };
      else if (message.kind === 'progress') ctx.progress({ phase: 'evaluating', engine: 'torch', ...message.details });
    });
    const read = async <T>(name: string) => (await readFile(path.join(job.out_dir, `${name}.jsonl`), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);

    const modelBytes = model.bytes;
    const metrics: Metrics = { model: options.model, split: options.split, examples: records.length, objective: descriptor.objective, modelBytes, modelParameters: reported.parameters, backend: 'torch', engine: 'torch' };
    const outputs: Record<string, ArtifactRef> = {};
    if (classify) {
      const labels = descriptor.labels!;
      const score = (predicted: string[]) => classificationReport(records.map((r) => r.label ?? ''), predicted, labels);
      const predicted = (await read<{ predicted: string }>('test')).map((p) => p.predicted);
      const report = score(predicted);
      Object.assign(metrics, { accuracy: round(report.accuracy), macroF1: round(report.macroF1), perClass: report.perClass, confusion: report.confusion });
      if (robustness) {
        const shifted = score((await read<{ predicted: string }>('perturbed')).map((p) => p.predicted));
        metrics.robustness = {
          accuracy: round(shifted.accuracy),
          macroF1: round(shifted.macroF1),
          drop: { accuracy: round(report.accuracy - shifted.accuracy), macroF1: round(report.macroF1 - shifted.macroF1) },
          perturbation: robustness,
        };
      }
      const rows: PredictionRow[] = records.map((r, i) => ({ id: r.id, label: r.label ?? '', predicted: predicted[i], text: textSnippet(r.text) }));
      outputs[PREDICTIONS_OUTPUT] = await writeJsonl(ctx.store, ctx.outputKey('predictions.jsonl'), rows);
    } else {
      // sft: the NLL of the reply's tokens only (Python counts no other).
      const scored = await read<{ id: string; nll: number; tokens: number; generated?: string }>('test');
      const [nll, tokens] = scored.reduce(([a, b], s) => [a + s.nll, b + s.tokens], [0, 0]);
      metrics.loss = round(nll / Math.max(1, tokens));
      metrics.perplexity = round(perplexity(nll / Math.max(1, tokens)));
      if (generate) {
        // An sft model's reply against the record's; a causal LM's continuation of a text's first half against its second (the tfjs engine's semantics).
        const generations = sft
          ? conversations!.map((r, i) => ({ id: r.id, generated: scored[i].generated ?? '', reference: referenceOf(r), prompt: r.messages.filter((m) => m.role !== 'assistant').at(-1)?.content ?? r.text }))
          : (await read<{ id: string; generated: string; reference: string }>('test.generations')).map((g) => ({ ...g, prompt: records.find((r) => r.id === g.id)?.text ?? '' }));
        Object.assign(metrics, generationScores(generations, wanted));
        // Per record: the report shows samples, and a paired bootstrap over per-record ROUGE-L gives a comparison's interval.
        const rows: PredictionRow[] = generations.map((g) => ({ id: g.id, label: g.reference, predicted: g.generated, text: textSnippet(g.prompt), rougeL: round(rougePair(g.generated, g.reference).rougeL.f1) }));
        outputs[PREDICTIONS_OUTPUT] = await writeJsonl(ctx.store, ctx.outputKey('predictions.jsonl'), rows);
      }
    }
    if (generate) metrics.maxNewTokens = job.max_new_tokens;
    metrics.efficiency = { samplesPerSec: reported.samplesPerSec, tokensPerSec: reported.tokensPerSec, peakMemoryBytes: reported.peakMemoryBytes, wallTimeMs: Date.now() - started };
    if (options.gate) {
      const gate = checkGate(options.gate, metrics);
      metrics.gate = gate;
      if (!gate.passed) throw new GateFailedError(ctx.input.stage, gate.failures);
    }
    return { outputs, metrics };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};

