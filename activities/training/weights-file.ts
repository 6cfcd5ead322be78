import type { NamedWeights } from '../ml/model';

// A named set of float32 tensors as a JSON index plus one little-endian blob — the same layout
// as a model's weights file, for the pieces a stage stores on their own (LoRA adapters + head).

export interface WeightsIndex {
  tensors: Array<{ name: string; shape: number[]; offset: number; byteLength: number }>;
  byteLength: number;
}

/** Packs named weights into an index and a blob. */
export function packWeights(weights: NamedWeights): { index: WeightsIndex; data: Buffer } {
  const tensors: WeightsIndex['tensors'] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, w] of Object.entries(weights)) {
    const bytes = Buffer.alloc(w.data.length * 4);
    for (let i = 0; i < w.data.length; i++) bytes.writeFloatLE(w.data[i], i * 4);
    tensors.push({ name, shape: w.shape, offset, byteLength: bytes.length });
    parts.push(bytes);
    offset += bytes.length;
  }
  return { index: { tensors, byteLength: offset }, data: Buffer.concat(parts) };
}

/** Unpacks `packWeights` output; a blob of the wrong size is a clear error. */
export function unpackWeights(index: WeightsIndex, data: Buffer, what: string): NamedWeights {
  if (data.length !== index.byteLength) throw new Error(`${what}: blob is ${data.length} bytes but its index says ${index.byteLength}`);
  const weights: NamedWeights = {};
  for (const t of index.tensors) {
    const values = new Float32Array(t.byteLength / 4);
    for (let i = 0; i < values.length; i++) values[i] = data.readFloatLE(t.offset + i * 4);
    weights[t.name] = { shape: t.shape, data: values };
  }
  return weights;
}
