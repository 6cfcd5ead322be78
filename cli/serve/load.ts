import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { ExportError, exportModel } from '../../activities/export';
import type { ModelVersion } from '../../activities/registry/model-registry';
import type { ArtifactStore } from '../../activities/store';
import type { ArtifactRef } from '../../workflows/types';
import { DESCRIPTOR, downloadFiles, HF_PREFIX, type TorchModelDescriptor } from '../../activities/torch/common';
import { adapterBase, modelJob } from '../../activities/torch/model';
import { ServeError, type ServedModel } from './engine';
import { loadLlamaModel } from './llama';
import { loadTfjsClassifier } from './tfjs-classifier';
import { startTorchClassifier } from './torch-classifier';

export interface LoadOptions {
  /** Tempered's Python environment (torch models), made on first use. */
  python: () => Promise<string>;
  /** Where GGUF conversions and downloaded torch models are kept between starts. */
  cacheDir: string;
  ggufType: 'f16' | 'q8_0';
  parallel: number;
  contextSize: number;
  threads?: number;
  gpu: boolean;
  /** Where a LoRA model's relative base path is found. */
  specDir: string;
  log: (line: string) => void;
}

/** Loads a registered version with the engine for its kind (cli/serve/engine.ts). */
export async function loadServedModel(store: ArtifactStore, version: ModelVersion, options: LoadOptions): Promise<ServedModel> {
  const { outputs } = version;
  if (!outputs[DESCRIPTOR]) {
    // A tfjs classifier runs here; a tfjs language model as GGUF of its GPT-2 export.
    if (!outputs.model) throw new ServeError(`${version.name} v${version.version} has no model output (outputs: ${Object.keys(outputs).join(', ')})`);
    const { objective } = await store.readJson<{ objective: string }>(outputs.model);
    if (objective === 'classify') return loadTfjsClassifier(store, outputs, `${version.name.replace(/-/g, '_')}_v${version.version}`);
    return languageModel(await ggufOf(store, version, outputs.model, objective, await options.python(), options), options);
  }
  const descriptor = await store.readJson<TorchModelDescriptor>(outputs[DESCRIPTOR]);
  const python = await options.python();
  if (descriptor.objective === 'classify') {
    const dir = path.join(options.cacheDir, version.name, `v${version.version}-${outputs[DESCRIPTOR].sha256.slice(0, 12)}`);
    await downloadFiles(store, outputs, HF_PREFIX, dir);
    const base = descriptor.adapter ? await adapterBase(descriptor, options.specDir, python) : undefined;
    const job = modelJob(descriptor, dir, base);
    return startTorchClassifier(python, job, options.cacheDir, options.threads);
  }
  if (descriptor.objective === 'mlm') throw new ServeError('a masked language model (objective mlm) neither generates nor classifies: fine-tune it further as a classifier and serve that');
  return languageModel(await ggufOf(store, version, outputs[DESCRIPTOR], descriptor.objective, python, options), options);
}

function languageModel(file: string, options: LoadOptions): Promise<ServedModel> {
  return loadLlamaModel(file, { parallel: options.parallel, contextSize: options.contextSize, threads: options.threads, gpu: options.gpu, label: `GGUF ${options.ggufType}` });
}

/** The version as a GGUF file, converted by Tempered's exporter once and kept under the cache by its descriptor's (`key`'s) sha256. */
async function ggufOf(store: ArtifactStore, version: ModelVersion, key: ArtifactRef, objective: string, python: string, options: LoadOptions): Promise<string> {
  const file = path.join(options.cacheDir, version.name, `v${version.version}-${key.sha256.slice(0, 12)}.${options.ggufType}.gguf`);
  if (await stat(file).catch(() => undefined)) return file;
  options.log(`converting ${version.name} v${version.version} to GGUF ${options.ggufType} (once; kept in ${path.dirname(file)})`);
  await mkdir(path.dirname(file), { recursive: true });
  // Beside the file, so the rename below stays on one file system.
  const work = await mkdtemp(path.join(path.dirname(file), '.converting-'));
  try {
    const out = path.join(work, 'out');
    await exportModel(store, version.outputs, { format: 'gguf', ggufType: options.ggufType, out, python, specDir: options.specDir, source: { model: version.name, version: version.version } });
    // Renamed into place whole: a crash mid-conversion leaves no half file to load next time.
    await rename(path.join(out, `model.${options.ggufType}.gguf`), file);
    return file;
  } catch (err) {
    if (err instanceof ExportError) throw new ServeError(`${version.name} v${version.version} (${objective}) cannot be served as GGUF: ${err.message}`);
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
