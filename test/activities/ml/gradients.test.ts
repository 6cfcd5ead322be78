import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../../../activities/ml/losses';
import { Gpt, type NamedWeights } from '../../../activities/ml/model';
import { Rng } from '../../../activities/ml/rng';
import { randomRows, TINY, tokens, useWasm } from './helpers';

// Gradients of the whole model — custom matmul, LayerNorm, GELU, attention and cross-entropy
// backward passes, and the embedding gradient through the wasm UnsortedSegmentSum — against
// finite differences, and wasm against the stock cpu backend.

beforeAll(useWasm);

/** Weights far from init (std 0.3), so that GELU, softmax and LayerNorm are all in their nonlinear range. */
function scrambled(model: Gpt, seed: number): NamedWeights {
  const rng = Rng.fromSeed(seed, 'scramble');
  const out: NamedWeights = {};
  for (const [name, w] of Object.entries(model.getWeights())) {
    const base = name.endsWith('.gamma') ? 1 : 0;
    out[name] = { shape: w.shape, data: w.data.map(() => base + 0.3 * rng.normal()) };
  }
  return out;
}

interface Problem {
  loss: () => tf.Scalar;
  variables: tf.Variable[];
}

function lmProblem(model: Gpt, seed: number): Problem {
  const rows = randomRows(3, 9, TINY.vocabSize, seed);
  rows[1][2] = rows[0][2]; // repeated tokens: the embedding gradient must add, not overwrite
  const x = tf.keep(tokens(rows.map((r) => r.slice(0, 8))));
  const y = tf.keep(tf.tensor1d(rows.flatMap((r) => r.slice(1)), 'int32'));
  const w = tf.keep(tf.fill([24], 1 / 24) as tf.Tensor1D);
  return {
    loss: () => crossEntropy(model.forwardLm(x).reshape([24, TINY.vocabSize]), y, w),
    variables: model.trainableVariables('causal-lm'),
  };
}

function classifyProblem(model: Gpt, seed: number): Problem {
  const x = tf.keep(tokens(randomRows(3, 7, TINY.vocabSize, seed)));
  const labels = tf.keep(tf.tensor1d([0, 2, 1], 'int32'));
  const w = tf.keep(tf.fill([3], 1 / 3) as tf.Tensor1D);
  return {
    loss: () => crossEntropy(model.forwardClassify(x, [7, 3, 5]), labels, w),
    variables: model.trainableVariables('classify'),
  };
}

function analytic(p: Problem): Float32Array[] {
  return tf.tidy(() => {
    const { grads } = tf.variableGrads(p.loss, p.variables);
    return p.variables.map((v) => grads[v.name].dataSync() as Float32Array);
  });
}

function lossAt(p: Problem, direction: Float32Array[], eps: number): number {
  const saved = p.variables.map((v) => v.dataSync().slice() as Float32Array);
  p.variables.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(saved[i].map((x, j) => x + eps * direction[i][j]), v.shape))));
  const value = tf.tidy(() => p.loss().dataSync()[0]);
  p.variables.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(saved[i], v.shape))));
  return value;
}

/**
 * g·d against (L(θ + εd) − L(θ − εd)) / 2ε, for d = g/‖g‖ and two random unit directions; the
 * error is measured relative to ‖g‖ (a random direction's g·d can be near zero).
 */
function checkDirectional(p: Problem, seed: number): void {
  const grads = analytic(p);
  const gradNorm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  const rng = Rng.fromSeed(seed, 'direction');
  const directions = [
    grads.map((g) => g.slice()),
    ...[0, 1].map(() => p.variables.map((v) => Float32Array.from({ length: v.size }, () => rng.normal()))),
  ];
  for (const direction of directions) {
    const norm = Math.sqrt(direction.reduce((s, d) => s + d.reduce((a, x) => a + x * x, 0), 0));
    direction.forEach((d) => d.forEach((x, j) => (d[j] = x / norm)));
    const expected = grads.reduce((s, g, i) => s + g.reduce((a, x, j) => a + x * direction[i][j], 0), 0);
    // ε = 1e-2 balances truncation (~ε²·L''') against float32 round-off (~1e-7·L/ε); measured
    // errors are ≤ 7e-4·‖g‖ on these problems.
    const eps = 1e-2;
    const numeric = (lossAt(p, direction, eps) - lossAt(p, direction, -eps)) / (2 * eps);
    expect(Math.abs(numeric - expected) / gradNorm).toBeLessThan(2e-3);
  }
}

describe('gradients', () => {
  let model: Gpt;
  beforeAll(() => {
    model = new Gpt({ ...TINY, numClasses: 3 }, { seed: 3 });
    model.setWeights(scrambled(model, 1));
  });
  afterAll(() => model.dispose());

  it('match central finite differences along random directions (causal LM)', () => {
    checkDirectional(lmProblem(model, 10), 11);
  });

  it('match central finite differences along random directions (classification, pooled)', () => {
    checkDirectional(classifyProblem(model, 12), 13);
  });

  it('match finite differences coordinate-wise on the largest entries of each kind of weight', () => {
    const p = lmProblem(model, 14);
    const grads = analytic(p);
    const names = model.trainableNames('causal-lm');
    for (const name of ['wte', 'wpe', 'h.0.attn.c_attn.weight', 'h.1.mlp.c_fc.bias', 'h.0.ln_2.gamma', 'ln_f.beta']) {
      const i = names.indexOf(name);
      const g = grads[i];
      const j = g.reduce((best, x, k) => (Math.abs(x) > Math.abs(g[best]) ? k : best), 0);
      const direction = p.variables.map((v, k) => {
        const d = new Float32Array(v.size);
        if (k === i) d[j] = 1;
        return d;
      });
      const eps = 1e-2;
      const numeric = (lossAt(p, direction, eps) - lossAt(p, direction, -eps)) / (2 * eps);
      expect({ name, relativeError: Math.abs(numeric - g[j]) / Math.abs(g[j]) < 2e-2 }).toEqual({ name, relativeError: true });
    }
  });

  it('on wasm equal the stock cpu backend within 1e-4, embedding gradient included', async () => {
    const p = lmProblem(model, 15);
    const onWasm = analytic(p);
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // tfjs's "install tfjs-node" banner
    try {
      await tf.setBackend('cpu');
      const onCpu = analytic(p);
      const names = model.trainableNames('causal-lm');
      onWasm.forEach((g, i) => {
        const diff = g.reduce((m, x, j) => Math.max(m, Math.abs(x - onCpu[i][j])), 0);
        expect({ name: names[i], diff: diff < 1e-4 }).toEqual({ name: names[i], diff: true });
      });
      expect(onWasm[names.indexOf('wte')].some((x) => x !== 0)).toBe(true);
    } finally {
      await tf.setBackend('wasm');
      warn.mockRestore();
    }
  });
});
