import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultWarmupSteps } from '../../pipelines/trainer-defaults';
import type { Metrics } from '../../workflows/types';
import { curveSummary, CURVES_OUTPUT, writeCurves } from '../curves';
import { readDataset } from '../datasets';
import type { StageImplementation } from '../stage-runner';
import { optionsOf } from '../stage-options';
import { labelsOf, sample } from '../training/examples';
import { resolveBase, type ResolvedBase } from './base';
import { torchEnv, TorchProgramError, writeJsonlFile, type TorchModelDescriptor } from './common';
import { fetchModel, uploadModel, type ModelJob } from './model';
import { sftRecords } from './sft';
import { latestCheckpoint, runTraining } from './training-run';

// The torch engine's finetune: Tempered keeps the store, the cache, the checkpoints, heartbeats and
// failure classes; `python -m tempered_torch.finetune` (python/tempered_torch/finetune.py) only
// computes. The model is a Hugging Face checkpoint directory, stored file by file under `hf/`, with
// `torch-model.json` saying what it is and where it came from.

export const torchFinetuneStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'finetune');
  const env = await torchEnv(ctx);
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-'));
  try {
    const dataset = ctx.input.inputs[ctx.input.dataInputs[0]];
    if (!dataset) throw new TorchProgramError(`stage "${ctx.input.stage}" has no dataset input`, true);
    const [train, validation] = await Promise.all([
      readDataset(ctx, dataset.outputs.train, 'the train split'),
      readDataset(ctx, dataset.outputs.validation, 'the validation split'),
    ]);
    const trainRecords = sample(train, options.maxExamples, ctx.input.seed, 'train');
    // sft: each record as a conversation, built (and refused, naming the record) before any Python starts.
    const sft = options.objective === 'sft';
    await writeJsonlFile(path.join(work, 'train.jsonl'), sft ? sftRecords(trainRecords, options.sft, ctx.input.stage) : trainRecords);
    await writeJsonlFile(path.join(work, 'validation.jsonl'), sft ? sftRecords(validation, options.sft, ctx.input.stage) : validation);

    let base: ResolvedBase | undefined;
    let baseDir: string;
    let ggufFile: string | undefined;
    let fromLabels: string[] | undefined;
    let fromModel: ModelJob | undefined;
    if (options.from !== undefined) {
      const from = await fetchModel(ctx, options.from, path.join(work, 'from'), env.python);
      if (from.descriptor.quantized) throw new TorchProgramError(`stage "${options.from}" is an int8 model; continue the float model it was quantized from`, true);
      // A LoRA-only model is continued as its base with the adapters merged (Python writes it out once).
      if (from.descriptor.adapter) fromModel = from.job;
      baseDir = from.job.model_dir;
      fromLabels = from.descriptor.labels;
    } else {
      ctx.progress({ phase: 'reading the base checkpoint' });
      base = await resolveBase(options.base!, ctx.input.baseDir, env.python);
      baseDir = base.dir;
      ggufFile = base.ggufFile;
    }
    const labels = options.objective === 'classify' ? continuedLabels(fromLabels, labelsOf(trainRecords, ctx.input.stage)) : undefined;

    const windowOverlap = options.windowOverlap ?? Math.min(32, Math.floor(options.maxLength / 4));
    const resume = await latestCheckpoint(ctx, path.join(work, 'resume'));
    const job = {
      objective: options.objective,
      base: { dir: baseDir, ...(ggufFile ? { gguf_file: ggufFile } : {}) },
      train: path.join(work, 'train.jsonl'),
      validation: path.join(work, 'validation.jsonl'),
      output_dir: path.join(work, 'out'),
      checkpoint_dir: path.join(work, 'checkpoints'),
      steps: options.steps,
      batch_size: options.batchSize,
      grad_accum: options.gradientAccumulation,
      lr: options.optimizer.lr,
      weight_decay: options.optimizer.weightDecay,
      warmup_steps: options.optimizer.warmupSteps ?? defaultWarmupSteps(options.steps),
      max_length: options.maxLength,
      init: options.init,
      seed: ctx.input.seed,
      checkpoint_every: options.checkpointEvery,
      validate_every: options.validateEvery,
      validation_batches: options.validationBatches,
      // The best weights travel in every checkpoint (finetune.py EarlyStopping), so a retried attempt decides as the first would.
      early_stopping: options.earlyStopping ?? null,
      labels: labels ?? [],
      // Adapters on a model that is itself an artifact of a stage are stored merged into it: a whole model.
      merge_lora: Boolean(options.lora) && options.from !== undefined,
      lora: options.lora ? { rank: options.lora.rank, alpha: options.lora.alpha, dropout: options.lora.dropout, targets: options.lora.targets ?? null, ...(options.lora.bits ? { bits: options.lora.bits } : {}) } : null,
      resume_dir: resume?.dir ?? null,
      from_model: fromModel ?? null,
      long_records: options.longRecords ?? 'truncate',
      window_overlap: windowOverlap,
      packing: options.packing ?? false,
      parallel: options.parallel ?? 'ddp',
      gradient_checkpointing: options.gradientCheckpointing ?? false,
      threads: 0,
    };
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job, null, 2));

    const { metrics, curve } = await runTraining(ctx, env.python, 'finetune', jobFile, work, resume, options.processes ?? 1);

    const descriptor: TorchModelDescriptor = {
      engine: 'torch',
      objective: options.objective,
      ...(labels ? { labels } : {}),
      ...(options.sft ? { sft: options.sft } : {}),
      maxLength: options.maxLength,
      adapter: job.lora !== null && !job.merge_lora,
      ...(options.longRecords === 'windows' ? { windows: { overlap: windowOverlap } } : {}),
      ...(base ? { base: { reference: base.reference, ...(base.ggufFile ? { ggufFile: base.ggufFile } : {}), files: base.files } } : {}),
      ...(options.from ? { from: options.from } : {}),
    };
    const outputs = await uploadModel(ctx, job.output_dir, descriptor);
    if (curve.length > 0) outputs[CURVES_OUTPUT] = await writeCurves(ctx.store, ctx.outputKey('curves.jsonl'), curve);
    const result: Metrics = {
      ...metrics,
      ...(labels ? { labels } : {}),
      ...(resume ? { resumedFromStep: resume.step } : {}),
      ...(base ? { base: base.reference, baseBytes: base.files.reduce((n, f) => n + f.bytes, 0) } : { from: options.from }),
      ...(curve.length > 0 ? { curve: curveSummary(curve) } : {}),
    };
    return { outputs, metrics: result };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};

/** A classifier that continues another keeps its label order and adds new labels after it. */
function continuedLabels(previous: string[] | undefined, current: string[]): string[] {
  if (!previous) return current;
  return [...previous, ...current.filter((l) => !previous.includes(l))];
}
