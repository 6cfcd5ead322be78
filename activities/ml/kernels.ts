import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

// Kernels the stock backends lack or implement too slowly for training. Each is registered once
// per backend by `initBackend`; all are checked against the stock cpu kernels in the tests.
//
// - wasm UnsortedSegmentSum (the gradient of `gather`, i.e. of the embeddings): missing in wasm.
//   Built on wasm's own ScatterNd, which adds the updates of duplicate indices.
// - cpu UnsortedSegmentSum: the stock kernel runs one masked sum over all of `x` per segment
//   (per vocabulary entry for an embedding); this one is a single pass.
// - wasm Slice, SplitV, Unpack: the stock Slice copies the whole input out of the wasm heap
//   (`readSync`) for every slice, and SplitV/Unpack call it once per piece, so splitting qkv or
//   unstacking attention heads cost O(input) per piece (~0.5 ms per 16 KB slice of a 1 MB
//   tensor); these copy only the window, reading the heap through a view.
// - wasm GatherV2: the stock kernel gathers element by element (~11 ms for 2048 rows of 128
//   floats); this one copies whole rows.
// - wasm Identity (what `clone` and customGrad's saved tensors run): the stock kernel copies the
//   buffer; this one shares it by reference count, as Reshape already does on wasm and Identity
//   does on cpu. Kernels never write into their inputs, so sharing is safe.
// - wasm OneHot: the stock kernel writes int32 bit patterns whatever the requested dtype, so a
//   float32 one-hot holds 1.4e-45 instead of 1 (tfjs 4.22); this one honours the dtype.
//
// And two kernels of our own (called through `runKernel` by matmul.ts, wasm only):
// - SliceMatMul: a [S, N, K] @ b [S, K, M] as S plain XNNPACK GEMMs run directly on the slices
//   in the wasm heap. Each slice is registered with the C++ side under a reserved alias id that
//   points into its parent's buffer, multiplied by wasm's own BatchMatMul entry point, and
//   unregistered (the memory belongs to the parent). This skips what the op-level alternative
//   (unstack, S matMuls, stack) pays per slice: two copies and three ops' bookkeeping.
// - SumRows: column sums of a 2-D tensor in one pass (bias and LayerNorm gradients).
// - AdamW: one variable's whole update (decay, both moments, bias-corrected step) in one pass,
//   in float64, instead of ~14 elementwise ops (optim.ts).

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function callKernel(name: string, backendName: string, args: KernelArgs): tf.TensorInfo {
  const kernel = tf.getKernel(name, backendName);
  if (!kernel) throw new Error(`kernel ${name} is not registered for backend ${backendName}`);
  return kernel.kernelFunc(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

function wasmUnsortedSegmentSum({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const n = tf.util.sizeFromShape(segmentIds.shape);
  const inner = x.shape.slice(segmentIds.shape.length);
  // Reshape is free in wasm (it shares the buffer); ScatterNd sums duplicates: exactly a segment sum.
  const indices = callKernel('Reshape', 'wasm', { inputs: { x: segmentIds }, backend, attrs: { shape: [n, 1] } });
  const updates = callKernel('Reshape', 'wasm', { inputs: { x }, backend, attrs: { shape: [n, ...inner] } });
  const out = callKernel('ScatterNd', 'wasm', {
    inputs: { indices, updates },
    backend,
    attrs: { shape: [numSegments, ...inner] },
  });
  wasm.disposeData(indices.dataId);
  wasm.disposeData(updates.dataId);
  return out;
}

interface CpuBackendLike {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): tf.TensorInfo;
}

function cpuUnsortedSegmentSum({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const cpu = backend as CpuBackendLike;
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const ids = cpu.readSync(segmentIds.dataId) as Int32Array;
  const xs = cpu.readSync(x.dataId) as Float32Array | Int32Array;
  const inner = tf.util.sizeFromShape(x.shape.slice(segmentIds.shape.length));
  const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= numSegments) continue; // as the stock kernel: out-of-range ids are dropped
    const src = i * inner;
    const dst = id * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += xs[src + j];
  }
  return cpu.makeTensorInfo([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype, out);
}

/** Copies the `size` window at `begin` of row-major `src` (shape `shape`) into `dst`. */
export function copyWindow(
  src: tf.backend_util.TypedArray,
  shape: number[],
  begin: number[],
  size: number[],
  dst: tf.backend_util.TypedArray,
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  // Trailing dimensions taken whole merge into one contiguous run per outer index.
  let k = rank - 1;
  while (k > 0 && begin[k] === 0 && size[k] === shape[k]) k--;
  const run = size[k] * strides[k];
  const outer = size.slice(0, k);
  const count = tf.util.sizeFromShape(outer);
  const index = new Array<number>(k).fill(0);
  let dstOffset = 0;
  for (let n = 0; n < count; n++) {
    let srcOffset = begin[k] * strides[k];
    for (let d = 0; d < k; d++) srcOffset += (begin[d] + index[d]) * strides[d];
    if (run > 32) dst.set(src.subarray(srcOffset, srcOffset + run), dstOffset);
    else for (let j = 0; j < run; j++) dst[dstOffset + j] = src[srcOffset + j];
    dstOffset += run;
    for (let d = k - 1; d >= 0; d--) {
      if (++index[d] < outer[d]) break;
      index[d] = 0;
    }
  }
}

function wasmSlice({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const x = (inputs as { x: tf.TensorInfo }).x;
  const { begin, size } = attrs as { begin: number | number[]; size: number | number[] };
  const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  const out = wasm.makeOutput(size_, x.dtype);
  if (tf.util.sizeFromShape(size_) === 0) return out;
  // Views are taken after makeOutput: an allocation may grow (and detach) the heap.
  copyWindow(wasm.typedArrayFromHeap(x), x.shape, begin_, size_, wasm.typedArrayFromHeap(out));
  return out;
}

function wasmSplitV({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const wasm = backend as BackendWasm;
  const x = (inputs as { x: tf.TensorInfo }).x;
  const { numOrSizeSplits, axis } = attrs as { numOrSizeSplits: number | number[]; axis: number };
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, $axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[$axis] = s;
    const out = wasm.makeOutput(size, x.dtype);
    if (s > 0) copyWindow(wasm.typedArrayFromHeap(x), x.shape, begin, size, wasm.typedArrayFromHeap(out));
    begin[$axis] += s;
    return out;
  });
}

function wasmUnpack({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const wasm = backend as BackendWasm;
  const value = (inputs as { value: tf.TensorInfo }).value;
  const axis = tf.util.parseAxisParam((attrs as { axis: number }).axis, value.shape)[0];
  const outShape = value.shape.filter((_, d) => d !== axis);
  const size = [...value.shape];
  size[axis] = 1;
  const begin = new Array<number>(value.shape.length).fill(0);
  const outs: tf.TensorInfo[] = [];
  for (let i = 0; i < value.shape[axis]; i++) {
    begin[axis] = i;
    const out = wasm.makeOutput(outShape, value.dtype);
    copyWindow(wasm.typedArrayFromHeap(value), value.shape, begin, size, wasm.typedArrayFromHeap(out));
    outs.push(out);
  }
  return outs;
}

function wasmIdentity({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = (inputs as { x: tf.TensorInfo }).x;
  (backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function wasmGatherV2({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const { x, indices } = inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = attrs as { axis: number; batchDims: number };
  if (batchDims !== 0) throw new Error('GatherV2 with batchDims is not supported by the Tempered wasm kernel');
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const outer = tf.util.sizeFromShape(x.shape.slice(0, $axis));
  const dim = x.shape[$axis];
  const inner = tf.util.sizeFromShape(x.shape.slice($axis + 1));
  const count = tf.util.sizeFromShape(indices.shape);
  const out = wasm.makeOutput([...x.shape.slice(0, $axis), ...indices.shape, ...x.shape.slice($axis + 1)], x.dtype);
  const idx = wasm.typedArrayFromHeap(indices);
  const src = wasm.typedArrayFromHeap(x);
  const dst = wasm.typedArrayFromHeap(out);
  for (let i = 0; i < count; i++) {
    if (idx[i] < 0 || idx[i] >= dim) throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${dim - 1}]`);
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < count; i++) {
      const from = (o * dim + idx[i]) * inner;
      dst.set(src.subarray(from, from + inner), (o * count + i) * inner);
    }
  }
  return out;
}

function wasmOneHot({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const indices = (inputs as { indices: tf.TensorInfo }).indices;
  const { depth, onValue, offValue, dtype } = attrs as { depth: number; onValue: number; offValue: number; dtype: tf.DataType };
  const out = wasm.makeOutput([...indices.shape, depth], dtype);
  const idx = wasm.typedArrayFromHeap(indices);
  const dst = wasm.typedArrayFromHeap(out);
  dst.fill(offValue);
  for (let i = 0; i < idx.length; i++) {
    const k = idx[i];
    if (k >= 0 && k < depth) dst[i * depth + k] = onValue;
  }
  return out;
}

/** Kernel names of our own kernels. */
export const SLICE_MAT_MUL = 'TemperedSliceMatMul';
export const SUM_ROWS = 'TemperedSumRows';

// Ids no tensor will reach: the backend numbers tensors upwards from 1, two ids per tensor.
const ALIAS_A = 0xfffffff0;
const ALIAS_B = ALIAS_A + 1;
const ALIAS_OUT = ALIAS_A + 2;

interface WasmInternals {
  cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
  tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
}

const batchMatMulEntry = new WeakMap<object, (...args: unknown[]) => void>();

function wasmSliceMatMul({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const module = wasm.wasm as unknown as WasmInternals;
  let call = batchMatMulEntry.get(wasm);
  if (!call) {
    call = module.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    batchMatMulEntry.set(wasm, call);
  }
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const [S, N, K] = a.shape;
  const M = b.shape[2];
  const out = wasm.makeOutput([S, N, M], 'float32');
  // Offsets are read after makeOutput, whose allocation may have grown the heap.
  const aAt = wasm.dataIdMap.get(a.dataId)!.memoryOffset;
  const bAt = wasm.dataIdMap.get(b.dataId)!.memoryOffset;
  const outAt = wasm.dataIdMap.get(out.dataId)!.memoryOffset;
  const aShape = new Uint8Array(new Int32Array([1, N, K]).buffer);
  const bShape = new Uint8Array(new Int32Array([1, K, M]).buffer);
  for (let s = 0; s < S; s++) {
    module.tfjs.registerTensor(ALIAS_A, N * K, aAt + 4 * s * N * K);
    module.tfjs.registerTensor(ALIAS_B, K * M, bAt + 4 * s * K * M);
    module.tfjs.registerTensor(ALIAS_OUT, N * M, outAt + 4 * s * N * M);
    try {
      call(ALIAS_A, aShape, 3, ALIAS_B, bShape, 3, false, false, ALIAS_OUT);
    } finally {
      // Unregistering B also drops XNNPACK's operator cached for it (its packed weights).
      module.tfjs.disposeData(ALIAS_A);
      module.tfjs.disposeData(ALIAS_B);
      module.tfjs.disposeData(ALIAS_OUT);
    }
  }
  return out;
}

function wasmSumRows({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const x = (inputs as { x: tf.TensorInfo }).x;
  const [n, c] = x.shape;
  const out = wasm.makeOutput([c], 'float32');
  const src = wasm.typedArrayFromHeap(x);
  const acc = new Float64Array(c);
  let r = 0;
  // Four rows per pass: a quarter of the accumulator traffic (~3× faster in V8).
  for (; r + 4 <= n; r += 4) {
    const r0 = r * c;
    const r1 = r0 + c;
    const r2 = r1 + c;
    const r3 = r2 + c;
    for (let j = 0; j < c; j++) acc[j] += src[r0 + j] + src[r1 + j] + (src[r2 + j] + src[r3 + j]);
  }
  for (; r < n; r++) {
    const row = r * c;
    for (let j = 0; j < c; j++) acc[j] += src[row + j];
  }
  wasm.typedArrayFromHeap(out).set(acc);
  return out;
}

export const ADAMW = 'TemperedAdamW';

/** Attributes of the AdamW kernel; `decay` is 1 − lr·wd (1 for tensors without weight decay). */
export interface AdamWAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  decay: number;
  /** Bias corrections 1 − β1ᵗ and 1 − β2ᵗ. */
  c1: number;
  c2: number;
}

function wasmAdamW({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const wasm = backend as BackendWasm;
  const { w, g, m, v } = inputs as { w: tf.TensorInfo; g: tf.TensorInfo; m: tf.TensorInfo; v: tf.TensorInfo };
  const { lr, beta1, beta2, eps, decay, c1, c2 } = attrs as unknown as AdamWAttrs;
  const outW = wasm.makeOutput(w.shape, 'float32');
  const outM = wasm.makeOutput(w.shape, 'float32');
  const outV = wasm.makeOutput(w.shape, 'float32');
  const [ws, gs, ms, vs] = [w, g, m, v].map((t) => wasm.typedArrayFromHeap(t));
  const [nw, nm, nv] = [outW, outM, outV].map((t) => wasm.typedArrayFromHeap(t));
  const step = lr / c1;
  const sqrt = Math.sqrt;
  for (let i = 0; i < ws.length; i++) {
    const gi = gs[i];
    const mi = beta1 * ms[i] + (1 - beta1) * gi;
    const vi = beta2 * vs[i] + (1 - beta2) * gi * gi;
    nm[i] = mi;
    nv[i] = vi;
    nw[i] = ws[i] * decay - (step * mi) / (sqrt(vi / c2) + eps);
  }
  return [outW, outM, outV];
}

/** Whether our own kernels can run on the active backend. */
export function hasTrainingKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/** Replaces a wasm kernel, keeping the stock one for string tensors (which live outside the heap). */
function replaceWasmKernel(kernelName: string, fast: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]): void {
  const stock = tf.getKernel(kernelName, 'wasm');
  const kernelFunc = (args: KernelArgs) => {
    const first = Object.values(args.inputs)[0];
    return stock && first?.dtype === 'string' ? stock.kernelFunc(args as Parameters<tf.KernelFunc>[0]) : fast(args);
  };
  replaceKernel(kernelName, 'wasm', kernelFunc as unknown as tf.KernelFunc);
}

function replaceKernel(kernelName: string, backendName: string, kernelFunc: tf.KernelFunc): void {
  if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc });
}

const patched = new Set<string>();

/** Registers this module's kernels for `backendName` ('wasm' or 'cpu'); other backends are left alone. */
export function registerTrainingKernels(backendName: string): void {
  if (patched.has(backendName)) return;
  if (backendName === 'wasm') {
    replaceWasmKernel('UnsortedSegmentSum', wasmUnsortedSegmentSum);
    replaceWasmKernel('Slice', wasmSlice);
    replaceWasmKernel('SplitV', wasmSplitV);
    replaceWasmKernel('Unpack', wasmUnpack);
    replaceWasmKernel('GatherV2', wasmGatherV2);
    replaceWasmKernel('Identity', wasmIdentity);
    replaceWasmKernel('OneHot', wasmOneHot);
    replaceKernel(SLICE_MAT_MUL, 'wasm', wasmSliceMatMul as unknown as tf.KernelFunc);
    replaceKernel(SUM_ROWS, 'wasm', wasmSumRows as unknown as tf.KernelFunc);
    replaceKernel(ADAMW, 'wasm', wasmAdamW as unknown as tf.KernelFunc);
  } else if (backendName === 'cpu') {
    replaceKernel('UnsortedSegmentSum', 'cpu', cpuUnsortedSegmentSum as unknown as tf.KernelFunc);
  }
  patched.add(backendName);
}
