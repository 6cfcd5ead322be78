import { createReadStream } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ArtifactRef } from '../../workflows/types';
import { createStore, storeConfigFromEnv, type ArtifactStore } from '../store';
import { DESCRIPTOR, downloadFiles, HF_PREFIX, listFiles, mediaTypeOf, type TorchModelDescriptor } from '../torch/common';
import { describeFile } from '../torch/base';
import { adapterBase } from '../torch/model';
import { ExportError } from './errors';
import { exportGguf } from './gguf';
import { runExportModule } from './python';

export { ExportError };
import { exportTfjsModel } from './tfjs-gpt2';

// A registered model (or any model stage's outputs) written in a format serving tools load:
//   hf    a Hugging Face checkpoint directory (safetensors, config, tokenizer): a torch model as
//         stored, LoRA adapters merged into their base; a tfjs model mapped onto GPT-2;
//   peft  a LoRA model's adapter directory, for PEFT over its base;
//   gguf  one GGUF file (F16 or Q8_0) for llama.cpp / Ollama, converted from the hf export.
// The result goes to a local directory or an s3:// prefix, with `tempered-export.json` naming the
// source and every file's sha256.

export const EXPORT_FORMATS = ['hf', 'peft', 'gguf'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const GGUF_TYPES = ['f16', 'q8_0'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];


export interface ExportOptions {
  format: ExportFormat;
  /** With gguf: the tensor type of the weight matrices. Default f16. */
  ggufType?: GgufType;
  /** A local directory (created; must be empty if it exists) or `s3://bucket/prefix/`. */
  out: string;
  /** Tempered's Python environment's interpreter. */
  python: string;
  /** Where relative `base` references of adapters are resolved. Default the working directory. */
  specDir?: string;
  /** Where the model came from, recorded in tempered-export.json (e.g. the registry version). */
  source?: Record<string, unknown>;
}

export interface ExportedFile {
  name: string;
  bytes: number;
  sha256: string;
}

export interface ExportResult {
  format: ExportFormat;
  engine: 'torch' | 'tfjs';
  out: string;
  architecture?: string;
  files: ExportedFile[];
  notes: string[];
}

export const EXPORT_MANIFEST = 'tempered-export.json';

/** Exports the model whose stage outputs are `outputs` (read from `store`). */
export async function exportModel(store: ArtifactStore, outputs: Record<string, ArtifactRef>, options: ExportOptions): Promise<ExportResult> {
  if (options.format !== 'gguf' && options.ggufType !== undefined) throw new ExportError(`--type chooses a GGUF tensor type; it does not apply to --format ${options.format}`);
  const local = !options.out.startsWith('s3://');
  if (local) await checkEmpty(options.out);
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-export-'));
  try {
    const dir = path.join(work, 'out');
    await mkdir(dir, { recursive: true });
    const made = outputs[DESCRIPTOR] ? await exportTorch(store, outputs, options, work, dir) : await exportTfjs(store, outputs, options, work, dir);
    const files = await describeFiles(dir);
    const manifest = { format: options.format, ...(options.ggufType ? { ggufType: options.ggufType } : {}), engine: made.engine, architecture: made.architecture, source: options.source ?? {}, files, notes: made.notes, exportedAt: new Date().toISOString() };
    await writeFile(path.join(dir, EXPORT_MANIFEST), JSON.stringify(manifest, null, 2));
    if (local) {
      await mkdir(options.out, { recursive: true });
      await cp(dir, options.out, { recursive: true });
    } else {
      await upload(dir, options.out);
    }
    return { format: options.format, engine: made.engine, out: options.out, architecture: made.architecture, files, notes: made.notes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

interface Made {
  engine: 'torch' | 'tfjs';
  architecture?: string;
  notes: string[];
}

async function exportTorch(store: ArtifactStore, outputs: Record<string, ArtifactRef>, options: ExportOptions, work: string, dir: string): Promise<Made> {
  const descriptor = await store.readJson<TorchModelDescriptor>(outputs[DESCRIPTOR]);
  if (descriptor.quantized) {
    throw new ExportError("an int8 model is stored in Tempered's own layout (PyTorch dynamic quantization), which no serving tool loads: export the float model it was quantized from, e.g. --format gguf --type q8_0 for an 8-bit GGUF");
  }
  const stored = path.join(work, 'stored');
  await downloadFiles(store, outputs, HF_PREFIX, stored);
  const notes: string[] = [];
  if (options.format === 'peft') {
    if (!descriptor.adapter) throw new ExportError('this model is a whole checkpoint, not LoRA adapters over a base: use --format hf (or gguf)');
    await cp(stored, dir, { recursive: true });
    notes.push(...(await pointAdapterAtBase(dir, descriptor)));
    return { engine: 'torch', architecture: 'peft-lora', notes };
  }
  // hf, and the source of gguf: one plain checkpoint directory.
  const hfDir = options.format === 'hf' ? dir : path.join(work, 'hf');
  let architecture: string | undefined;
  if (descriptor.adapter) {
    const base = await adapterBase(descriptor, options.specDir ?? process.cwd(), options.python);
    const job = { model_dir: stored, objective: descriptor.objective, labels: descriptor.labels ?? [], adapter: true, base, max_length: descriptor.maxLength ?? 128, out_dir: hfDir };
    const jobFile = path.join(work, 'export_hf.json');
    await writeFile(jobFile, JSON.stringify(job));
    ({ architecture } = await runExportModule<{ architecture?: string }>(options.python, 'export_hf', [jobFile], work));
    notes.push(`LoRA adapters merged into their base ${descriptor.base?.reference}`);
  } else {
    await cp(stored, hfDir, { recursive: true });
    architecture = await architectureOf(hfDir);
  }
  if (options.format === 'gguf') {
    const type = options.ggufType ?? 'f16';
    await exportGguf(options.python, hfDir, path.join(dir, `model.${type}.gguf`), type);
  }
  return { engine: 'torch', architecture, notes };
}

async function exportTfjs(store: ArtifactStore, outputs: Record<string, ArtifactRef>, options: ExportOptions, work: string, dir: string): Promise<Made> {
  if (!outputs.model) throw new ExportError('these outputs hold no model: export a finetune, distill or quantize stage, or a registered model');
  if (options.format === 'peft') {
    const made = await exportTfjsModel(store, outputs, dir, options.python, { peft: true });
    return { engine: 'tfjs', architecture: made.architecture, notes: made.notes };
  }
  // gguf: the GPT-2 checkpoint first, then llama.cpp's GPT-2 (a classifier has no LM head: refused there).
  const hfDir = options.format === 'gguf' ? path.join(work, 'hf') : dir;
  const made = await exportTfjsModel(store, outputs, hfDir, options.python);
  if (options.format === 'gguf') {
    if (made.architecture !== 'GPT2LMHeadModel') throw new ExportError(`a tfjs classifier exports as ${made.architecture} with its own head, which llama.cpp does not run: use --format hf`);
    const type = options.ggufType ?? 'f16';
    await exportGguf(options.python, hfDir, path.join(dir, `model.${type}.gguf`), type);
  }
  return { engine: 'tfjs', architecture: made.architecture, notes: made.notes ?? [] };
}

/**
 * adapter_config.json names the base by the local directory it was trained from; points it at the
 * base's reference instead: an `hf:` base by its hub id (and revision), anything else named in a note.
 */
async function pointAdapterAtBase(dir: string, descriptor: TorchModelDescriptor): Promise<string[]> {
  const file = path.join(dir, 'adapter_config.json');
  const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  const reference = descriptor.base?.reference ?? '';
  const hub = /^hf:([^@]+)(?:@(.+))?$/.exec(reference);
  if (hub) {
    config.base_model_name_or_path = hub[1];
    if (hub[2]) config.revision = hub[2];
    await writeFile(file, JSON.stringify(config, null, 2));
    return [];
  }
  config.base_model_name_or_path = null;
  await writeFile(file, JSON.stringify(config, null, 2));
  const gguf = descriptor.base?.ggufFile ? ` (GGUF file ${descriptor.base.ggufFile}: load it with gguf_file=)` : '';
  return [`base: ${reference}${gguf}; load it yourself and apply the adapters with PeftModel.from_pretrained(base_model, "<this directory>")`];
}

async function architectureOf(dir: string): Promise<string | undefined> {
  const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8').catch(() => '{}')) as { architectures?: string[] };
  return config.architectures?.[0];
}

async function checkEmpty(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) throw new ExportError(`--out ${dir} is a file; give a directory (it is created) or s3://bucket/prefix/`);
  if ((await readdir(dir)).length > 0) throw new ExportError(`--out ${dir} is not empty; give a new or empty directory, so no file of another model is mixed in`);
}

async function describeFiles(dir: string): Promise<ExportedFile[]> {
  return Promise.all((await listFiles(dir)).map((name) => describeFile(dir, name)));
}

/** Every file of `dir` to `s3://bucket/prefix/<name>`, through the store's S3 client (endpoint and credentials as the store's). */
async function upload(dir: string, uri: string): Promise<void> {
  const target = createStore(storeConfigFromEnv({ ...process.env, TEMPERED_STORE: uri.replace(/\/+$/, '') }));
  try {
    for (const name of await listFiles(dir)) await target.put(name, createReadStream(path.join(dir, name)), mediaTypeOf(name));
  } finally {
    await target.close();
  }
}
