import * as tf from '@tensorflow/tfjs';
import { matMul2d } from './matmul';
import { LORA_DEFAULTS } from '../../pipelines/trainer-defaults';

// LoRA (Hu et al., 2021): a frozen projection W [in, out] gains a trainable low-rank update,
//   y = x W + b + (alpha / rank) · dropout(x) A B,    A [in, rank] random, B [rank, out] zeros,
// so training starts from exactly the base model and only A and B (plus a classification head,
// when there is one) receive gradients. Merging folds the update in: W += (alpha / rank) · A B.

/** Projections that can carry an adapter: attention query/key/value/output, MLP in/out. */
export const LORA_TARGETS = ['query', 'key', 'value', 'output', 'mlpIn', 'mlpOut'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraOptions {
  /** Rank of A and B. Default 8. */
  rank: number;
  /** Updates are scaled by alpha / rank. Default 16. */
  alpha: number;
  /** Dropout on the adapter's input during training. Default 0. */
  dropout: number;
  /** Projections that get adapters. Default query and value. */
  targets: LoraTarget[];
}

export const DEFAULT_LORA: LoraOptions = { ...LORA_DEFAULTS, targets: [...LORA_DEFAULTS.targets] };

/** Fills in defaults and checks the options; throws with every problem listed. */
export function resolveLoraOptions(options: Partial<LoraOptions>): LoraOptions {
  const resolved: LoraOptions = { ...DEFAULT_LORA, ...options, targets: [...(options.targets ?? DEFAULT_LORA.targets)] };
  const problems: string[] = [];
  if (!Number.isInteger(resolved.rank) || resolved.rank < 1) problems.push(`rank must be a positive integer, got ${resolved.rank}`);
  if (!(resolved.alpha > 0)) problems.push(`alpha must be positive, got ${resolved.alpha}`);
  if (!(resolved.dropout >= 0 && resolved.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${resolved.dropout}`);
  if (resolved.targets.length === 0) problems.push('targets must name at least one projection');
  for (const t of resolved.targets) {
    if (!LORA_TARGETS.includes(t)) problems.push(`unknown target ${JSON.stringify(t)}; expected one of ${LORA_TARGETS.join(', ')}`);
  }
  if (new Set(resolved.targets).size !== resolved.targets.length) problems.push(`targets repeat: ${resolved.targets.join(', ')}`);
  if (problems.length > 0) throw new Error(`invalid LoRA options: ${problems.join('; ')}`);
  return resolved;
}

/** One adapter pair on one projection. */
export class LoraAdapter {
  constructor(
    /** Weight name stem, e.g. `h.0.attn.lora_query`. */
    readonly name: string,
    /** [in, rank] */
    readonly a: tf.Variable,
    /** [rank, out] */
    readonly b: tf.Variable,
    readonly scale: number,
    readonly dropout: number,
  ) {}

  /** scale · dropout(x) A B: x [N, in] -> [N, out]. */
  delta(x: tf.Tensor2D, training: boolean, seed: number): tf.Tensor2D {
    const input = training && this.dropout > 0 ? (tf.dropout(x, this.dropout, undefined, seed) as tf.Tensor2D) : x;
    const low = matMul2d(input, this.a as tf.Tensor2D); // [N, rank]
    return matMul2d(low, this.b as tf.Tensor2D).mul(this.scale); // [N, out]
  }

  /** scale · A B as a Float32Array [in, out] (row-major). */
  update(): Float32Array {
    return tf.tidy(() => matMul2d(this.a as tf.Tensor2D, this.b as tf.Tensor2D).mul(this.scale).dataSync() as Float32Array);
  }

  dispose(): void {
    this.a.dispose();
    this.b.dispose();
  }
}
