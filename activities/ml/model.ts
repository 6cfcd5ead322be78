import * as tf from '@tensorflow/tfjs';
import { InvalidModelConfigError, WeightsMismatchError } from './errors';
import { LoraAdapter, resolveLoraOptions, type LoraOptions, type LoraTarget } from './lora';
import { batchMatMul, matMul2d, matMulTransposeB, sumRows } from './matmul';
import { deriveSeed, Rng } from './rng';
import { MODEL_DEFAULTS } from '../../pipelines/trainer-defaults';

// A GPT-2-style decoder-only transformer in the shape of nanoGPT's model.py: token + learned
// position embeddings, pre-LN blocks (causal multi-head self-attention, GELU MLP), a final
// LayerNorm, and two heads:
//   - causal LM: logits = h · wteᵀ, tied to the token embedding table (GPT-2's choice; it saves
//     vocab·dModel parameters, a quarter of a small model);
//   - classification: the mean of the final hidden states over the non-pad positions, then a
//     linear layer. Mean pooling sends every position's gradient to the classifier; the
//     last-token alternative (GPT-2's sequence classifier) hangs the whole decision on one
//     position, which a small model trained briefly (or frozen under LoRA) learns more slowly.
//
// Padding: batches are padded with `padId` (default 0), and what is padding is known from each
// sequence's length, never from the token value — so id 0 may also be a real token. Causal
// attention keeps pad positions (which come last) from affecting real ones; losses and pooling
// mask them out.
//
// Activations are kept 2-D, [B*T, C], so every projection is one plain 2-D matmul (see matmul.ts).
// Weight layout is [in, out]; names follow GPT-2's (`h.0.attn.c_attn.weight`, ...).

/** Shape of the model. */
export interface ModelConfig {
  /** Token ids are in [0, vocabSize); also the LM head's width. */
  vocabSize: number;
  /** Longest sequence, in tokens (rows of the position table). */
  context: number;
  /** Transformer blocks. */
  layers: number;
  /** Width of the residual stream; divisible by `heads`. */
  dModel: number;
  /** Attention heads; each has dModel / heads dimensions. */
  heads: number;
  /** MLP hidden width as a multiple of dModel. Default 4. */
  mlpRatio?: number;
  /** Dropout probability on embeddings, attention weights and residual branches, in training only. Default 0. */
  dropout?: number;
  /** Classes of the classification head; without it the model has no head and cannot classify. */
  numClasses?: number;
  /** Token id that fills padding positions. Default 0. */
  padId?: number;
}

/** A ModelConfig with every default filled in. */
export type ResolvedModelConfig = Required<Omit<ModelConfig, 'numClasses'>> & { numClasses?: number };

/** Fills in defaults and validates; throws InvalidModelConfigError listing every problem. */
export function resolveModelConfig(config: ModelConfig): ResolvedModelConfig {
  const c: ResolvedModelConfig = { mlpRatio: MODEL_DEFAULTS.mlpRatio, dropout: MODEL_DEFAULTS.dropout, padId: MODEL_DEFAULTS.padId, ...config };
  const problems: string[] = [];
  const positiveInt = (key: keyof ResolvedModelConfig) => {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) problems.push(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  for (const key of ['vocabSize', 'context', 'layers', 'dModel', 'heads', 'mlpRatio'] as const) positiveInt(key);
  if (c.numClasses !== undefined) {
    if (!Number.isInteger(c.numClasses) || c.numClasses < 2) problems.push(`numClasses must be an integer >= 2, got ${c.numClasses}`);
  }
  if (c.dModel % c.heads !== 0) problems.push(`dModel (${c.dModel}) must be divisible by heads (${c.heads})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${c.dropout}`);
  if (!Number.isInteger(c.padId) || c.padId < 0 || c.padId >= c.vocabSize) {
    problems.push(`padId must be a token id in [0, ${c.vocabSize}), got ${c.padId}`);
  }
  if (problems.length > 0) throw new InvalidModelConfigError(problems);
  return c;
}

/** How a forward pass runs. */
export interface ForwardOptions {
  /** Apply dropout. Default false. */
  training?: boolean;
  /** Seed of this pass's dropout masks (each dropout site derives its own). Default 0. */
  seed?: number;
}

/** One tensor's values, row-major. */
export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

/** Weights by name (`wte`, `h.0.attn.c_attn.weight`, ...). */
export type NamedWeights = Record<string, WeightTensor>;

/** Which loss the trainable set serves: the classification head trains only under `classify`. */
export type Objective = 'causal-lm' | 'classify';

/** Per-pass state threaded through the blocks. */
interface Pass {
  batch: number;
  time: number;
  training: boolean;
  seed: number;
}

/** LayerNorm's epsilon (GPT-2's `layer_norm_epsilon`). */
export const LN_EPS = 1e-5;

const layerNormImpl = tf.customGrad((xIn, gammaIn, betaIn, save) => {
  const [x, gamma, beta] = [xIn as tf.Tensor2D, gammaIn as tf.Tensor1D, betaIn as tf.Tensor1D];
  const mean = x.mean(-1, true); // [N, 1]
  const centered = x.sub(mean); // [N, C]
  const rstd = centered.square().mean(-1, true).add(LN_EPS).rsqrt(); // [N, 1]
  const xhat = centered.mul(rstd); // [N, C]
  (save as tf.GradSaveFunc)([xhat, rstd, gamma]);
  return {
    value: xhat.mul(gamma).add(beta),
    // The closed form needs 8 elementwise ops where autodiff of the forward takes ~20.
    gradFunc: (dyIn, saved) => {
      const [sxhat, srstd, sgamma] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
      const dy = dyIn as tf.Tensor2D;
      const g = dy.mul(sgamma); // [N, C]
      const dx = g
        .sub(g.mean(-1, true))
        .sub(sxhat.mul(g.mul(sxhat).mean(-1, true)))
        .mul(srstd);
      return [dx, sumRows(dy.mul(sxhat) as tf.Tensor2D), sumRows(dy)];
    },
  };
});

// GELU, tanh form: x · ½(1 + tanh(u)) = x · σ(2u), u = √(2/π)(x + 0.044715x³). σ runs in XNNPACK;
// wasm's tanh is ~4× slower.
const GELU_K = 2 * Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const geluImpl = tf.customGrad((xIn, save) => {
  const x = xIn as tf.Tensor2D;
  const s = x.square().mul(GELU_K * GELU_C).add(GELU_K).mul(x).sigmoid(); // σ(2u)
  (save as tf.GradSaveFunc)([x, s]);
  return {
    value: x.mul(s),
    gradFunc: (dy, saved) => {
      const [sx, ss] = saved as [tf.Tensor2D, tf.Tensor2D];
      const du = sx.square().mul(3 * GELU_K * GELU_C).add(GELU_K); // d(2u)/dx
      return dy.mul(ss.add(sx.mul(du).mul(ss).mul(tf.scalar(1).sub(ss))));
    },
  };
});

/** LayerNorm over the last axis: x [N, C], gamma/beta [C] (closed-form backward). */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor2D {
  return layerNormImpl(x, gamma, beta) as tf.Tensor2D;
}

/** GELU (tanh approximation) via the sigmoid, with a closed-form backward. */
export function gelu(x: tf.Tensor2D): tf.Tensor2D {
  return geluImpl(x) as tf.Tensor2D;
}

function dropout(x: tf.Tensor2D, rate: number, pass: Pass, site: string): tf.Tensor2D {
  if (!pass.training || rate === 0) return x;
  return tf.dropout(x, rate, undefined, deriveSeed(pass.seed, site)) as tf.Tensor2D;
}

/** A 2-D projection y = x W + b with [in, out] weights. */
class Linear {
  constructor(
    readonly weight: tf.Variable,
    readonly bias: tf.Variable,
  ) {}

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return matMul2d(x, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D);
  }
}

class LayerNorm {
  constructor(
    readonly gamma: tf.Variable,
    readonly beta: tf.Variable,
  ) {}

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D);
  }
}

/** Creates the model's variables: seeded per name, so adding a head or adapters leaves the others unchanged. */
class ParameterFactory {
  readonly variables = new Map<string, tf.Variable>();

  constructor(
    private readonly prefix: string,
    private readonly seed: number,
  ) {}

  create(name: string, shape: number[], init: (rng: Rng) => number): tf.Variable {
    if (this.variables.has(name)) throw new Error(`parameter ${name} created twice`);
    const rng = Rng.fromSeed(this.seed, name);
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = init(rng);
    // tidy disposes the initial tensor; variables survive it.
    const v = tf.tidy(() => tf.variable(tf.tensor(values, shape), true, `${this.prefix}/${name}`));
    this.variables.set(name, v);
    return v;
  }

  normal(name: string, shape: number[], std: number): tf.Variable {
    return this.create(name, shape, (rng) => std * rng.normal());
  }

  constant(name: string, shape: number[], value: number): tf.Variable {
    return this.create(name, shape, () => value);
  }

  linear(name: string, inDim: number, outDim: number, std: number): Linear {
    return new Linear(this.normal(`${name}.weight`, [inDim, outDim], std), this.constant(`${name}.bias`, [outDim], 0));
  }

  layerNorm(name: string, dim: number): LayerNorm {
    return new LayerNorm(this.constant(`${name}.gamma`, [dim], 1), this.constant(`${name}.beta`, [dim], 0));
  }
}

/** Adapters of one block by target. */
type BlockAdapters = Partial<Record<LoraTarget, LoraAdapter>>;

class CausalSelfAttention {
  readonly cAttn: Linear;
  readonly cProj: Linear;
  private readonly headDim: number;

  constructor(
    params: ParameterFactory,
    readonly name: string,
    private readonly config: ResolvedModelConfig,
  ) {
    const { dModel, layers } = config;
    this.cAttn = params.linear(`${name}.c_attn`, dModel, 3 * dModel, 0.02);
    // GPT-2: residual projections scaled by 1/√(2·layers) so the residual stream's variance stays put.
    this.cProj = params.linear(`${name}.c_proj`, dModel, dModel, 0.02 / Math.sqrt(2 * layers));
    this.headDim = dModel / config.heads;
  }

  apply(x: tf.Tensor2D, mask: tf.Tensor2D, pass: Pass, lora: BlockAdapters): tf.Tensor2D {
    const { batch: B, time: T } = pass;
    const { heads: H, dModel: C, dropout: p } = this.config;
    const hd = this.headDim;
    const loraSeed = (t: string) => deriveSeed(pass.seed, `${this.name}.lora_${t}`);
    let [q, k, v] = tf.split(this.cAttn.apply(x), 3, 1) as tf.Tensor2D[]; // 3 × [B*T, C]
    if (lora.query) q = q.add(lora.query.delta(x, pass.training, loraSeed('query')));
    if (lora.key) k = k.add(lora.key.delta(x, pass.training, loraSeed('key')));
    if (lora.value) v = v.add(lora.value.delta(x, pass.training, loraSeed('value')));

    const qh = q.mul(1 / Math.sqrt(hd)).reshape([B, T, H, hd]).transpose([0, 2, 1, 3]).reshape([B * H, T, hd]) as tf.Tensor3D;
    const khT = k.reshape([B, T, H, hd]).transpose([0, 2, 3, 1]).reshape([B * H, hd, T]) as tf.Tensor3D;
    const vh = v.reshape([B, T, H, hd]).transpose([0, 2, 1, 3]).reshape([B * H, T, hd]) as tf.Tensor3D;

    const scores = batchMatMul(qh, khT).add(mask); // [B*H, T, T]; mask is 0 on/below the diagonal, -1e9 above
    let att = tf.softmax(scores).reshape([B * H * T, T]) as tf.Tensor2D; // [B*H*T, T]
    att = dropout(att, p, pass, `${this.name}.attn_drop`);
    const y = batchMatMul(att.reshape([B * H, T, T]) as tf.Tensor3D, vh); // [B*H, T, hd]
    const merged = y.reshape([B, H, T, hd]).transpose([0, 2, 1, 3]).reshape([B * T, C]) as tf.Tensor2D; // [B*T, C]

    let out = this.cProj.apply(merged); // [B*T, C]
    if (lora.output) out = out.add(lora.output.delta(merged, pass.training, loraSeed('output')));
    return dropout(out, p, pass, `${this.name}.resid_drop`);
  }
}

class Mlp {
  readonly cFc: Linear;
  readonly cProj: Linear;

  constructor(
    params: ParameterFactory,
    readonly name: string,
    private readonly config: ResolvedModelConfig,
  ) {
    const { dModel, mlpRatio, layers } = config;
    this.cFc = params.linear(`${name}.c_fc`, dModel, mlpRatio * dModel, 0.02);
    this.cProj = params.linear(`${name}.c_proj`, mlpRatio * dModel, dModel, 0.02 / Math.sqrt(2 * layers));
  }

  apply(x: tf.Tensor2D, pass: Pass, lora: BlockAdapters): tf.Tensor2D {
    const loraSeed = (t: string) => deriveSeed(pass.seed, `${this.name}.lora_${t}`);
    let h = this.cFc.apply(x); // [B*T, 4C]
    if (lora.mlpIn) h = h.add(lora.mlpIn.delta(x, pass.training, loraSeed('mlpIn')));
    h = gelu(h);
    let out = this.cProj.apply(h); // [B*T, C]
    if (lora.mlpOut) out = out.add(lora.mlpOut.delta(h, pass.training, loraSeed('mlpOut')));
    return dropout(out, this.config.dropout, pass, `${this.name}.drop`);
  }
}

class Block {
  readonly ln1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: Mlp;
  /** LoRA adapters of this block, once applied. */
  lora: BlockAdapters = {};

  constructor(params: ParameterFactory, readonly name: string, config: ResolvedModelConfig) {
    this.ln1 = params.layerNorm(`${name}.ln_1`, config.dModel);
    this.attn = new CausalSelfAttention(params, `${name}.attn`, config);
    this.ln2 = params.layerNorm(`${name}.ln_2`, config.dModel);
    this.mlp = new Mlp(params, `${name}.mlp`, config);
  }

  apply(x: tf.Tensor2D, mask: tf.Tensor2D, pass: Pass): tf.Tensor2D {
    const a = x.add(this.attn.apply(this.ln1.apply(x), mask, pass, this.lora)) as tf.Tensor2D; // [B*T, C]
    return a.add(this.mlp.apply(this.ln2.apply(a), pass, this.lora)) as tf.Tensor2D;
  }

  /** The frozen projection an adapter target sits on, and the column range it updates. */
  projection(target: LoraTarget, dModel: number): { linear: Linear; column: number } {
    switch (target) {
      case 'query':
        return { linear: this.attn.cAttn, column: 0 };
      case 'key':
        return { linear: this.attn.cAttn, column: dModel };
      case 'value':
        return { linear: this.attn.cAttn, column: 2 * dModel };
      case 'output':
        return { linear: this.attn.cProj, column: 0 };
      case 'mlpIn':
        return { linear: this.mlp.cFc, column: 0 };
      case 'mlpOut':
        return { linear: this.mlp.cProj, column: 0 };
    }
  }
}

export interface GptOptions {
  /** Seed of the initial weights. Default 0. */
  seed?: number;
  /** Prefix of the tfjs variable names, which are global per process. Default: `gpt<n>`, unique. */
  name?: string;
}

let instances = 0;

/** The decoder-only transformer. Dispose it when done: its variables live outside the JS heap. */
export class Gpt {
  readonly config: ResolvedModelConfig;
  /** Prefix of this instance's tfjs variable names. */
  readonly name: string;
  readonly seed: number;
  private readonly params: ParameterFactory;
  private readonly wte: tf.Variable;
  private readonly wpe: tf.Variable;
  private readonly blocks: Block[];
  private readonly lnF: LayerNorm;
  private readonly cls?: Linear;
  private loraOptions?: LoraOptions;
  private causalMask?: tf.Tensor2D;

  constructor(config: ModelConfig, options: GptOptions = {}) {
    this.config = resolveModelConfig(config);
    this.seed = options.seed ?? 0;
    this.name = options.name ?? `gpt${++instances}_${Date.now().toString(36)}`;
    const { vocabSize, context, dModel, layers, numClasses } = this.config;
    const params = new ParameterFactory(this.name, this.seed);
    this.params = params;
    this.wte = params.normal('wte', [vocabSize, dModel], 0.02);
    this.wpe = params.normal('wpe', [context, dModel], 0.02);
    this.blocks = Array.from({ length: layers }, (_, i) => new Block(params, `h.${i}`, this.config));
    this.lnF = params.layerNorm('ln_f', dModel);
    if (numClasses !== undefined) this.cls = params.linear('cls', dModel, numClasses, 0.02);
  }

  /** Final hidden states after ln_f: tokens [B, T] -> [B*T, C]. */
  hidden(tokens: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
    const [B, T] = tokens.shape;
    const { context, dropout: p } = this.config;
    if (T > context) throw new Error(`sequence length ${T} exceeds the model's context ${context}`);
    if (tokens.dtype !== 'int32') throw new Error(`tokens must be int32, got ${tokens.dtype}`);
    const pass: Pass = { batch: B, time: T, training: options.training ?? false, seed: options.seed ?? 0 };
    const mask = T === context ? this.mask() : (this.mask().slice([0, 0], [T, T]) as tf.Tensor2D);
    const positions = tf.tile(tf.range(0, T, 1, 'int32'), [B]); // [B*T]
    let x = tf.gather(this.wte, tokens.reshape([B * T])).add(tf.gather(this.wpe, positions)) as tf.Tensor2D; // [B*T, C]
    x = dropout(x, p, pass, 'drop');
    for (const block of this.blocks) x = block.apply(x, mask, pass);
    return this.lnF.apply(x); // [B*T, C]
  }

  /** Next-token logits: tokens [B, T] -> [B, T, V]. */
  forwardLm(tokens: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    const [B, T] = tokens.shape;
    const h = this.hidden(tokens, options); // [B*T, C]
    return matMulTransposeB(h, this.wte as tf.Tensor2D).reshape([B, T, this.config.vocabSize]); // [B, T, V]
  }

  /**
   * Class logits: tokens [B, T] (padded after each sequence's end) and each sequence's length
   * (1..T) -> [B, numClasses]. Pools the mean hidden state over positions < length.
   */
  forwardClassify(tokens: tf.Tensor2D, lengths: ArrayLike<number>, options: ForwardOptions = {}): tf.Tensor2D {
    if (!this.cls) throw new Error('this model has no classification head; create it with numClasses');
    const [B, T] = tokens.shape;
    if (lengths.length !== B) throw new Error(`expected ${B} lengths, got ${lengths.length}`);
    const h = this.hidden(tokens, options); // [B*T, C]
    const C = this.config.dModel;
    const pool = new Float32Array(B * T); // [B, 1, T]: row b averages sequence b's real positions
    for (let b = 0; b < B; b++) {
      const n = lengths[b];
      if (!Number.isInteger(n) || n < 1 || n > T) throw new Error(`length of sequence ${b} must be in [1, ${T}], got ${n}`);
      for (let t = 0; t < n; t++) pool[b * T + t] = 1 / n;
    }
    const pooled = batchMatMul(tf.tensor3d(pool, [B, 1, T]), h.reshape([B, T, C])).reshape([B, C]) as tf.Tensor2D; // [B, C]
    return this.cls.apply(pooled); // [B, K]
  }

  /** The additive causal mask [context, context], built once and kept across tidy scopes. */
  private mask(): tf.Tensor2D {
    if (!this.causalMask) {
      const n = this.config.context;
      const values = new Float32Array(n * n);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) values[i * n + j] = -1e9;
      this.causalMask = tf.keep(tf.tensor2d(values, [n, n]));
    }
    return this.causalMask;
  }

  // ---- parameters ------------------------------------------------------------------------

  /** Every variable in a fixed order (creation order: embeddings, blocks, ln_f, head, adapters). */
  namedVariables(): Array<[string, tf.Variable]> {
    return [...this.params.variables.entries()];
  }

  /**
   * The variables a training objective updates, in a fixed order. Without LoRA: every weight,
   * except the classification head under `causal-lm`. With LoRA: the adapters, plus the
   * classification head under `classify` (a new head must train; the body stays frozen).
   */
  trainableVariables(objective: Objective = 'causal-lm'): tf.Variable[] {
    return this.trainableNames(objective).map((name) => this.params.variables.get(name)!);
  }

  /** Names of `trainableVariables(objective)`, same order. */
  trainableNames(objective: Objective = 'causal-lm'): string[] {
    if (objective === 'classify' && !this.cls) throw new Error('objective classify needs a model with numClasses');
    const isHead = (name: string) => name.startsWith('cls.');
    const isAdapter = (name: string) => name.includes('.lora_');
    return [...this.params.variables.keys()].filter((name) => {
      if (isHead(name)) return objective === 'classify';
      return this.loraOptions ? isAdapter(name) : true;
    });
  }

  /** Number of scalars in all variables (adapters and head included). */
  parameterCount(): number {
    return this.namedVariables().reduce((n, [, v]) => n + v.size, 0);
  }

  /** Trainable scalars under `objective` divided by all scalars. */
  trainableFraction(objective: Objective = 'causal-lm'): number {
    return this.trainableVariables(objective).reduce((n, v) => n + v.size, 0) / this.parameterCount();
  }

  /** Copies of every weight, by name. */
  getWeights(): NamedWeights {
    return this.readWeights(this.namedVariables().map(([name]) => name));
  }

  /** Copies of the named weights. */
  readWeights(names: string[]): NamedWeights {
    const out: NamedWeights = {};
    for (const name of names) {
      const v = this.params.variables.get(name);
      if (!v) throw new WeightsMismatchError([`no weight named ${JSON.stringify(name)}`]);
      out[name] = { shape: [...v.shape], data: (v.dataSync() as Float32Array).slice() };
    }
    return out;
  }

  /** Assigns the given weights (any subset of the model's); unknown names and wrong shapes throw before anything changes. */
  setWeights(weights: NamedWeights): void {
    const problems: string[] = [];
    for (const [name, w] of Object.entries(weights)) {
      const v = this.params.variables.get(name);
      if (!v) problems.push(`unknown weight ${JSON.stringify(name)}`);
      else if (v.shape.join(',') !== w.shape.join(',') || w.data.length !== v.size) {
        problems.push(`${name}: expected shape [${v.shape}], got [${w.shape}] with ${w.data.length} values`);
      }
    }
    if (problems.length > 0) throw new WeightsMismatchError(problems);
    for (const [name, w] of Object.entries(weights)) {
      const v = this.params.variables.get(name)!;
      tf.tidy(() => v.assign(tf.tensor(w.data, w.shape)));
    }
  }

  // ---- LoRA ------------------------------------------------------------------------------

  /** The LoRA options in effect, if adapters were applied (and not merged). */
  get lora(): LoraOptions | undefined {
    return this.loraOptions ? { ...this.loraOptions, targets: [...this.loraOptions.targets] } : undefined;
  }

  /**
   * Adds adapters to the target projections of every block and freezes the base weights. A is
   * uniform in ±1/√in (seeded, as PEFT's Kaiming init), B is zero: the model's outputs are unchanged.
   */
  applyLora(options: Partial<LoraOptions>): void {
    if (this.loraOptions) throw new Error('LoRA adapters are already applied; merge them first');
    const opts = resolveLoraOptions(options);
    const { dModel, mlpRatio } = this.config;
    const dims: Record<LoraTarget, [number, number]> = {
      query: [dModel, dModel],
      key: [dModel, dModel],
      value: [dModel, dModel],
      output: [dModel, dModel],
      mlpIn: [dModel, mlpRatio * dModel],
      mlpOut: [mlpRatio * dModel, dModel],
    };
    for (const [name, v] of this.params.variables) if (!name.startsWith('cls.')) v.trainable = false;
    for (const block of this.blocks) {
      for (const target of opts.targets) {
        const [inDim, outDim] = dims[target];
        const stem = `${block.name}.${target === 'mlpIn' || target === 'mlpOut' ? 'mlp' : 'attn'}.lora_${target}`;
        const bound = 1 / Math.sqrt(inDim);
        const a = this.params.create(`${stem}.A`, [inDim, opts.rank], (rng) => (2 * rng.next() - 1) * bound);
        const b = this.params.constant(`${stem}.B`, [opts.rank, outDim], 0);
        block.lora[target] = new LoraAdapter(stem, a, b, opts.alpha / opts.rank, opts.dropout);
      }
    }
    this.loraOptions = opts;
  }

  /** Copies of the adapter weights only. */
  loraWeights(): NamedWeights {
    return this.readWeights(this.namedVariables().map(([n]) => n).filter((n) => n.includes('.lora_')));
  }

  /** Assigns adapter weights (names as from `loraWeights`). */
  setLoraWeights(weights: NamedWeights): void {
    const notAdapters = Object.keys(weights).filter((n) => !n.includes('.lora_'));
    if (notAdapters.length > 0) throw new WeightsMismatchError(notAdapters.map((n) => `${n} is not an adapter weight`));
    this.setWeights(weights);
  }

  /** Folds every adapter into its projection (W += alpha/rank · A B), removes the adapters and unfreezes the model. */
  mergeLora(): void {
    if (!this.loraOptions) throw new Error('no LoRA adapters to merge');
    const { dModel } = this.config;
    for (const block of this.blocks) {
      for (const [target, adapter] of Object.entries(block.lora) as Array<[LoraTarget, LoraAdapter]>) {
        const { linear, column } = block.projection(target, dModel);
        const [rows, cols] = linear.weight.shape as [number, number];
        const merged = Float32Array.from(linear.weight.dataSync() as Float32Array);
        const update = adapter.update();
        const width = adapter.b.shape[1] as number;
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < width; c++) merged[r * cols + column + c] += update[r * width + c];
        }
        tf.tidy(() => linear.weight.assign(tf.tensor2d(merged, [rows, cols])));
        this.params.variables.delete(`${adapter.name}.A`);
        this.params.variables.delete(`${adapter.name}.B`);
        adapter.dispose();
      }
      block.lora = {};
    }
    for (const [, v] of this.params.variables) v.trainable = true;
    this.loraOptions = undefined;
  }

  dispose(): void {
    for (const [, v] of this.params.variables) v.dispose();
    this.params.variables.clear();
    this.causalMask?.dispose();
    this.causalMask = undefined;
  }
}
