import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { ensurePythonEnv } from '../../infra/python-env';
import { defaultWarmupSteps } from '../../pipelines/trainer-defaults';
import type { ArtifactRef, Metrics } from '../../workflows/types';
import { curveSummary, CURVES_OUTPUT, CurveRecorder, readCurves, writeCurves, type CurvePoint } from '../curves';
import { readDataset } from '../datasets';
import type { StageContext, StageImplementation } from '../stage-runner';
import { optionsOf } from '../stage-options';
import { labelsOf, sample } from '../training/examples';
import { resolveBase, type ResolvedBase } from './base';
import { DESCRIPTOR, downloadFiles, HF_PREFIX, listFiles, mediaTypeOf, runTorch, TorchProgramError, writeJsonlFile, type TorchModelDescriptor } from './common';

// The torch engine's finetune: Tempered keeps the store, the cache, the checkpoints, heartbeats and
// failure classes; `python -m tempered_torch.finetune` (python/tempered_torch/finetune.py) only
// computes. The model is a Hugging Face checkpoint directory, stored file by file under `hf/`, with
// `torch-model.json` saying what it is and where it came from.

export const torchFinetuneStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'finetune');
  ctx.progress({ phase: 'preparing the Python environment' });
  const env = await ensurePythonEnv({ log: (line) => ctx.progress({ phase: 'preparing the Python environment', detail: line }) });
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-'));
  try {
    const dataset = ctx.input.inputs[ctx.input.dataInputs[0]];
    if (!dataset) throw new TorchProgramError(`stage "${ctx.input.stage}" has no dataset input`, true);
    const [train, validation] = await Promise.all([
      readDataset(ctx, dataset.outputs.train, 'the train split'),
      readDataset(ctx, dataset.outputs.validation, 'the validation split'),
    ]);
    const trainRecords = sample(train, options.maxExamples, ctx.input.seed, 'train');
    await writeJsonlFile(path.join(work, 'train.jsonl'), trainRecords);
    await writeJsonlFile(path.join(work, 'validation.jsonl'), validation);

    let base: ResolvedBase | undefined;
    let baseDir: string;
    let ggufFile: string | undefined;
    let fromLabels: string[] | undefined;
    if (options.from !== undefined) {
      const from = ctx.input.inputs[options.from];
      const descriptor = from?.outputs[DESCRIPTOR] ? await ctx.store.readJson<TorchModelDescriptor>(from.outputs[DESCRIPTOR]) : undefined;
      if (!from || !descriptor) throw new TorchProgramError(`stage "${options.from}" did not produce a torch model`, true);
      if (descriptor.adapter) throw new TorchProgramError(`stage "${options.from}" stored LoRA adapters only; continuing from adapters is not supported yet: train "${options.from}" without lora`, true);
      baseDir = path.join(work, 'from');
      ctx.progress({ phase: 'downloading the model', from: options.from });
      await downloadFiles(ctx.store, from.outputs, HF_PREFIX, baseDir);
      fromLabels = descriptor.labels;
    } else {
      ctx.progress({ phase: 'reading the base checkpoint' });
      base = await resolveBase(options.base!, ctx.input.baseDir, env.python);
      baseDir = base.dir;
      ggufFile = base.ggufFile;
    }
    const labels = options.objective === 'classify' ? continuedLabels(fromLabels, labelsOf(trainRecords, ctx.input.stage)) : undefined;

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
      labels: labels ?? [],
      lora: options.lora ? { rank: options.lora.rank, alpha: options.lora.alpha, dropout: options.lora.dropout, targets: options.lora.targets ?? null } : null,
      resume_dir: resume?.dir ?? null,
      threads: 0,
    };
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job, null, 2));

    // A resumed attempt's curve starts with the points its checkpoint kept: each step once.
    const curve = new CurveRecorder();
    curve.points.push(...(resume?.curve ?? []));
    let metrics: Record<string, unknown> = {};
    let last: Record<string, unknown> = {};
    let uploads: Promise<void> = Promise.resolve();
    let uploadError: unknown;
    const report = (details: Record<string, unknown>) => {
      try {
        ctx.progress(details);
      } catch (err) {
        // Cancelled: this runs in a stream callback; the signal already stops the program.
        if (!(err instanceof CancelledFailure)) throw err;
      }
    };
    try {
      await runTorch(ctx, env.python, 'finetune', jobFile, work, (message) => {
        if (message.kind === 'progress') {
          curve.add(message.details);
          last = { ...last, ...message.details };
          report({ phase: 'training', engine: 'torch', ...last });
        } else if (message.kind === 'metrics') {
          metrics = { ...metrics, ...message.values };
        } else {
          const { step, dir } = message.details as { step: number; dir: string };
          // Uploaded in order while training goes on; the heartbeat names it once it is whole in the store.
          uploads = uploads.then(async () => {
            try {
              const pointer = await storeCheckpoint(ctx, step, dir, curve.points.filter((p) => p.step <= step));
              last = { ...last, checkpointStep: step, checkpoint: pointer };
              report({ phase: 'training', engine: 'torch', ...last });
            } catch (err) {
              uploadError ??= err;
            }
          });
        }
      });
    } finally {
      await uploads;
    }
    if (uploadError) throw uploadError;

    ctx.progress({ phase: 'uploading the model' });
    const outputs: Record<string, ArtifactRef> = {};
    for (const name of await listFiles(job.output_dir)) {
      outputs[`${HF_PREFIX}${name}`] = await ctx.store.put(ctx.outputKey(`${HF_PREFIX}${name}`), createReadStream(path.join(job.output_dir, name)), mediaTypeOf(name));
    }
    const descriptor: TorchModelDescriptor = {
      engine: 'torch',
      objective: options.objective,
      ...(labels ? { labels } : {}),
      maxLength: options.maxLength,
      adapter: Boolean(options.lora),
      ...(base ? { base: { reference: base.reference, ...(base.ggufFile ? { ggufFile: base.ggufFile } : {}), files: base.files } } : {}),
      ...(options.from ? { from: options.from } : {}),
    };
    outputs[DESCRIPTOR] = await ctx.store.put(ctx.outputKey(DESCRIPTOR), JSON.stringify(descriptor, null, 2), 'application/json');
    if (curve.points.length > 0) outputs[CURVES_OUTPUT] = await writeCurves(ctx.store, ctx.outputKey('curves.jsonl'), curve.points);
    const result: Metrics = {
      ...metrics,
      ...(labels ? { labels } : {}),
      ...(resume ? { resumedFromStep: resume.step } : {}),
      ...(base ? { base: base.reference, baseBytes: base.files.reduce((n, f) => n + f.bytes, 0) } : { from: options.from }),
      ...(curve.points.length > 0 ? { curve: curveSummary(curve.points) } : {}),
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

/**
 * Uploads a checkpoint directory under its own step, then the pointer to it (written last: a pointer
 * names a whole checkpoint), then deletes the checkpoint it replaced. A worker lost at any moment
 * leaves a pointer to a whole checkpoint.
 */
async function storeCheckpoint(ctx: StageContext, step: number, dir: string, curve: CurvePoint[]): Promise<ArtifactRef> {
  const prefix = ctx.outputKey(`checkpoints/torch/step-${String(step).padStart(8, '0')}/`);
  const files: Record<string, ArtifactRef> = {};
  for (const name of await listFiles(dir)) files[name] = await ctx.store.put(`${prefix}${name}`, createReadStream(path.join(dir, name)), 'application/octet-stream');
  const curveRef = await writeCurves(ctx.store, `${prefix}${CURVE_FILE}`, curve);
  const pointer = await ctx.store.put(ctx.outputKey(CHECKPOINT_POINTER), JSON.stringify({ step, files, curve: curveRef }), 'application/json');
  for (const key of await ctx.store.list(ctx.outputKey('checkpoints/torch/'))) if (!key.startsWith(prefix)) await ctx.store.delete(key);
  return pointer;
}

/** The curve up to a checkpoint's step, stored beside it (not a file of the checkpoint directory). */
const CURVE_FILE = 'tempered-curve.jsonl';

/** Where the latest whole checkpoint of a torch stage is named. */
const CHECKPOINT_POINTER = 'checkpoints/torch-latest.json';

/** The latest whole checkpoint of an earlier attempt, downloaded (verified) into `dir`. */
async function latestCheckpoint(ctx: StageContext, dir: string): Promise<{ step: number; dir: string; curve: CurvePoint[] } | undefined> {
  const found = await ctx.store.readKey(ctx.outputKey(CHECKPOINT_POINTER), 'application/json');
  if (!found) return undefined;
  const pointer = JSON.parse(found.body.toString('utf8')) as { step: number; files: Record<string, ArtifactRef>; curve?: ArtifactRef };
  let curve: CurvePoint[] = [];
  try {
    await downloadFiles(ctx.store, pointer.files, '', dir);
    if (pointer.curve) curve = await readCurves(ctx.store, pointer.curve);
  } catch {
    // Overwritten by a later checkpoint mid-download (the files no longer match): start over.
    return undefined;
  }
  ctx.progress({ phase: 'resuming', fromStep: pointer.step });
  return { step: pointer.step, dir, curve };
}

