import os from 'node:os';
import type { DataPosition } from './batches';
import { ArtifactFormatError } from './errors';
import type { LoraOptions } from './lora';
import { Gpt, resolveModelConfig, type GptOptions, type ModelConfig, type NamedWeights, type Objective, type ResolvedModelConfig } from './model';
import type { OptimizerState } from './optim';

// Two on-disk formats, both "JSON index + one little-endian float32 blob".
//
// Model (`serializeModel` / `loadModel`): two artifacts, like tfjs's model.json + weights.bin.
//   config — ModelFile JSON: { format: "tempered-gpt", version: 1, config, lora?, byteLength,
//            tensors: [{ name, shape, dtype: "float32", offset, byteLength }] }
//            offsets are in bytes from the start of the weights blob, in the model's variable order;
//   weights — the tensors' float32 values, little-endian, back to back.
//
// Training checkpoint (`serializeCheckpoint` / `deserializeCheckpoint`): one Buffer,
//   bytes 0..7    magic "TMPDCKPT"
//   bytes 8..11   uint32 LE format version (1)
//   bytes 12..15  uint32 LE length H of the JSON header
//   bytes 16..    the UTF-8 JSON header, then zero padding to a multiple of 4 bytes
//   then          the float32 LE blob.
// The header is the TrainCheckpoint with every Float32Array replaced by an entry of `tensors`
// ({ key, shape, offset, length }; offset in bytes from the blob's start, length in floats).
// Keys: `weights/<name>`, `best/<name>`, `adam_m/<name>`, `adam_v/<name>`.

/** One row of the training history. */
export interface HistoryEntry {
  step: number;
  loss: number;
  lr: number;
  valLoss?: number;
  valAccuracy?: number;
  valF1?: number;
}

/** Everything needed to continue a training run exactly. */
export interface TrainCheckpoint {
  version: 1;
  /** Optimizer steps completed. */
  step: number;
  modelConfig: ResolvedModelConfig;
  /** LoRA options when the model trains adapters. */
  lora?: LoraOptions;
  /** Options that must be equal when resuming. */
  fingerprint: {
    objective: Objective;
    batchSize: number;
    gradientAccumulation: number;
    seed: number;
    trainExamples: number;
    selectionMetric: string;
  };
  /** Every weight of the model (frozen ones included: the checkpoint is self-contained). */
  weights: NamedWeights;
  optimizer: OptimizerState;
  /** Sampler position and PRNG state. */
  data: DataPosition;
  /** Best evaluation so far; `weights` holds the trainable weights at that step. */
  best: { step: number; metric: number | null; evalsSinceBest: number; weights: NamedWeights | null };
  history: HistoryEntry[];
}

const MAGIC = 'TMPDCKPT';
const CHECKPOINT_VERSION = 1;

interface TensorRef {
  key: string;
  shape: number[];
  offset: number;
  length: number;
}

/** Float32 values as little-endian bytes (a view when the host is little-endian). */
function littleEndianBytes(values: Float32Array): Buffer {
  if (os.endianness() === 'LE') return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.byteLength);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

function readFloats(blob: Buffer, offset: number, length: number, what: string): Float32Array {
  if (offset < 0 || offset % 4 !== 0 || offset + 4 * length > blob.length) {
    throw new ArtifactFormatError(what, `tensor at byte ${offset} (${length} floats) lies outside the ${blob.length}-byte blob`);
  }
  const out = new Float32Array(length);
  if (os.endianness() === 'LE') new Uint8Array(out.buffer).set(blob.subarray(offset, offset + 4 * length));
  else for (let i = 0; i < length; i++) out[i] = blob.readFloatLE(offset + 4 * i);
  return out;
}

export function serializeCheckpoint(ckpt: TrainCheckpoint): Buffer {
  const tensors: TensorRef[] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  const add = (key: string, shape: number[], data: Float32Array) => {
    tensors.push({ key, shape, offset, length: data.length });
    parts.push(littleEndianBytes(data));
    offset += data.byteLength;
  };
  for (const [name, w] of Object.entries(ckpt.weights)) add(`weights/${name}`, w.shape, w.data);
  for (const [name, w] of Object.entries(ckpt.best.weights ?? {})) add(`best/${name}`, w.shape, w.data);
  ckpt.optimizer.names.forEach((name, i) => {
    add(`adam_m/${name}`, [ckpt.optimizer.m[i].length], ckpt.optimizer.m[i]);
    add(`adam_v/${name}`, [ckpt.optimizer.v[i].length], ckpt.optimizer.v[i]);
  });
  const header = {
    ...ckpt,
    weights: undefined,
    best: { ...ckpt.best, weights: ckpt.best.weights ? true : null },
    optimizer: { step: ckpt.optimizer.step, names: ckpt.optimizer.names },
    tensors,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(16);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(CHECKPOINT_VERSION, 8);
  prefix.writeUInt32LE(json.length, 12);
  const padding = Buffer.alloc((4 - ((16 + json.length) % 4)) % 4);
  return Buffer.concat([prefix, json, padding, ...parts]);
}

export function deserializeCheckpoint(buf: Buffer): TrainCheckpoint {
  const what = 'training checkpoint';
  if (buf.length < 16 || buf.toString('ascii', 0, 8) !== MAGIC) {
    throw new ArtifactFormatError(what, `missing the ${MAGIC} magic; this is not a Tempered checkpoint`);
  }
  const version = buf.readUInt32LE(8);
  if (version !== CHECKPOINT_VERSION) throw new ArtifactFormatError(what, `format version ${version} is not supported (expected ${CHECKPOINT_VERSION})`);
  const headerLength = buf.readUInt32LE(12);
  if (16 + headerLength > buf.length) throw new ArtifactFormatError(what, 'truncated header');
  const header = JSON.parse(buf.toString('utf8', 16, 16 + headerLength)) as Omit<TrainCheckpoint, 'weights' | 'best' | 'optimizer'> & {
    best: Omit<TrainCheckpoint['best'], 'weights'> & { weights: true | null };
    optimizer: { step: number; names: string[] };
    tensors: TensorRef[];
  };
  const blobStart = 16 + headerLength + ((4 - ((16 + headerLength) % 4)) % 4);
  const blob = buf.subarray(blobStart);
  const byKey = new Map(header.tensors.map((t) => [t.key, t]));
  const take = (key: string) => {
    const ref = byKey.get(key);
    if (!ref) throw new ArtifactFormatError(what, `tensor ${key} is missing`);
    return { shape: ref.shape, data: readFloats(blob, ref.offset, ref.length, what) };
  };
  const group = (prefix: string): NamedWeights =>
    Object.fromEntries(header.tensors.filter((t) => t.key.startsWith(prefix)).map((t) => [t.key.slice(prefix.length), take(t.key)]));
  const { tensors: _tensors, ...rest } = header;
  return {
    ...rest,
    weights: group('weights/'),
    best: { ...header.best, weights: header.best.weights ? group('best/') : null },
    optimizer: {
      step: header.optimizer.step,
      names: header.optimizer.names,
      m: header.optimizer.names.map((n) => take(`adam_m/${n}`).data),
      v: header.optimizer.names.map((n) => take(`adam_v/${n}`).data),
    },
  };
}

// ---- model files -----------------------------------------------------------------------------

/** The JSON half of a saved model. */
export interface ModelFile {
  format: 'tempered-gpt';
  version: 1;
  config: ResolvedModelConfig;
  /** Present when the model was saved with unmerged LoRA adapters. */
  lora?: LoraOptions;
  /** Size of the weights blob in bytes. */
  byteLength: number;
  tensors: Array<{ name: string; shape: number[]; dtype: 'float32'; offset: number; byteLength: number }>;
}

/** Index of a blob of named float32 tensors: a model's weights, or any subset (LoRA adapters). */
export interface WeightsIndex {
  byteLength: number;
  tensors: ModelFile['tensors'];
}

/** Named weights as an index and one little-endian float32 blob. */
export function packWeights(weights: NamedWeights): { index: WeightsIndex; data: Buffer } {
  const tensors: ModelFile['tensors'] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, w] of Object.entries(weights)) {
    tensors.push({ name, shape: w.shape, dtype: 'float32', offset, byteLength: w.data.byteLength });
    parts.push(littleEndianBytes(w.data));
    offset += w.data.byteLength;
  }
  return { index: { byteLength: offset, tensors }, data: Buffer.concat(parts) };
}

/** Reads `packWeights` output back; `what` names the blob in errors. */
export function unpackWeights(index: WeightsIndex, data: Buffer, what: string): NamedWeights {
  if (data.length !== index.byteLength) {
    throw new ArtifactFormatError(what, `weights are ${data.length} bytes but the index says ${index.byteLength}`);
  }
  const named: NamedWeights = {};
  for (const t of index.tensors) {
    if (t.dtype !== 'float32') throw new ArtifactFormatError(what, `tensor ${t.name} has dtype ${t.dtype}; only float32 is supported`);
    const length = t.shape.reduce((a, b) => a * b, 1);
    if (t.byteLength !== 4 * length) throw new ArtifactFormatError(what, `tensor ${t.name}: ${t.byteLength} bytes for shape [${t.shape}]`);
    named[t.name] = { shape: t.shape, data: readFloats(data, t.offset, length, what) };
  }
  return named;
}

/** A model as its JSON index and its float32 little-endian weights. */
export function serializeModel(model: Gpt): { config: ModelFile; weights: Buffer } {
  const { index, data } = packWeights(model.getWeights());
  const file: ModelFile = { format: 'tempered-gpt', version: 1, config: { ...model.config }, ...index };
  if (model.lora) file.lora = model.lora;
  return { config: file, weights: data };
}

/** Rebuilds a model from `serializeModel`'s output; every weight of the model must be present. */
export function loadModel(file: ModelFile, weights: Buffer, options: GptOptions = {}): Gpt {
  const what = 'model file';
  if (file.format !== 'tempered-gpt') throw new ArtifactFormatError(what, `format ${JSON.stringify(file.format)} is not tempered-gpt`);
  if (file.version !== 1) throw new ArtifactFormatError(what, `version ${file.version} is not supported (expected 1)`);
  resolveModelConfig(file.config as ModelConfig);
  const named = unpackWeights(file, weights, what);
  const model = new Gpt(file.config, options);
  try {
    if (file.lora) model.applyLora(file.lora);
    const missing = model.namedVariables().map(([n]) => n).filter((n) => !(n in named));
    if (missing.length > 0) throw new ArtifactFormatError(what, `weights missing: ${missing.join(', ')}`);
    model.setWeights(named);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}
