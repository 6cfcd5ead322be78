import * as tf from '@tensorflow/tfjs';
import { InvalidModelConfigError, WeightsMismatchError } from '../../../activities/ml/errors';
import { Gpt, resolveModelConfig } from '../../../activities/ml/model';
import { randomRows, TINY, tokens, useWasm } from './helpers';

describe('Gpt', () => {
  let model: Gpt;
  beforeAll(async () => {
    await useWasm();
    model = new Gpt({ ...TINY, numClasses: 3 }, { seed: 7 });
  });
  afterAll(() => model.dispose());

  it('maps tokens [B, T] to LM logits [B, T, V] and class logits [B, K]', () => {
    tf.tidy(() => {
      const x = tokens(randomRows(3, 10, TINY.vocabSize, 1));
      expect(model.forwardLm(x).shape).toEqual([3, 10, TINY.vocabSize]);
      expect(model.forwardClassify(x, [10, 4, 1]).shape).toEqual([3, 3]);
    });
  });

  it('is causal: changing a token changes no logits at earlier positions', () => {
    const rows = randomRows(2, 12, TINY.vocabSize, 2);
    const changed = rows.map((r) => [...r]);
    changed[0][7] = (changed[0][7] + 5) % TINY.vocabSize;
    const [a, b] = tf.tidy(() => [model.forwardLm(tokens(rows)).arraySync(), model.forwardLm(tokens(changed)).arraySync()]);
    for (let t = 0; t < 7; t++) expect(b[0][t]).toEqual(a[0][t]);
    expect(Math.max(...b[0][7].map((v, i) => Math.abs(v - a[0][7][i])))).toBeGreaterThan(1e-4);
    expect(b[1]).toEqual(a[1]);
  });

  it('classifies from the real positions only: pad tokens after the length change nothing', () => {
    const rows = randomRows(2, 8, TINY.vocabSize, 3);
    const repadded = rows.map((r) => r.map((v, t) => (t >= 5 ? (v + 3) % TINY.vocabSize : v)));
    const [a, b] = tf.tidy(() => [
      model.forwardClassify(tokens(rows), [5, 5]).arraySync(),
      model.forwardClassify(tokens(repadded), [5, 5]).arraySync(),
    ]);
    expect(b).toEqual(a);
  });

  it('counts parameters: embeddings + 12C²+13C per block + final LayerNorm + head', () => {
    const { vocabSize: V, context: P, dModel: C, layers: L } = TINY;
    expect(model.parameterCount()).toBe(V * C + P * C + L * (12 * C * C + 13 * C) + 2 * C + (C * 3 + 3));
  });

  it('lists trainable variables in a fixed order, without the classification head for causal-lm', () => {
    const lm = model.trainableNames('causal-lm');
    expect(lm.slice(0, 3)).toEqual(['wte', 'wpe', 'h.0.ln_1.gamma']);
    expect(lm).not.toContain('cls.weight');
    expect(model.trainableNames('classify')).toEqual([...lm, 'cls.weight', 'cls.bias']);
    expect(model.trainableVariables('classify').map((v) => v.name)).toEqual(
      model.trainableNames('classify').map((n) => `${model.name}/${n}`),
    );
  });

  it('initializes deterministically from the seed, with per-instance variable names', () => {
    const same = new Gpt({ ...TINY, numClasses: 3 }, { seed: 7 });
    const other = new Gpt({ ...TINY, numClasses: 3 }, { seed: 8 });
    try {
      expect(same.name).not.toBe(model.name);
      expect(same.getWeights()).toEqual(model.getWeights());
      expect(other.getWeights()['h.0.attn.c_attn.weight']).not.toEqual(model.getWeights()['h.0.attn.c_attn.weight']);
      // Adding a head does not move the other weights.
      const headless = new Gpt(TINY, { seed: 7 });
      expect(headless.getWeights().wte).toEqual(model.getWeights().wte);
      headless.dispose();
    } finally {
      same.dispose();
      other.dispose();
    }
  });

  it('round-trips weights and rejects unknown names or wrong shapes before changing anything', () => {
    const copy = new Gpt({ ...TINY, numClasses: 3 }, { seed: 99 });
    try {
      copy.setWeights(model.getWeights());
      expect(copy.getWeights()).toEqual(model.getWeights());
      const before = copy.getWeights().wte.data;
      expect(() =>
        copy.setWeights({ wte: { shape: [1, 1], data: new Float32Array(1) }, nope: { shape: [1], data: new Float32Array(1) } }),
      ).toThrow(WeightsMismatchError);
      expect(copy.getWeights().wte.data).toEqual(before);
    } finally {
      copy.dispose();
    }
  });

  it('releases every tensor on dispose', () => {
    const before = tf.memory().numTensors;
    const m = new Gpt(TINY, { seed: 1 });
    tf.tidy(() => {
      m.forwardLm(tokens(randomRows(1, 4, TINY.vocabSize, 1)));
    });
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('resolveModelConfig', () => {
  it('fills defaults and reports every problem at once', () => {
    expect(resolveModelConfig(TINY)).toMatchObject({ mlpRatio: 4, dropout: 0, padId: 0 });
    try {
      resolveModelConfig({ vocabSize: 10, context: 0, layers: 1, dModel: 10, heads: 3, padId: 10 });
      throw new Error('expected a throw');
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidModelConfigError);
      expect((error as InvalidModelConfigError).problems).toHaveLength(3);
    }
  });
});
