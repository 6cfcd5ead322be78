import type { ArtifactRef } from '../../workflows/types';
import { loadModel, packWeights, serializeModel, unpackWeights, type ModelFile, type WeightsIndex } from '../ml/checkpoint';
import type { LoraOptions } from '../ml/lora';
import { Gpt, type ModelConfig, type Objective } from '../ml/model';
import { dequantize, deserializeQuantized, type QuantizedIndex } from '../ml/quantize';
import { BpeTokenizer } from '../ml/tokenizer';
import type { ArtifactStore } from '../store';

// How a trained model lives in the store. A model stage's outputs:
//   model      model.json — this descriptor (format, config, labels, weight indexes)
//   weights    the float32 weights (or, quantized, the int8 blob); for a LoRA model, the BASE
//              model's weights: the very artifact of the stage it started from, not a copy
//   adapter    LoRA only: the adapters and the classification head, the only weights it trained
//   tokenizer  the tokenizer artifact, passed along unchanged

/** model.json. */
export interface ModelDescriptor {
  format: 'tempered-model';
  version: 1;
  objective: Objective;
  /** The model as it runs (classification head included). */
  config: ModelConfig;
  /** Index of `weights`: a full model's, or the base model's for LoRA. Absent when quantized. */
  weightsIndex?: ModelFile;
  /** Class names; index = class id. */
  labels?: string[];
  lora?: { options: LoraOptions; adapterIndex: WeightsIndex };
  quantized?: QuantizedIndex;
  parameters: number;
}

/** A loaded model and what it needs to run. Dispose `gpt` when done. */
export interface LoadedModel {
  gpt: Gpt;
  tokenizer: BpeTokenizer;
  descriptor: ModelDescriptor;
  labels?: string[];
  /** Bytes of the weights the model was loaded from (adapter included). */
  weightBytes: number;
}

/** Loads a model stage's outputs. `merge` folds LoRA adapters into the weights. */
export async function loadModelArtifacts(
  store: ArtifactStore,
  outputs: Record<string, ArtifactRef>,
  options: { name?: string; merge?: boolean } = {},
): Promise<LoadedModel> {
  for (const required of ['model', 'weights', 'tokenizer']) {
    if (!outputs[required]) throw new Error(`not a model: the stage has no "${required}" output (outputs: ${Object.keys(outputs).join(', ')})`);
  }
  const descriptor = await store.readJson<ModelDescriptor>(outputs.model);
  if (descriptor.format !== 'tempered-model' || descriptor.version !== 1) {
    throw Object.assign(new Error(`${outputs.model.uri} is not a tempered-model v1 descriptor`), { nonRetryable: true });
  }
  const [weightsData, tokenizerJson] = await Promise.all([store.readBuffer(outputs.weights), store.readJson(outputs.tokenizer)]);
  const tokenizer = BpeTokenizer.fromJSON(tokenizerJson as never);
  let weightBytes = weightsData.length;
  let gpt: Gpt;
  if (descriptor.quantized) {
    gpt = new Gpt(descriptor.config, { name: options.name });
    gpt.setWeights(dequantize(deserializeQuantized(descriptor.quantized, weightsData)));
  } else if (descriptor.lora) {
    if (!outputs.adapter) throw new Error(`LoRA model ${outputs.model.uri} has no "adapter" output`);
    const adapterData = await store.readBuffer(outputs.adapter);
    weightBytes += adapterData.length;
    gpt = new Gpt(descriptor.config, { name: options.name });
    // The adapter holds the head, so the base's own head (if any, perhaps of another width) is not used.
    const base = unpackWeights(descriptor.weightsIndex!, weightsData, outputs.weights.uri);
    gpt.setWeights(Object.fromEntries(Object.entries(base).filter(([name]) => !name.startsWith('cls.'))));
    gpt.applyLora(descriptor.lora.options);
    gpt.setWeights(unpackWeights(descriptor.lora.adapterIndex, adapterData, outputs.adapter.uri));
    if (options.merge) gpt.mergeLora();
  } else {
    gpt = loadModel(descriptor.weightsIndex!, weightsData, { name: options.name });
  }
  return { gpt, tokenizer, descriptor, labels: descriptor.labels, weightBytes };
}

/**
 * Stores a trained model under `prefix`. A LoRA model stores only its trainable weights (adapters
 * and head) and refers to `base` — the weights artifact it started from — for everything else.
 */
export async function saveModelArtifacts(
  store: ArtifactStore,
  prefix: string,
  model: { gpt: Gpt; objective: Objective; labels?: string[]; tokenizer: ArtifactRef; base?: { weights: ArtifactRef; index: ModelFile } },
): Promise<Record<string, ArtifactRef>> {
  const { gpt, objective, labels, tokenizer, base } = model;
  const descriptor: ModelDescriptor = { format: 'tempered-model', version: 1, objective, config: { ...gpt.config }, labels, parameters: gpt.parameterCount() };
  const outputs: Record<string, ArtifactRef> = { tokenizer };
  if (gpt.lora && base) {
    const { index, data } = packWeights(gpt.readWeights(gpt.trainableNames(objective)));
    descriptor.weightsIndex = base.index;
    descriptor.lora = { options: gpt.lora, adapterIndex: index };
    outputs.weights = base.weights;
    outputs.adapter = await store.put(`${prefix}adapter.bin`, data, 'application/octet-stream');
  } else {
    const { config, weights } = serializeModel(gpt);
    descriptor.weightsIndex = config;
    outputs.weights = await store.put(`${prefix}weights.bin`, weights, 'application/octet-stream');
  }
  outputs.model = await store.put(`${prefix}model.json`, JSON.stringify(descriptor, null, 2), 'application/json');
  return outputs;
}

/** The weights artifact and index of a stored full model, for a LoRA stage that builds on it (none for LoRA or quantized models). */
export function baseOf(descriptor: ModelDescriptor, outputs: Record<string, ArtifactRef>): { weights: ArtifactRef; index: ModelFile } | undefined {
  return descriptor.lora || descriptor.quantized || !descriptor.weightsIndex ? undefined : { weights: outputs.weights, index: descriptor.weightsIndex };
}
