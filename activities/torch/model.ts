import { createReadStream } from 'node:fs';
import * as path from 'node:path';
import type { ArtifactRef, StageResult } from '../../workflows/types';
import type { StageContext } from '../stage-runner';
import { resolveBase } from './base';
import { DESCRIPTOR, downloadFiles, HF_PREFIX, listFiles, mediaTypeOf, TorchProgramError, type TorchModelDescriptor } from './common';

// A stored torch model brought back to a work folder, as the Python side's `load_model` reads it
// (python/tempered_torch/predict.py): its files, what it is, and for adapters the base they apply to.

/** The model part of a tempered_torch job. */
export interface ModelJob {
  model_dir: string;
  objective: TorchModelDescriptor['objective'];
  labels: string[];
  adapter: boolean;
  quantized?: boolean;
  base?: { dir: string; gguf_file?: string };
  max_length: number;
  /** Long records are scored whole over windows overlapping by this many tokens. */
  window_overlap?: number;
}

export interface FetchedModel {
  descriptor: TorchModelDescriptor;
  job: ModelJob;
  /** Bytes of its stored files. */
  bytes: number;
}

/** The torch model of stage `name` (an input of this stage), downloaded (verified) into `dir`. */
export async function fetchModel(ctx: StageContext, name: string, dir: string, python: string): Promise<FetchedModel> {
  const stage: StageResult | undefined = ctx.input.inputs[name];
  const descriptorRef = stage?.outputs[DESCRIPTOR];
  if (!stage || !descriptorRef) throw new TorchProgramError(`stage "${name}" did not produce a torch model`, true);
  const descriptor = await ctx.store.readJson<TorchModelDescriptor>(descriptorRef);
  ctx.progress({ phase: 'downloading the model', model: name });
  const modelDir = path.join(dir, name);
  await downloadFiles(ctx.store, stage.outputs, HF_PREFIX, modelDir);
  const base = descriptor.adapter ? await adapterBase(descriptor, ctx.input.baseDir, python) : undefined;
  const bytes = Object.entries(stage.outputs)
    .filter(([output]) => output.startsWith(HF_PREFIX))
    .reduce((n, [, ref]) => n + ref.bytes, 0);
  return {
    descriptor,
    bytes,
    job: modelJob(descriptor, modelDir, base),
  };
}

/** The job part that loads a stored model from `modelDir` (its files), with its adapters' base. */
export function modelJob(descriptor: TorchModelDescriptor, modelDir: string, base?: { dir: string; gguf_file?: string }): ModelJob {
  return {
    model_dir: modelDir,
    objective: descriptor.objective,
    labels: descriptor.labels ?? [],
    adapter: descriptor.adapter,
    ...(descriptor.quantized ? { quantized: true } : {}),
    ...(base ? { base } : {}),
    max_length: descriptor.maxLength ?? 128,
    ...(descriptor.windows ? { window_overlap: descriptor.windows.overlap } : {}),
  };
}

/** The base an adapter applies to, found again and checked file by file against what it was trained on. */
export async function adapterBase(descriptor: TorchModelDescriptor, specDir: string, python: string): Promise<{ dir: string; gguf_file?: string }> {
  const recorded = descriptor.base;
  if (!recorded) throw new TorchProgramError('the model holds LoRA adapters but names no base checkpoint', true);
  const base = await resolveBase(recorded.reference, specDir, python);
  const now = new Map(base.files.map((f) => [f.name, f.sha256]));
  const changed = recorded.files.filter((f) => now.get(f.name) !== f.sha256).map((f) => f.name);
  if (changed.length > 0) {
    throw new TorchProgramError(`the adapters were trained on base ${JSON.stringify(recorded.reference)}, whose files changed since (${changed.slice(0, 5).join(', ')}); rerun the finetune stage`, true);
  }
  return { dir: base.dir, ...(base.ggufFile ? { gguf_file: base.ggufFile } : {}) };
}

/** Stores a model directory file by file under `hf/`, then its descriptor; the stage's model outputs. */
export async function uploadModel(ctx: StageContext, dir: string, descriptor: TorchModelDescriptor): Promise<Record<string, ArtifactRef>> {
  ctx.progress({ phase: 'uploading the model' });
  const outputs: Record<string, ArtifactRef> = {};
  for (const name of await listFiles(dir)) {
    outputs[`${HF_PREFIX}${name}`] = await ctx.store.put(ctx.outputKey(`${HF_PREFIX}${name}`), createReadStream(path.join(dir, name)), mediaTypeOf(name));
  }
  outputs[DESCRIPTOR] = await ctx.store.put(ctx.outputKey(DESCRIPTOR), JSON.stringify(descriptor, null, 2), 'application/json');
  return outputs;
}
