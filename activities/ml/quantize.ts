import os from 'node:os';
import { ArtifactFormatError } from './errors';
import type { NamedWeights } from './model';

// Per-output-channel symmetric INT8 (tfjs's own weight quantization is per-tensor uint8/16 only).
// Every 2-D tensor is quantized — projections, the classification head, LoRA factors and the
// embedding tables (they are the largest tensors of a small model, and wte doubles as the tied
// LM head) — while 1-D tensors (biases, LayerNorm gains and shifts) stay float32: they are
// 1% of the bytes and the most sensitive to error.
//
// Channel = what indexes the outputs: columns of [in, out] projection weights; rows of the
// embedding tables `wte` and `wpe` (a row of wte is both a token's embedding and, tied, one
// output logit's weights). For a channel c, scale_c = max|w_c| / 127 and q = round(w / scale_c)
// in [−127, 127], so |w − q·scale_c| ≤ scale_c / 2.

export interface Int8Tensor {
  kind: 'int8';
  shape: [number, number];
  /** 0: one scale per row; 1: one scale per column. */
  axis: 0 | 1;
  values: Int8Array;
  scales: Float32Array;
}

export interface Float32Tensor {
  kind: 'float32';
  shape: number[];
  values: Float32Array;
}

export type QuantizedTensor = Int8Tensor | Float32Tensor;

/** Quantized weights by name. */
export type QuantizedWeights = Record<string, QuantizedTensor>;

/** Rows of the embedding tables are their output channels; everything else is [in, out]. */
export function channelAxis(name: string): 0 | 1 {
  return name === 'wte' || name === 'wpe' ? 0 : 1;
}

export function quantizeWeights(weights: NamedWeights): QuantizedWeights {
  const out: QuantizedWeights = {};
  for (const [name, w] of Object.entries(weights)) {
    out[name] = w.shape.length === 2 ? quantizeMatrix(w.data, w.shape as [number, number], channelAxis(name)) : { kind: 'float32', shape: [...w.shape], values: w.data.slice() };
  }
  return out;
}

function quantizeMatrix(data: Float32Array, shape: [number, number], axis: 0 | 1): Int8Tensor {
  const [rows, cols] = shape;
  const channels = axis === 0 ? rows : cols;
  const channelOf = axis === 0 ? (i: number) => Math.floor(i / cols) : (i: number) => i % cols;
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < data.length; i++) {
    const c = channelOf(i);
    const a = Math.abs(data[i]);
    if (a > maxAbs[c]) maxAbs[c] = a;
  }
  const scales = maxAbs.map((m) => m / 127);
  const values = new Int8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const s = scales[channelOf(i)];
    values[i] = s === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(data[i] / s)));
  }
  return { kind: 'int8', shape: [rows, cols], axis, values, scales };
}

export function dequantize(weights: QuantizedWeights): NamedWeights {
  const out: NamedWeights = {};
  for (const [name, q] of Object.entries(weights)) {
    if (q.kind === 'float32') {
      out[name] = { shape: [...q.shape], data: q.values.slice() };
      continue;
    }
    const [rows, cols] = q.shape;
    const data = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        data[i] = q.values[i] * q.scales[q.axis === 0 ? r : c];
      }
    }
    out[name] = { shape: [rows, cols], data };
  }
  return out;
}

/** JSON index of a serialized quantized model; offsets are bytes into the data blob. */
export interface QuantizedIndex {
  format: 'tempered-int8';
  version: 1;
  tensors: Array<
    | { name: string; kind: 'int8'; shape: [number, number]; axis: 0 | 1; offset: number; scalesOffset: number }
    | { name: string; kind: 'float32'; shape: number[]; offset: number }
  >;
  byteLength: number;
}

/**
 * One blob: int8 values, float32 LE scales and float32 LE tensors, each section 4-byte aligned.
 * `bytesBefore` is the float32 size of the same weights; `bytesAfter` the blob's size.
 */
export function serializeQuantized(weights: QuantizedWeights): { index: QuantizedIndex; data: Buffer; bytesBefore: number; bytesAfter: number } {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (bytes: Buffer) => {
    const at = offset;
    parts.push(bytes);
    offset += bytes.length;
    const pad = (4 - (offset % 4)) % 4;
    if (pad > 0) {
      parts.push(Buffer.alloc(pad));
      offset += pad;
    }
    return at;
  };
  const floats = (a: Float32Array) => {
    if (os.endianness() === 'LE') return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const b = Buffer.alloc(a.byteLength);
    a.forEach((v, i) => b.writeFloatLE(v, 4 * i));
    return b;
  };
  const index: QuantizedIndex = { format: 'tempered-int8', version: 1, tensors: [], byteLength: 0 };
  let bytesBefore = 0;
  for (const [name, q] of Object.entries(weights)) {
    bytesBefore += 4 * q.values.length;
    if (q.kind === 'int8') {
      const at = push(Buffer.from(q.values.buffer, q.values.byteOffset, q.values.byteLength));
      const scalesAt = push(floats(q.scales));
      index.tensors.push({ name, kind: 'int8', shape: q.shape, axis: q.axis, offset: at, scalesOffset: scalesAt });
    } else {
      index.tensors.push({ name, kind: 'float32', shape: q.shape, offset: push(floats(q.values)) });
    }
  }
  const data = Buffer.concat(parts);
  index.byteLength = data.length;
  return { index, data, bytesBefore, bytesAfter: data.length };
}

export function deserializeQuantized(index: QuantizedIndex, data: Buffer): QuantizedWeights {
  const what = 'quantized weights';
  if (index.format !== 'tempered-int8' || index.version !== 1) throw new ArtifactFormatError(what, `unsupported format ${index.format} v${index.version}`);
  if (data.length !== index.byteLength) throw new ArtifactFormatError(what, `blob is ${data.length} bytes, index says ${index.byteLength}`);
  const floatsAt = (offset: number, n: number) => {
    if (offset + 4 * n > data.length) throw new ArtifactFormatError(what, `float section at ${offset} overruns the blob`);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = data.readFloatLE(offset + 4 * i);
    return out;
  };
  const out: QuantizedWeights = {};
  for (const t of index.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.kind === 'int8') {
      if (t.offset + n > data.length) throw new ArtifactFormatError(what, `int8 section of ${t.name} overruns the blob`);
      const values = new Int8Array(n);
      values.set(new Int8Array(data.buffer, data.byteOffset + t.offset, n));
      const scales = floatsAt(t.scalesOffset, t.axis === 0 ? t.shape[0] : t.shape[1]);
      out[t.name] = { kind: 'int8', shape: t.shape, axis: t.axis, values, scales };
    } else {
      out[t.name] = { kind: 'float32', shape: t.shape, values: floatsAt(t.offset, n) };
    }
  }
  return out;
}
