import * as tf from '@tensorflow/tfjs';
import { Gpt } from '../../../activities/ml/model';
import { dequantize, deserializeQuantized, quantizeWeights, serializeQuantized, type Int8Tensor } from '../../../activities/ml/quantize';
import { randomRows, tokens, useWasm } from './helpers';

beforeAll(useWasm);

const CONFIG = { vocabSize: 50, context: 16, layers: 1, dModel: 64, heads: 2, numClasses: 2 };

describe('per-channel int8 quantization', () => {
  let model: Gpt;
  beforeAll(() => {
    model = new Gpt(CONFIG, { seed: 3 });
  });
  afterAll(() => model.dispose());

  it('quantizes 2-D weights per output channel (columns; rows of the embedding tables) and keeps 1-D ones float', () => {
    const q = quantizeWeights(model.getWeights());
    expect(q.wte).toMatchObject({ kind: 'int8', axis: 0 });
    expect((q.wte as Int8Tensor).scales).toHaveLength(CONFIG.vocabSize);
    expect(q['h.0.mlp.c_fc.weight']).toMatchObject({ kind: 'int8', axis: 1 });
    expect((q['h.0.mlp.c_fc.weight'] as Int8Tensor).scales).toHaveLength(4 * CONFIG.dModel);
    expect(q['h.0.ln_1.gamma'].kind).toBe('float32');
    expect(q['cls.bias'].kind).toBe('float32');
  });

  it('errs by at most half a step (scale/2) in every channel', () => {
    const weights = model.getWeights();
    const restored = dequantize(quantizeWeights(weights));
    const q = quantizeWeights(weights);
    for (const [name, w] of Object.entries(weights)) {
      const t = q[name];
      if (t.kind === 'float32') {
        expect(restored[name].data).toEqual(w.data);
        continue;
      }
      const cols = w.shape[1];
      let worst = -Infinity; // largest error minus its bound; must stay <= 0
      w.data.forEach((v, i) => {
        const scale = t.scales[t.axis === 0 ? Math.floor(i / cols) : i % cols];
        // scale/2, plus float32 rounding of the product q·scale.
        worst = Math.max(worst, Math.abs(restored[name].data[i] - v) - (scale / 2 + 1e-7 * Math.abs(v)));
      });
      expect({ name, worst: worst <= 0 }).toEqual({ name, worst: true });
    }
  });

  it('shrinks the 2-D weights by at least 73% and round-trips through its serialized form', () => {
    const weights = model.getWeights();
    const q = quantizeWeights(weights);
    const twoD = Object.fromEntries(Object.entries(q).filter(([, t]) => t.shape.length === 2));
    const { bytesBefore, bytesAfter } = serializeQuantized(twoD);
    expect(1 - bytesAfter / bytesBefore).toBeGreaterThanOrEqual(0.73);

    const all = serializeQuantized(q);
    expect(all.bytesBefore).toBe(4 * model.parameterCount());
    expect(deserializeQuantized(JSON.parse(JSON.stringify(all.index)), all.data)).toEqual(q);
  });

  it('keeps the model close: dequantized logits within 2% relative RMS', () => {
    const copy = new Gpt(CONFIG, { seed: 99 });
    copy.setWeights(dequantize(quantizeWeights(model.getWeights())));
    const x = tokens(randomRows(4, 16, CONFIG.vocabSize, 1));
    const [a, b] = tf.tidy(() => [model.forwardLm(x).dataSync(), copy.forwardLm(x).dataSync()]);
    const rms = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, y) => s + y * y, 0) / v.length);
    expect(rms(a.map((v, i) => v - b[i])) / rms(a)).toBeLessThan(0.02);
    x.dispose();
    copy.dispose();
  });

  it('maps an all-zero channel to zeros', () => {
    // Column 0 is all zeros; column 1 has scale 2/127, so 1 lands on 64·2/127 (error < scale/2).
    const q = quantizeWeights({ w: { shape: [2, 2], data: Float32Array.from([0, 1, 0, -2]) } });
    const [a, b, c, d] = dequantize(q).w.data;
    expect([a, c]).toEqual([0, 0]);
    expect(Math.abs(b - 1)).toBeLessThanOrEqual(1 / 127);
    expect(d).toBeCloseTo(-2, 6);
  });
});
