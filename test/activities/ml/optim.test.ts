import * as tf from '@tensorflow/tfjs';
import { AdamW, clipByGlobalNorm, learningRateAt } from '../../../activities/ml/optim';
import { useWasm } from './helpers';

beforeAll(useWasm);

/** AdamW in float64, straight from the formulas. */
function reference(w: number[], grads: number[][], lr: number, wd: number, decay: boolean, b1 = 0.9, b2 = 0.95, eps = 1e-8): number[] {
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  let x = [...w];
  grads.forEach((g, step) => {
    const t = step + 1;
    x = x.map((xi, i) => {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mhat = m[i] / (1 - b1 ** t);
      const vhat = v[i] / (1 - b2 ** t);
      return (decay ? xi * (1 - lr * wd) : xi) - (lr * mhat) / (Math.sqrt(vhat) + eps);
    });
  });
  return x;
}

describe('AdamW', () => {
  it('takes the hand-computed first step: w·(1 − lr·wd) − lr·sign(g), decay on 2-D weights only', () => {
    const w = tf.variable(tf.tensor2d([[1, -2], [0.5, 3]]));
    const b = tf.variable(tf.tensor1d([0.1, -0.1]));
    const opt = new AdamW([w, b], ['w', 'b'], { weightDecay: 0.5 });
    opt.apply([tf.tensor2d([[0.2, -0.4], [1e-3, 5]]), tf.tensor1d([-0.3, 0.3])], 0.1);
    // Step 1: m̂ = g and v̂ = g², so the Adam update is lr·g/(|g| + ε) ≈ lr·sign(g).
    const decay = 1 - 0.1 * 0.5;
    const step = (g: number) => (0.1 * g) / (Math.abs(g) + 1e-8);
    const expectedW = [1 * decay - step(0.2), -2 * decay - step(-0.4), 0.5 * decay - step(1e-3), 3 * decay - step(5)];
    (w.dataSync() as Float32Array).forEach((x, i) => expect(x).toBeCloseTo(expectedW[i], 6));
    expect(Array.from(b.dataSync())).toEqual([expect.closeTo(0.2, 6), expect.closeTo(-0.2, 6)]);
    expect(opt.step).toBe(1);
    opt.dispose();
    tf.dispose([w, b]);
  });

  // wasm runs the fused one-pass kernel; other backends (here cpu) the elementwise ops.
  it.each(['wasm', 'cpu'])('matches a float64 reference over several steps with bias correction (%s)', async (backend) => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // the cpu backend's banner
    await tf.setBackend(backend);
    try {
      const w0 = [0.3, -0.7, 1.1, 0.05];
      const grads = [
        [0.1, -0.2, 0.3, 0.01],
        [-0.05, 0.4, 0.1, 0.02],
        [0.2, 0.2, -0.3, -0.01],
      ];
      const w = tf.variable(tf.tensor2d(w0, [2, 2]));
      const b = tf.variable(tf.tensor1d(w0));
      const opt = new AdamW([w, b], ['w', 'b'], { weightDecay: 0.1, beta1: 0.8, beta2: 0.9 });
      for (const g of grads) tf.tidy(() => opt.apply([tf.tensor2d(g, [2, 2]), tf.tensor1d(g)], 0.05));
      const decayed = reference(w0, grads, 0.05, 0.1, true, 0.8, 0.9);
      const plain = reference(w0, grads, 0.05, 0.1, false, 0.8, 0.9);
      (w.dataSync() as Float32Array).forEach((x, i) => expect(x).toBeCloseTo(decayed[i], 6));
      (b.dataSync() as Float32Array).forEach((x, i) => expect(x).toBeCloseTo(plain[i], 6));
      opt.dispose();
      tf.dispose([w, b]);
    } finally {
      await tf.setBackend('wasm');
      warn.mockRestore();
    }
  });

  it('exports and imports its state: a fresh optimizer continues exactly', () => {
    const make = () => tf.variable(tf.tensor2d([0.3, -0.7, 1.1, 0.05], [2, 2]));
    const g = (k: number) => tf.tensor2d([0.1 * k, -0.2, 0.3, 0.01 * k], [2, 2]);
    const a = make();
    const optA = new AdamW([a], ['w']);
    [1, 2, 3].forEach((k) => tf.tidy(() => optA.apply([g(k)], 0.01)));

    const b = make();
    const optB = new AdamW([b], ['w']);
    tf.tidy(() => optB.apply([g(1)], 0.01));
    const state = optB.exportState();
    const c = tf.variable(b.clone());
    const optC = new AdamW([c], ['w']);
    optC.importState(state);
    [2, 3].forEach((k) => tf.tidy(() => optC.apply([g(k)], 0.01)));

    expect(Array.from(c.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(() => optC.importState({ ...state, names: ['other'] })).toThrow(/other/);
    [optA, optB, optC].forEach((o) => o.dispose());
    tf.dispose([a, b, c]);
  });
});

describe('learningRateAt', () => {
  const schedule = { lr: 1, warmupSteps: 10, totalSteps: 111, minLrRatio: 0.1 };
  it('warms up linearly, peaks, and decays by a cosine to lr·minLrRatio at the last step', () => {
    expect(learningRateAt(0, schedule)).toBeCloseTo(0.1);
    expect(learningRateAt(4, schedule)).toBeCloseTo(0.5);
    expect(learningRateAt(9, schedule)).toBeCloseTo(1); // last warmup step reaches the peak
    expect(learningRateAt(10, schedule)).toBeCloseTo(1);
    expect(learningRateAt(60, schedule)).toBeCloseTo(0.55); // halfway through the decay
    expect(learningRateAt(110, schedule)).toBeCloseTo(0.1);
  });
  it('without warmup starts at the peak', () => {
    expect(learningRateAt(0, { ...schedule, warmupSteps: 0 })).toBeCloseTo(1);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales all gradients by maxNorm / norm when the global norm exceeds it', () => {
    const grads = [tf.tensor1d([3, 4]), tf.tensor2d([[12]])];
    const clipped = clipByGlobalNorm(grads, 6.5);
    expect(clipped.norm).toBeCloseTo(13, 5);
    expect(Array.from(clipped.grads[0].dataSync())).toEqual([expect.closeTo(1.5, 5), expect.closeTo(2, 5)]);
    expect(clipped.grads[1].dataSync()[0]).toBeCloseTo(6, 5);
    const loose = clipByGlobalNorm(grads, 20);
    expect(Array.from(loose.grads[0].dataSync())).toEqual([3, 4]);
    const off = clipByGlobalNorm(grads, 0);
    expect(off.grads[1].dataSync()[0]).toBe(12);
    tf.dispose([...grads, ...clipped.grads, ...loose.grads, ...off.grads]);
  });
});
