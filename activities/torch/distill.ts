import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultWarmupSteps } from '../../pipelines/trainer-defaults';
import type { Metrics } from '../../workflows/types';
import { curveSummary, CURVES_OUTPUT, writeCurves } from '../curves';
import { readDataset } from '../datasets';
import { classificationReport, perplexity } from '../ml/metrics';
import type { StageImplementation } from '../stage-runner';
import { optionsOf } from '../stage-options';
import { sample } from '../training/examples';
import { torchEnv, TorchProgramError, writeJsonlFile, type TorchModelDescriptor } from './common';
import { fetchModel, uploadModel } from './model';
import { latestCheckpoint, runTraining } from './training-run';

// The torch engine's distill (python/tempered_torch/distill.py): a student with `model.layers` of
// its teacher's layers learns the teacher's softened logits plus the labels. The student is a
// Hugging Face checkpoint like any torch model; the teacher and the student score the same
// validation records and their metrics are computed here, as the evaluate stage computes them.

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

export const torchDistillStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'distill');
  const env = await torchEnv(ctx);
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-distill-'));
  try {
    const teacher = await fetchModel(ctx, options.teacher, path.join(work, 'teacher'), env.python);
    if (teacher.descriptor.quantized) throw new TorchProgramError(`teacher "${options.teacher}" is an int8 model; distill from the float model it was quantized from`, true);
    const dataset = ctx.input.inputs[ctx.input.dataInputs[0]];
    if (!dataset) throw new TorchProgramError(`stage "${ctx.input.stage}" has no dataset input`, true);
    const [train, validation] = await Promise.all([
      readDataset(ctx, dataset.outputs.train, 'the train split'),
      readDataset(ctx, dataset.outputs.validation, 'the validation split'),
    ]);
    await writeJsonlFile(path.join(work, 'train.jsonl'), sample(train, options.maxExamples, ctx.input.seed, 'train'));
    await writeJsonlFile(path.join(work, 'validation.jsonl'), validation);
    const { objective, labels } = teacher.descriptor;
    const resume = await latestCheckpoint(ctx, path.join(work, 'resume'));
    const job = {
      objective,
      base: {},
      teacher: teacher.job,
      train: path.join(work, 'train.jsonl'),
      validation: path.join(work, 'validation.jsonl'),
      output_dir: path.join(work, 'out'),
      checkpoint_dir: path.join(work, 'checkpoints'),
      eval_dir: path.join(work, 'eval'),
      steps: options.steps,
      batch_size: options.batchSize,
      lr: options.optimizer.lr,
      weight_decay: options.optimizer.weightDecay,
      warmup_steps: options.optimizer.warmupSteps ?? defaultWarmupSteps(options.steps),
      max_length: teacher.job.max_length,
      seed: ctx.input.seed,
      checkpoint_every: options.checkpointEvery,
      validate_every: options.validateEvery,
      validation_batches: options.validationBatches,
      labels: labels ?? [],
      student_layers: options.model.layers,
      temperature: options.temperature,
      alpha: options.alpha,
      resume_dir: resume?.dir ?? null,
    };
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job, null, 2));
    const { metrics, curve } = await runTraining(ctx, env.python, 'distill', jobFile, work, resume);

    const descriptor: TorchModelDescriptor = {
      engine: 'torch',
      objective,
      ...(labels ? { labels } : {}),
      maxLength: teacher.job.max_length,
      adapter: false,
      ...(teacher.descriptor.base ? { base: teacher.descriptor.base } : {}),
      distilledFrom: options.teacher,
    };
    const outputs = await uploadModel(ctx, job.output_dir, descriptor);
    if (curve.length > 0) outputs[CURVES_OUTPUT] = await writeCurves(ctx.store, ctx.outputKey('curves.jsonl'), curve);

    // The same validation records scored by both models: the student's share of its teacher's metric.
    const rows = async (name: string) => (await readFile(path.join(job.eval_dir, `${name}.jsonl`), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { predicted?: string; nll?: number; tokens?: number });
    const [teacherRows, studentRows] = [await rows('teacher'), await rows('student')];
    const metricOf = (scored: typeof teacherRows) =>
      objective === 'classify'
        ? classificationReport(validation.map((r) => r.label ?? ''), scored.map((s) => s.predicted ?? ''), labels ?? []).macroF1
        : perplexity(scored.reduce((n, s) => n + (s.nll ?? 0), 0) / Math.max(1, scored.reduce((n, s) => n + (s.tokens ?? 0), 0)));
    const [teacherMetric, studentMetric] = [metricOf(teacherRows), metricOf(studentRows)];
    const teacherMs = Number(metrics.teacherLatencyMs);
    const studentMs = Number(metrics.studentLatencyMs);
    const result: Metrics = {
      ...metrics,
      metric: objective === 'classify' ? 'valF1' : 'valPerplexity',
      teacherMetric: round(teacherMetric),
      studentMetric: round(studentMetric),
      // Higher is better for F1, lower for perplexity: the ratio reads "share of the teacher's quality" either way.
      studentTeacherRatio: round(objective === 'classify' ? studentMetric / teacherMetric : teacherMetric / studentMetric),
      compression: round(Number(metrics.teacherParameters) / Number(metrics.studentParameters)),
      speedup: round(teacherMs / studentMs),
      temperature: options.temperature,
      alpha: options.alpha,
      ...(resume ? { resumedFromStep: resume.step } : {}),
      ...(curve.length > 0 ? { curve: curveSummary(curve) } : {}),
    };
    return { outputs, metrics: result };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};
