import * as tf from '@tensorflow/tfjs';
import type {
  DistillOptions as DistillStageOptions,
  EvaluateOptions,
  FinetuneOptions,
  QuantizeOptions,
  TokenizerOptions,
} from '../../pipelines/stage-types';
import type { ArtifactRef, Metrics, StageResult } from '../../workflows/types';
import { createRandom, loadWordNetSynonyms, seedFrom, shuffleInPlace } from '../data';
import { initBackend, type BackendInfo } from '../ml/backend';
import type { LoraOptions } from '../ml/lora';
import { LORA_DEFAULTS } from '../../pipelines/trainer-defaults';
import { makeBatch, disposeBatch, type Example } from '../ml/batches';
import { deserializeCheckpoint, serializeCheckpoint, serializeModel, type ModelFile, type TrainCheckpoint } from '../ml/checkpoint';
import { distillModel } from '../ml/distill';
import { classificationReport, generationScores, perplexity } from '../ml/metrics';
import { Gpt, type NamedWeights, type Objective } from '../ml/model';
import { perturbText } from '../ml/perturb';
import { dequantize, quantizeWeights, serializeQuantized } from '../ml/quantize';
import { BpeTokenizer, trainBpe } from '../ml/tokenizer';
import { estimateLoss, trainModel, type TrainHooks, type TrainResult } from '../ml/train';
import type { StageContext, StageImplementation } from '../stage-runner';
import { optionsOf } from '../stage-options';
import { baseOf, loadModelArtifacts, saveModelArtifacts, type ModelDescriptor } from './model-artifacts';
import { readDataset } from '../datasets';
import { CURVES_OUTPUT, writeCurves } from '../curves';
import { writeJsonl } from '../store';
import { PREDICTIONS_OUTPUT, textSnippet, type PredictionRow } from './predictions';
import { checkGate, GateFailedError } from './gate';

export { checkGate, GateFailedError };
import { classifyExamples, labelsOf, lmExamples, sample } from './examples';
import { checkTrainingFits, estimateTrainingBytes, memoryLimitBytes } from './memory';

// The training stages: thin adapters from the stage protocol (store, heartbeats, checkpoints) to
// the trainer in activities/ml, which knows nothing of either.

/** The tfjs engine's LoRA projections: the spec's (checked by the rules), else the default ones. */
function tfjsLoraTargets(targets: readonly string[] | undefined): LoraOptions['targets'] {
  return targets ? (targets as LoraOptions['targets']) : [...LORA_DEFAULTS.targets];
}

export const badInput = (message: string) => Object.assign(new Error(message), { nonRetryable: true });

export function inputOf(ctx: StageContext, name: string | undefined, role: string): StageResult {
  const result = name === undefined ? undefined : ctx.input.inputs[name];
  if (!result) throw badInput(`stage "${ctx.input.stage}" has no ${role} input${name ? ` "${name}"` : ''}`);
  return result;
}

/** The dataset (a split) a stage's `input` names. */
export const datasetOf = (ctx: StageContext) => inputOf(ctx, ctx.input.dataInputs[0], 'dataset');

/** tokenizer: byte-level BPE trained on the train split of every input. */
export const tokenizerStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'tokenizer');
  const texts: string[] = [];
  for (const name of ctx.input.dataInputs) texts.push(...(await readDataset(ctx, inputOf(ctx, name, 'dataset').outputs.train, `"${name}" train split`)).map((r) => r.text));
  ctx.progress({ phase: 'training tokenizer', texts: texts.length });
  const started = Date.now();
  const tokenizer = trainBpe(texts, { vocabSize: options.vocabSize, minFrequency: options.minFrequency });
  const trainMs = Date.now() - started;
  const sampleTexts = texts.slice(0, 500);
  const bytes = sampleTexts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const tokens = sampleTexts.reduce((n, t) => n + tokenizer.encode(t).length, 0);
  const ref = await ctx.store.put(ctx.outputKey('tokenizer.json'), JSON.stringify(tokenizer.toJSON()), 'application/json');
  return {
    outputs: { tokenizer: ref },
    metrics: { vocabSize: tokenizer.vocabSize, merges: tokenizer.mergeCount, texts: texts.length, trainMs, bytesPerToken: round(bytes / Math.max(1, tokens)) },
  };
};

/** finetune: causal-lm or classify, fresh or `from` another model, optionally LoRA; checkpointed. */
export const finetuneStage: StageImplementation = async (ctx) => {
  const finetuneOptions = optionsOf(ctx.input, 'finetune');
  const objective = finetuneOptions.objective;
  // Validation refuses mlm and sft on this engine (pipelines/engines.ts); a hand-made config is refused here.
  if (objective === 'mlm') throw badInput(`stage "${ctx.input.stage}": the tfjs engine trains causal-lm and classify models; mlm needs the torch engine and an encoder "base"`);
  if (objective === 'sft') throw badInput(`stage "${ctx.input.stage}": the tfjs engine trains causal-lm and classify models; sft needs the torch engine and a chat "base"`);
  const options = { ...finetuneOptions, objective };
  const info = await initBackend(options.backend);
  const dataset = datasetOf(ctx);
  const [trainRecords, validationRecords] = await Promise.all([
    readDataset(ctx, dataset.outputs.train, 'the train split'),
    readDataset(ctx, dataset.outputs.validation, 'the validation split'),
  ]);

  const from = options.from === undefined ? undefined : inputOf(ctx, options.from, 'model');
  let gpt: Gpt;
  let tokenizer: BpeTokenizer;
  let tokenizerRef: ArtifactRef;
  let base: ReturnType<typeof baseOf>;
  let labels = options.objective === 'classify' && !from ? labelsOf(trainRecords, ctx.input.stage) : undefined;
  const name = `${ctx.input.stage.replace(/-/g, '_')}_a${ctx.attempt}`;
  if (from) {
    const loaded = await loadModelArtifacts(ctx.store, from.outputs, { name: `${name}_from`, merge: true });
    tokenizer = loaded.tokenizer;
    tokenizerRef = from.outputs.tokenizer;
    if (options.objective === 'classify') labels = continuedLabels(loaded.labels, trainRecords, ctx.input.stage);
    base = options.lora ? (baseOf(loaded.descriptor, from.outputs) ?? (await storeMergedBase(ctx, loaded.gpt))) : undefined;
    const numClasses = labels?.length;
    if (numClasses !== undefined && loaded.gpt.config.numClasses !== numClasses) {
      // Phase two adds a classification head to the phase-one language model; a classifier that
      // meets new classes keeps its trained head for the old ones (their indices do not move).
      gpt = new Gpt({ ...loaded.gpt.config, numClasses }, { name, seed: ctx.input.seed });
      gpt.setWeights(widenHead(loaded.gpt.getWeights(), gpt.getWeights()));
      loaded.gpt.dispose();
    } else {
      gpt = loaded.gpt;
    }
  } else {
    const tok = inputOf(ctx, options.tokenizer, 'tokenizer');
    tokenizerRef = tok.outputs.tokenizer;
    tokenizer = BpeTokenizer.fromJSON((await ctx.store.readJson(tokenizerRef)) as never);
    const { layers, dModel, heads, context, mlpRatio, dropout } = options.model;
    checkTrainingFits(estimateTrainingBytes({ vocabSize: tokenizer.vocabSize, context, layers, dModel, heads, mlpRatio, numClasses: labels?.length }, options.batchSize, options.objective), memoryLimitBytes(info.name));
    gpt = new Gpt({ vocabSize: tokenizer.vocabSize, context, layers, dModel, heads, mlpRatio, dropout, numClasses: labels?.length, padId: tokenizer.padId }, { name, seed: ctx.input.seed });
  }
  try {
    if (options.lora) gpt.applyLora({ ...options.lora, targets: tfjsLoraTargets(options.lora.targets) });
    const context = gpt.config.context;
    const toExamples = (records: typeof trainRecords, split: string): Example[] =>
      options.objective === 'classify' ? classifyExamples(records, tokenizer, context, labels!, split) : lmExamples(records, tokenizer, context);
    const train = toExamples(sample(trainRecords, options.maxExamples, ctx.input.seed, 'train'), 'train');
    const validation = shuffled(toExamples(validationRecords, 'validation'), ctx.input.seed);

    const result = await trainWithCheckpoints(ctx, options.objective, { train, validation }, (resumeFrom, hooks) =>
      trainModel(
        {
          model: gpt,
          objective: options.objective,
          steps: options.steps,
          batchSize: options.batchSize,
          gradientAccumulation: options.gradientAccumulation,
          optimizer: options.optimizer,
          evalEvery: options.validateEvery,
          evalBatches: options.validationBatches,
          earlyStopping: options.earlyStopping,
          selectionMetric: options.earlyStopping?.metric ?? (options.objective === 'classify' ? 'valF1' : 'valLoss'),
          checkpointEvery: options.checkpointEvery,
          seed: ctx.input.seed,
          resumeFrom,
        },
        { train, validation },
        hooks,
      ),
    );
    const outputs = await saveModelArtifacts(ctx.store, ctx.input.outputPrefix, { gpt, objective: options.objective, labels, tokenizer: tokenizerRef, base });
    return {
      outputs: { ...outputs, [CURVES_OUTPUT]: await writeHistory(ctx, result.train) },
      metrics: {
        ...trainingMetrics(info, gpt, options.objective, result.train, result.resumedFromStep),
        examples: { train: train.length, validation: validation.length },
        labels,
        from: options.from,
        lora: options.lora ? { rank: options.lora.rank, alpha: options.lora.alpha, targets: tfjsLoraTargets(options.lora.targets) } : undefined,
      },
    };
  } finally {
    gpt.dispose();
  }
};

/** distill: a smaller student learns the teacher's soft targets plus the hard labels. */
export const distillStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'distill');
  const info = await initBackend(options.backend);
  const teacherResult = inputOf(ctx, options.teacher, 'teacher');
  const teacher = await loadModelArtifacts(ctx.store, teacherResult.outputs, { name: `${ctx.input.stage.replace(/-/g, '_')}_teacher_a${ctx.attempt}`, merge: true });
  const labels = teacher.labels;
  if (!labels || teacher.descriptor.objective !== 'classify') {
    teacher.gpt.dispose();
    throw badInput(`stage "${ctx.input.stage}": teacher "${options.teacher}" is not a classifier; distillation needs a classify model`);
  }
  const dataset = datasetOf(ctx);
  const [trainRecords, validationRecords] = await Promise.all([
    readDataset(ctx, dataset.outputs.train, 'the train split'),
    readDataset(ctx, dataset.outputs.validation, 'the validation split'),
  ]);
  const { layers, dModel, heads, context, mlpRatio, dropout } = options.model;
  try {
    checkTrainingFits(
      estimateTrainingBytes({ vocabSize: teacher.tokenizer.vocabSize, context: Math.min(context, teacher.gpt.config.context), layers, dModel, heads, mlpRatio, numClasses: labels.length }, options.batchSize, 'classify'),
      memoryLimitBytes(info.name),
    );
  } catch (err) {
    teacher.gpt.dispose();
    throw err;
  }
  const student = new Gpt(
    { vocabSize: teacher.tokenizer.vocabSize, context: Math.min(context, teacher.gpt.config.context), layers, dModel, heads, mlpRatio, dropout, numClasses: labels.length, padId: teacher.tokenizer.padId },
    { name: `${ctx.input.stage.replace(/-/g, '_')}_student_a${ctx.attempt}`, seed: ctx.input.seed },
  );
  try {
    const train = classifyExamples(sample(trainRecords, options.maxExamples, ctx.input.seed, 'train'), teacher.tokenizer, student.config.context, labels, 'train');
    const validation = shuffled(classifyExamples(validationRecords, teacher.tokenizer, student.config.context, labels, 'validation'), ctx.input.seed);
    const result = await trainWithCheckpoints(ctx, 'classify', { train, validation }, (resumeFrom, hooks) =>
      distillModel(
        {
          model: student,
          teacher: teacher.gpt,
          temperature: options.temperature,
          alpha: options.alpha,
          objective: 'classify',
          steps: options.steps,
          batchSize: options.batchSize,
          optimizer: options.optimizer,
          evalEvery: options.validateEvery,
          evalBatches: options.validationBatches,
          selectionMetric: 'valF1',
          checkpointEvery: options.checkpointEvery,
          seed: ctx.input.seed,
          resumeFrom,
        },
        { train, validation },
        hooks,
      ),
    );
    const teacherEval = estimateLoss(teacher.gpt, 'classify', validation, { batchSize: 32 });
    const studentEval = estimateLoss(student, 'classify', validation, { batchSize: 32 });
    const speed = (model: Gpt) => measureLatency(model, validation.slice(0, 64));
    const [teacherMs, studentMs] = [speed(teacher.gpt), speed(student)];
    const outputs = await saveModelArtifacts(ctx.store, ctx.input.outputPrefix, { gpt: student, objective: 'classify', labels, tokenizer: teacherResult.outputs.tokenizer });
    return {
      outputs: { ...outputs, [CURVES_OUTPUT]: await writeHistory(ctx, result.train) },
      metrics: {
        ...trainingMetrics(info, student, 'classify', result.train, result.resumedFromStep),
        teacherParameters: teacher.gpt.parameterCount(),
        studentParameters: student.parameterCount(),
        compression: round(teacher.gpt.parameterCount() / student.parameterCount()),
        teacherMetric: round(teacherEval.valF1 ?? NaN),
        studentMetric: round(studentEval.valF1 ?? NaN),
        studentTeacherRatio: round((studentEval.valF1 ?? NaN) / (teacherEval.valF1 ?? NaN)),
        speedup: round(teacherMs / studentMs),
        temperature: options.temperature,
        alpha: options.alpha,
      },
    };
  } finally {
    student.dispose();
    teacher.gpt.dispose();
  }
};

/** evaluate: task metrics, robustness to perturbed inputs, efficiency, and an optional gate. */
export const evaluateStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'evaluate');
  const info = await initBackend('auto');
  const model = await loadModelArtifacts(ctx.store, inputOf(ctx, options.model, 'model').outputs, { name: `${ctx.input.stage.replace(/-/g, '_')}_a${ctx.attempt}`, merge: true });
  try {
    const split = datasetOf(ctx).outputs[options.split];
    const records = sample(await readDataset(ctx, split, `the ${options.split} split`), options.maxExamples, ctx.input.seed, 'evaluate');
    const objective = model.descriptor.objective;
    const wanted = new Set(options.metrics ?? (objective === 'classify' ? ['accuracy', 'f1'] : ['perplexity']));
    const metrics: Metrics = { model: options.model, split: options.split, examples: records.length, objective, modelBytes: model.weightBytes, modelParameters: model.gpt.parameterCount(), backend: info.name };
    const started = Date.now();
    let tokens = 0;
    let predictions: PredictionRow[] = [];
    ctx.progress({ phase: 'evaluating', examples: records.length });
    if (objective === 'classify') {
      const labels = model.labels!;
      const score = (texts: typeof records) => {
        const examples = classifyExamples(texts, model.tokenizer, model.gpt.config.context, labels, options.split);
        tokens += examples.reduce((n, e) => n + e.tokens.length, 0);
        const predicted = predictClasses(model.gpt, examples);
        return { predicted: predicted.map((p) => labels[p]), report: classificationReport(examples.map((e) => labels[e.label!]), predicted.map((p) => labels[p]), labels) };
      };
      const { predicted, report } = score(records);
      predictions = records.map((r, i) => ({ id: r.id, label: r.label!, predicted: predicted[i], text: textSnippet(r.text) }));
      Object.assign(metrics, { accuracy: round(report.accuracy), macroF1: round(report.macroF1), perClass: report.perClass, confusion: report.confusion });
      if (options.robustness) {
        ctx.progress({ phase: 'evaluating perturbed copy', examples: records.length });
        const random = createRandom(seedFrom(ctx.input.seed, 'robustness'));
        const synonyms = options.robustness.synonyms > 0 ? loadWordNetSynonyms() : undefined;
        const perturbed = records.map((r) => ({ ...r, text: perturbText(r.text, options.robustness as never, random, synonyms).text }));
        const shifted = score(perturbed).report;
        metrics.robustness = {
          accuracy: round(shifted.accuracy),
          macroF1: round(shifted.macroF1),
          drop: { accuracy: round(report.accuracy - shifted.accuracy), macroF1: round(report.macroF1 - shifted.macroF1) },
          perturbation: options.robustness,
        };
      }
    } else {
      const examples = lmExamples(records, model.tokenizer, model.gpt.config.context);
      tokens += examples.reduce((n, e) => n + e.tokens.length, 0);
      const { valLoss } = estimateLoss(model.gpt, 'causal-lm', examples, { batchSize: 16 });
      metrics.loss = round(valLoss);
      if (wanted.has('perplexity')) metrics.perplexity = round(perplexity(valLoss));
      if (wanted.has('bleu') || wanted.has('rouge')) Object.assign(metrics, generationMetrics(model.gpt, model.tokenizer, records.slice(0, 48), wanted));
    }
    const seconds = (Date.now() - started) / 1000;
    metrics.efficiency = { samplesPerSec: round(records.length / seconds), tokensPerSec: round(tokens / seconds), wallTimeMs: Date.now() - started };
    if (options.gate) {
      const gate = checkGate(options.gate, metrics);
      metrics.gate = gate;
      if (!gate.passed) throw new GateFailedError(ctx.input.stage, gate.failures);
    }
    // Per-record predictions: what the report's confidence intervals (a paired bootstrap between
    // two evaluations of the same records) and sample predictions are computed from.
    const outputs: Record<string, ArtifactRef> = {};
    if (predictions.length > 0) outputs[PREDICTIONS_OUTPUT] = await writeJsonl(ctx.store, ctx.outputKey('predictions.jsonl'), predictions);
    return { outputs, metrics };
  } finally {
    model.gpt.dispose();
  }
};


/** quantize: per-channel symmetric int8 weights; reports size, metric and latency deltas. */
export const quantizeStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'quantize');
  await initBackend('auto');
  const source = inputOf(ctx, options.model, 'model');
  const model = await loadModelArtifacts(ctx.store, source.outputs, { name: `${ctx.input.stage.replace(/-/g, '_')}_f_a${ctx.attempt}`, merge: true });
  const quantizedModel = new Gpt(model.gpt.config, { name: `${ctx.input.stage.replace(/-/g, '_')}_q_a${ctx.attempt}` });
  try {
    const quantized = quantizeWeights(model.gpt.getWeights());
    const { index, data, bytesBefore, bytesAfter } = serializeQuantized(quantized);
    quantizedModel.setWeights(dequantize(quantized));
    const metrics: Metrics = { bytesBefore, bytesAfter, reduction: round(1 - bytesAfter / bytesBefore), scheme: options.scheme };
    const dataset = ctx.input.dataInputs.length > 0 ? datasetOf(ctx) : undefined;
    if (dataset?.outputs.test && options.compareExamples > 0 && model.descriptor.objective === 'classify') {
      const records = sample(await readDataset(ctx, dataset.outputs.test, 'the test split'), options.compareExamples, ctx.input.seed, 'quantize');
      const examples = classifyExamples(records, model.tokenizer, model.gpt.config.context, model.labels!, 'test');
      const f1 = (gpt: Gpt) => classificationReport(examples.map((e) => e.label!), predictClasses(gpt, examples)).macroF1;
      const [before, after] = [f1(model.gpt), f1(quantizedModel)];
      const agreement = agreementOf(predictClasses(model.gpt, examples), predictClasses(quantizedModel, examples));
      const [latencyBeforeMs, latencyAfterMs] = [measureLatency(model.gpt, examples.slice(0, 64)), measureLatency(quantizedModel, examples.slice(0, 64))];
      Object.assign(metrics, {
        metric: 'macroF1',
        metricBefore: round(before),
        metricAfter: round(after),
        metricDelta: round(after - before),
        predictionAgreement: round(agreement),
        latencyBeforeMs: round(latencyBeforeMs),
        latencyAfterMs: round(latencyAfterMs),
        latencyDelta: round(latencyAfterMs - latencyBeforeMs),
        // Weight-only int8: weights are dequantized at load, so compute stays float32 and latency is unchanged.
        compute: 'float32 (weights dequantized at load)',
      });
    }
    const descriptor: ModelDescriptor = { ...model.descriptor, config: { ...model.gpt.config }, weightsIndex: undefined, lora: undefined, quantized: index, parameters: model.gpt.parameterCount() };
    const weights = await ctx.store.put(ctx.outputKey('weights.int8'), data, 'application/octet-stream');
    const modelRef = await ctx.store.put(ctx.outputKey('model.json'), JSON.stringify(descriptor, null, 2), 'application/json');
    return { outputs: { model: modelRef, weights, tokenizer: source.outputs.tokenizer }, metrics };
  } finally {
    model.gpt.dispose();
    quantizedModel.dispose();
  }
};

// ---- helpers -----------------------------------------------------------------------------------

/**
 * Labels of a classifier trained from `fromLabels`' model: its labels keep their indices (so its
 * head carries over — a continual cycle whose new data has one class only still trains), and new
 * labels are appended. From a language model, the train split's labels.
 */
function continuedLabels(fromLabels: string[] | undefined, records: Array<{ label?: string }>, stage: string): string[] {
  if (!fromLabels) return labelsOf(records as never, stage);
  const added = [...new Set(records.map((r) => r.label).filter((l): l is string => l !== undefined && !fromLabels.includes(l)))].sort();
  return [...fromLabels, ...added];
}

/**
 * `from`'s weights for a model with more classes: the body as is, and the head's fresh columns
 * (`fresh`'s initialisation) with the old classes' trained columns copied in. A language model has
 * no head, so its new head stays as initialised.
 */
export function widenHead(from: NamedWeights, fresh: NamedWeights): NamedWeights {
  const weights: NamedWeights = {};
  for (const [name, w] of Object.entries(from)) {
    if (!name.startsWith('cls.')) {
      weights[name] = w;
      continue;
    }
    const target = fresh[name];
    if (!target) continue;
    const oldWidth = w.shape[w.shape.length - 1];
    const newWidth = target.shape[target.shape.length - 1];
    const data = target.data.slice();
    for (let row = 0; row < data.length / newWidth; row++) {
      for (let c = 0; c < Math.min(oldWidth, newWidth); c++) data[row * newWidth + c] = w.data[row * oldWidth + c];
    }
    weights[name] = { shape: target.shape, data };
  }
  return weights;
}

/**
 * A LoRA stage that starts from a LoRA (or quantized) model trains a new adapter on that model with
 * its adapter merged in (parameter isolation per cycle): the merged weights are stored once as
 * this stage's base, since no earlier artifact holds them.
 */
async function storeMergedBase(ctx: StageContext, gpt: Gpt): Promise<{ weights: ArtifactRef; index: ModelFile }> {
  const { config, weights } = serializeModel(gpt);
  return { weights: await ctx.store.put(ctx.outputKey('base-weights.bin'), weights, 'application/octet-stream'), index: config };
}

/**
 * Runs `train` with checkpointing: every checkpoint goes to the store (overwriting the previous)
 * and into the heartbeat details; a retried attempt resumes from the latest one it can find.
 */
async function trainWithCheckpoints(
  ctx: StageContext,
  objective: Objective,
  data: { train: Example[]; validation: Example[] },
  train: (resumeFrom: TrainCheckpoint | undefined, hooks: TrainHooks) => Promise<TrainResult>,
): Promise<{ train: TrainResult; resumedFromStep?: number }> {
  const key = ctx.outputKey('checkpoints/latest.ckpt');
  const resumeFrom = await latestCheckpoint(ctx, key);
  let last: { step?: number; loss?: number; tokensPerSec?: number; valLoss?: number; checkpoint?: ArtifactRef; checkpointStep?: number } = {};
  const report = () => ctx.progress({ phase: 'training', examples: data.train.length, objective, ...last });
  const result = await train(resumeFrom, {
    signal: ctx.signal,
    onStep: (s) => {
      last = { ...last, step: s.step, totalSteps: s.totalSteps, loss: round(s.loss), tokensPerSec: Math.round(s.tokensPerSec) } as typeof last;
      report();
    },
    onEval: (e) => {
      last = { ...last, valLoss: round(e.valLoss), ...(e.valF1 !== undefined ? { valF1: round(e.valF1) } : {}) };
      report();
    },
    onCheckpoint: async (checkpoint) => {
      const ref = await ctx.store.put(key, serializeCheckpoint(checkpoint), 'application/octet-stream');
      last = { ...last, checkpoint: ref, checkpointStep: checkpoint.step };
      report();
    },
  });
  return { train: result, resumedFromStep: resumeFrom?.step };
}

async function latestCheckpoint(ctx: StageContext, key: string): Promise<TrainCheckpoint | undefined> {
  const fromHeartbeat = ctx.resumeDetails?.checkpoint as ArtifactRef | undefined;
  try {
    if (fromHeartbeat) return deserializeCheckpoint(await ctx.store.readBuffer(fromHeartbeat));
  } catch {
    // Overwritten by a later checkpoint than the heartbeat reported: fall back to the store.
  }
  const found = await ctx.store.readKey(key, 'application/octet-stream');
  return found ? deserializeCheckpoint(found.body) : undefined;
}

function trainingMetrics(info: BackendInfo, gpt: Gpt, objective: Objective, result: TrainResult, resumedFromStep: number | undefined): Metrics {
  const last = [...result.history].reverse().find((h) => h.valLoss !== undefined);
  return {
    objective,
    backend: info.name,
    threads: info.threads,
    parameters: gpt.parameterCount(),
    trainableParameters: Math.round(gpt.parameterCount() * gpt.trainableFraction(objective)),
    trainableFraction: round(gpt.trainableFraction(objective)),
    steps: result.steps,
    bestStep: result.bestStep,
    bestMetric: result.bestMetric === null ? null : round(result.bestMetric),
    stoppedEarly: result.stoppedEarly,
    tokensPerSec: Math.round(result.tokensPerSec),
    resumedFromStep,
    final: last ? { valLoss: last.valLoss, valAccuracy: last.valAccuracy, valF1: last.valF1 } : undefined,
    curve: { points: result.history.length },
  };
}

/** The per-step history as the stage's `curves` artifact (metrics keep only its length). */
function writeHistory(ctx: StageContext, result: TrainResult): Promise<ArtifactRef> {
  const points = result.history.map((h) => ({ ...h, loss: round(h.loss), lr: Number(h.lr.toPrecision(4)) }));
  return writeCurves(ctx.store, ctx.outputKey('curves.jsonl'), points);
}

/** Argmax class of each example, in batches. */
export function predictClasses(gpt: Gpt, examples: Example[], batchSize = 32): number[] {
  const predicted: number[] = [];
  for (let start = 0; start < examples.length; start += batchSize) {
    const batch = makeBatch('classify', examples.slice(start, start + batchSize).map((e) => ({ ...e, label: e.label ?? 0 })), gpt.config);
    if (batch.kind !== 'classify') throw new Error('expected a classify batch');
    predicted.push(...tf.tidy(() => gpt.forwardClassify(batch.inputs, batch.lengths).argMax(-1).dataSync()));
    disposeBatch(batch);
  }
  return predicted;
}

/** Milliseconds per example to classify `examples` (after one warm-up batch). */
function measureLatency(gpt: Gpt, examples: Example[]): number {
  if (examples.length === 0) return NaN;
  predictClasses(gpt, examples.slice(0, 8));
  const started = performance.now();
  predictClasses(gpt, examples);
  return (performance.now() - started) / examples.length;
}

function agreementOf(a: number[], b: number[]): number {
  return a.length === 0 ? NaN : a.filter((x, i) => x === b[i]).length / a.length;
}

/** Greedy continuations of the second half of each text from its first half: BLEU and ROUGE. */
function generationMetrics(gpt: Gpt, tokenizer: BpeTokenizer, records: Array<{ text: string }>, wanted: Set<string>): Metrics {
  const generations: Array<{ generated: string; reference: string }> = [];
  const maxNew = 24;
  for (const record of records) {
    const tokens = [tokenizer.bosId, ...tokenizer.encode(record.text)];
    if (tokens.length < 16) continue;
    const cut = Math.min(Math.floor(tokens.length / 2), gpt.config.context - maxNew);
    const prompt = tokens.slice(0, cut);
    const reference = tokens.slice(cut, cut + maxNew);
    const generated = [...prompt];
    for (let i = 0; i < reference.length; i++) {
      const window = generated.slice(-gpt.config.context);
      const next = tf.tidy(() => {
        const logits = gpt.forwardLm(tf.tensor2d([window], [1, window.length], 'int32'));
        return logits.slice([0, window.length - 1, 0], [1, 1, -1]).argMax(-1).dataSync()[0];
      });
      generated.push(next);
    }
    generations.push({ generated: tokenizer.decode(generated.slice(prompt.length)), reference: tokenizer.decode(reference) });
  }
  return generationScores(generations, wanted);
}

/**
 * A seeded shuffle of validation examples. The trainer validates on a prefix of them, and a split
 * lists its records grouped by label: a prefix would hold one class only.
 */
function shuffled<T>(examples: T[], seed: number): T[] {
  return shuffleInPlace([...examples], createRandom(seedFrom(seed, 'validation')));
}

export function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}
