import * as os from 'node:os';
import type { Objective } from '../ml/model';

// A model too large for its worker would not fail cleanly: allocating its weights takes the whole
// process down (or, on wasm, aborts the runtime), and Temporal would retry it on another worker
// just as small. So training stages estimate the memory first and fail at once, saying what to change.

/** The shape fields the estimate needs (a subset of ModelConfig). */
export interface MemoryEstimateConfig {
  vocabSize: number;
  context: number;
  layers: number;
  dModel: number;
  /** MLP hidden width as a multiple of dModel. Default 4. */
  mlpRatio?: number;
  /** Attention heads: attention scores are [B, heads, T, T]. Default dModel / 64 (at least 1). */
  heads?: number;
  /** Classes of a classification head. Default none. */
  numClasses?: number;
}

const FLOAT32_BYTES = 4;
/** Weights, their gradients, and AdamW's two moments: four float32 copies of every parameter. */
const COPIES_PER_PARAMETER = 4;

/** Parameters of the GPT in activities/ml/model.ts (tied LM head; optional classification head). */
export function countParameters(config: MemoryEstimateConfig): number {
  const { vocabSize: V, context: T, layers: L, dModel: d } = config;
  const hidden = (config.mlpRatio ?? 4) * d;
  const block =
    2 * 2 * d + // ln_1, ln_2: gamma and beta
    (d * 3 * d + 3 * d) + // attn.c_attn
    (d * d + d) + // attn.c_proj
    (d * hidden + hidden) + // mlp.c_fc
    (hidden * d + d); // mlp.c_proj
  const head = config.numClasses === undefined ? 0 : d * config.numClasses + config.numClasses;
  return V * d + T * d + L * block + 2 * d + head;
}

/**
 * Activations one micro-batch keeps for the backward pass, in float32 values: per block the
 * LayerNorm inputs and outputs, q/k/v, attention scores and probabilities, the MLP's hidden
 * layer (before and after GELU), and the residual sums; plus the causal mask, and for causal-lm
 * the B·T·V logits three times (logits, softmax, their gradient), which dominate at large vocabularies.
 */
function activationValues(config: MemoryEstimateConfig, batchSize: number, objective: Objective): number {
  const { vocabSize: V, context: T, layers: L, dModel: d } = config;
  const B = batchSize;
  const hidden = (config.mlpRatio ?? 4) * d;
  const heads = config.heads ?? Math.max(1, Math.round(d / 64));
  const perBlock =
    12 * B * T * d + // ln_1 and ln_2 (input, normalized, output), q/k/v, attention output, c_proj, residuals
    3 * B * T * hidden + // c_fc output, GELU gate, GELU output
    2 * B * heads * T * T; // scores and softmax
  const logits = objective === 'causal-lm' ? 3 * B * T * V : 3 * B * (config.numClasses ?? 2);
  return B * T * d + L * perBlock + T * T + logits;
}

/** Estimated bytes to train `config` with AdamW at `batchSize` examples per micro-batch. */
export function estimateTrainingBytes(config: MemoryEstimateConfig, batchSize: number, objective: Objective): number {
  const state = countParameters(config) * COPIES_PER_PARAMETER;
  return (state + activationValues(config, batchSize, objective)) * FLOAT32_BYTES;
}

/** `TEMPERED_MEMORY_LIMIT_BYTES`, else 80% of this machine's memory (the rest for Node, data and the OS). */
export function defaultMemoryLimitBytes(): number {
  return Number(process.env.TEMPERED_MEMORY_LIMIT_BYTES) || Math.floor(os.totalmem() * 0.8);
}

/** The WebAssembly backend's heap is 32-bit: it holds at most 4 GiB of tensors, whatever the machine has. */
export const WASM_HEAP_LIMIT_BYTES = 4 * 2 ** 30;

/** The limit for a backend (`BackendInfo.name`): the default limit, capped by the wasm heap on `wasm`. */
export function memoryLimitBytes(backend?: string): number {
  const limit = defaultMemoryLimitBytes();
  return backend === 'wasm' ? Math.min(limit, WASM_HEAP_LIMIT_BYTES) : limit;
}

/** A model whose training would not fit in the worker's memory. Non-retryable: every retry would be as large. */
export class ModelTooLargeError extends Error {
  override readonly name = 'ModelTooLargeError';
  readonly nonRetryable = true;
  constructor(
    readonly estimateBytes: number,
    readonly limitBytes: number,
  ) {
    super(
      `training this model needs an estimated ${formatBytes(estimateBytes)} (weights, gradients, AdamW state and one micro-batch of activations), ` +
        `more than the ${formatBytes(limitBytes)} this worker allows${limitBytes === WASM_HEAP_LIMIT_BYTES ? ' (the most the WebAssembly backend can address)' : ''}; ` +
        `make the model smaller (dModel, layers, context) or lower batchSize (raise gradientAccumulation to keep the effective batch), ` +
        `run the stage on a GPU node with more memory (resources: { gpu: 1 }; the native tfjs-node-gpu or tfjs-node backend is not bound by the 4 GiB wasm heap), ` +
        `or set TEMPERED_MEMORY_LIMIT_BYTES on the worker if it really has the memory (default: 80% of its RAM)`,
    );
  }
}

/** Throws ModelTooLargeError when `estimateBytes` exceeds `limitBytes`. */
export function checkTrainingFits(estimateBytes: number, limitBytes: number = defaultMemoryLimitBytes()): void {
  if (estimateBytes > limitBytes) throw new ModelTooLargeError(estimateBytes, limitBytes);
}

/** `1.5 GiB`, `640 MiB`: binary units, as memory is sized. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}
