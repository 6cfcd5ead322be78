import * as tf from '@tensorflow/tfjs';
import { ADAMW, hasTrainingKernel, type AdamWAttrs } from './kernels';
import { OPTIMIZER_DEFAULTS } from '../../pipelines/trainer-defaults';

// AdamW, the learning-rate schedule and global-norm clipping, none of which tfjs provides.

export interface AdamWOptions {
  /** Adam beta1. Default 0.9. */
  beta1?: number;
  /** Adam beta2. Default 0.95. */
  beta2?: number;
  /** Adam epsilon. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, applied to 2-D weights only (matrices and embedding tables; not biases or LayerNorm gains). Default 0.01. */
  weightDecay?: number;
}

/** Optimizer state as plain arrays: what a checkpoint stores. */
export interface OptimizerState {
  /** Updates applied so far (the `t` of bias correction). */
  step: number;
  /** Variable names (in the optimizer's fixed order) the moments belong to. */
  names: string[];
  /** First moments, one per variable, same order. */
  m: Float32Array[];
  /** Second moments. */
  v: Float32Array[];
}

/**
 * AdamW (Loshchilov & Hutter): for each variable, in a fixed order given at construction,
 *   w ← w·(1 − lr·wd)                      (2-D weights only)
 *   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
 *   w ← w − lr · m̂ / (√v̂ + ε),  m̂ = m / (1 − β1ᵗ),  v̂ = v / (1 − β2ᵗ)
 * Moments are keyed by position in that list, so the list must not change across steps.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private t = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];

  constructor(
    readonly variables: readonly tf.Variable[],
    /** Names of the variables, same order (used to check imported state). */
    readonly names: readonly string[],
    options: AdamWOptions = {},
  ) {
    if (names.length !== variables.length) throw new Error(`AdamW: ${variables.length} variables but ${names.length} names`);
    this.beta1 = options.beta1 ?? OPTIMIZER_DEFAULTS.beta1;
    this.beta2 = options.beta2 ?? OPTIMIZER_DEFAULTS.beta2;
    this.eps = options.eps ?? OPTIMIZER_DEFAULTS.eps;
    this.weightDecay = options.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay;
    this.m = variables.map((w) => tf.tidy(() => tf.variable(tf.zerosLike(w), false)));
    this.v = variables.map((w) => tf.tidy(() => tf.variable(tf.zerosLike(w), false)));
  }

  /** Updates applied so far. */
  get step(): number {
    return this.t;
  }

  /** Applies one update with gradients in the variables' order. */
  apply(grads: readonly tf.Tensor[], lr: number): void {
    if (grads.length !== this.variables.length) throw new Error(`AdamW: expected ${this.variables.length} gradients, got ${grads.length}`);
    this.t += 1;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd, t } = this;
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    const fused = hasTrainingKernel(ADAMW);
    tf.tidy(() => {
      this.variables.forEach((w, i) => {
        const g = grads[i];
        const decay = wd > 0 && w.rank === 2 ? 1 - lr * wd : 1;
        if (fused) {
          // One pass per variable on wasm (kernels.ts); the same arithmetic as below, in float64.
          const attrs: AdamWAttrs = { lr, beta1: b1, beta2: b2, eps, decay, c1, c2 };
          const inputs = { w, g, m: this.m[i], v: this.v[i] };
          const [nw, nm, nv] = tf.engine().runKernel(ADAMW, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
          w.assign(nw);
          this.m[i].assign(nm);
          this.v[i].assign(nv);
          return;
        }
        const m = this.m[i].mul(b1).add(g.mul(1 - b1));
        const v = this.v[i].mul(b2).add(g.square().mul(1 - b2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        // lr·m̂/(√v̂ + ε) with the bias corrections folded into scalars.
        const update = m.mul(lr / c1).div(v.div(c2).sqrt().add(eps));
        w.assign((decay === 1 ? w : w.mul(decay)).sub(update));
      });
    });
  }

  exportState(): OptimizerState {
    return {
      step: this.t,
      names: [...this.names],
      m: this.m.map((x) => (x.dataSync() as Float32Array).slice()),
      v: this.v.map((x) => (x.dataSync() as Float32Array).slice()),
    };
  }

  importState(state: OptimizerState): void {
    if (state.names.join('\n') !== this.names.join('\n')) {
      throw new Error(`optimizer state is for variables [${state.names.join(', ')}], not [${this.names.join(', ')}]`);
    }
    this.variables.forEach((w, i) => {
      if (state.m[i].length !== w.size || state.v[i].length !== w.size) {
        throw new Error(`optimizer state for ${this.names[i]} has ${state.m[i].length} values, expected ${w.size}`);
      }
      tf.tidy(() => {
        this.m[i].assign(tf.tensor(state.m[i], w.shape));
        this.v[i].assign(tf.tensor(state.v[i], w.shape));
      });
    });
    this.t = state.step;
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warmup from 0 to lr. */
  warmupSteps: number;
  /** Total optimizer steps; the cosine reaches its floor here. */
  totalSteps: number;
  /** Floor of the decay as a fraction of lr. */
  minLrRatio: number;
}

/**
 * Learning rate for the update that completes step `step + 1` (steps count from 0): linear warmup
 * lr·(step+1)/warmup over the first `warmupSteps` updates, then cosine decay from lr to
 * lr·minLrRatio at the last step (nanoGPT's schedule).
 */
export function learningRateAt(step: number, { lr, warmupSteps, totalSteps, minLrRatio }: ScheduleOptions): number {
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  const minLr = lr * minLrRatio;
  const decaySteps = totalSteps - 1 - warmupSteps;
  if (decaySteps <= 0) return lr;
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  return minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (lr - minLr);
}

/**
 * Scales gradients so their global L2 norm is at most `maxNorm` (no-op when it already is, or
 * when maxNorm ≤ 0). Returns new tensors (the caller disposes both sets) and the norm before clipping.
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const norm = tf.tidy(() => tf.addN(grads.map((g) => g.square().sum())).sqrt().dataSync()[0]);
  const scale = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { grads: grads.map((g) => (scale === 1 ? g.clone() : g.mul(scale))), norm };
}
