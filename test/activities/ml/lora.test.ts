import * as tf from '@tensorflow/tfjs';
import { Gpt, type NamedWeights } from '../../../activities/ml/model';
import { Rng } from '../../../activities/ml/rng';
import { trainModel } from '../../../activities/ml/train';
import { countingExamples, randomRows, TINY, tokens, useWasm } from './helpers';

beforeAll(useWasm);

const ALL_TARGETS = ['query', 'key', 'value', 'output', 'mlpIn', 'mlpOut'] as const;

/** Nonzero B matrices, so that the adapters actually change the outputs. */
function randomizeAdapters(model: Gpt, seed: number): void {
  const rng = Rng.fromSeed(seed, 'adapters');
  const w: NamedWeights = {};
  for (const [name, t] of Object.entries(model.loraWeights())) w[name] = { shape: t.shape, data: t.data.map(() => 0.3 * rng.normal()) };
  model.setLoraWeights(w);
}

describe('LoRA', () => {
  it('starts as the base model (B = 0), and merging gives the same outputs as the adapters', () => {
    const model = new Gpt({ ...TINY, numClasses: 3 }, { seed: 1 });
    const x = tokens(randomRows(2, 9, TINY.vocabSize, 1));
    const base = tf.tidy(() => model.forwardLm(x).arraySync());
    model.applyLora({ rank: 4, alpha: 8, targets: [...ALL_TARGETS] });
    expect(tf.tidy(() => model.forwardLm(x).arraySync())).toEqual(base);

    randomizeAdapters(model, 2);
    const [lm, cls] = tf.tidy(() => [model.forwardLm(x).dataSync(), model.forwardClassify(x, [9, 5]).dataSync()]);
    expect(Math.max(...lm.map((v, i) => Math.abs(v - base.flat(2)[i])))).toBeGreaterThan(1e-2);

    model.mergeLora();
    expect(model.lora).toBeUndefined();
    expect(Object.keys(model.getWeights()).some((n) => n.includes('lora'))).toBe(false);
    const [lmMerged, clsMerged] = tf.tidy(() => [model.forwardLm(x).dataSync(), model.forwardClassify(x, [9, 5]).dataSync()]);
    expect(Math.max(...lmMerged.map((v, i) => Math.abs(v - lm[i])))).toBeLessThan(1e-4);
    expect(Math.max(...clsMerged.map((v, i) => Math.abs(v - cls[i])))).toBeLessThan(1e-4);
    x.dispose();
    model.dispose();
  });

  it('reports the trainable fraction: adapters (and the head when classifying) over all parameters', () => {
    const model = new Gpt({ ...TINY, numClasses: 3 }, { seed: 1 });
    const base = model.parameterCount();
    model.applyLora({ rank: 2, alpha: 4, targets: ['query', 'value', 'mlpIn'] });
    const { dModel: C, layers: L } = TINY;
    const adapters = L * (2 * (C * 2 + 2 * C) + (C * 2 + 2 * 4 * C));
    const head = C * 3 + 3;
    expect(model.parameterCount()).toBe(base + adapters);
    expect(model.trainableFraction('causal-lm')).toBeCloseTo(adapters / (base + adapters), 12);
    expect(model.trainableFraction('classify')).toBeCloseTo((adapters + head) / (base + adapters), 12);
    expect(model.trainableNames('classify').every((n) => n.includes('.lora_') || n.startsWith('cls.'))).toBe(true);
    model.dispose();
  });

  it('trains only the adapters: every base weight is bit-identical afterwards', async () => {
    const model = new Gpt(TINY, { seed: 2 });
    model.applyLora({ rank: 4, alpha: 8, dropout: 0.1, targets: ['query', 'value', 'output', 'mlpOut'] });
    const before = model.getWeights();
    const result = await trainModel(
      { model, objective: 'causal-lm', steps: 8, batchSize: 8, optimizer: { lr: 1e-2, warmupSteps: 0 } },
      { train: countingExamples(32, 13, TINY.vocabSize, 3), validation: [] },
    );
    const after = model.getWeights();
    for (const name of Object.keys(before)) {
      if (name.includes('.lora_')) continue;
      expect({ name, same: after[name].data.every((v, i) => v === before[name].data[i]) }).toEqual({ name, same: true });
    }
    const bNames = Object.keys(after).filter((n) => n.endsWith('.B'));
    expect(bNames.length).toBe(2 * 4);
    for (const name of bNames) expect(after[name].data.some((v) => v !== 0)).toBe(true);
    expect(result.history[7].loss).toBeLessThan(result.history[0].loss);
    model.dispose();
  });

  it('classifying with adapters also trains the (new) classification head, nothing else', async () => {
    const model = new Gpt({ ...TINY, numClasses: 2 }, { seed: 4 });
    model.applyLora({ rank: 2, alpha: 4, targets: ['value'] });
    const before = model.getWeights();
    const rng = Rng.fromSeed(5, 'labels');
    const train = Array.from({ length: 16 }, () => ({ tokens: [1 + rng.int(20), 2, 3], label: rng.int(2) }));
    await trainModel({ model, objective: 'classify', steps: 4, batchSize: 8, optimizer: { lr: 1e-2, warmupSteps: 0 } }, { train, validation: [] });
    const after = model.getWeights();
    const changed = Object.keys(before).filter((n) => after[n].data.some((v, i) => v !== before[n].data[i]));
    expect(changed.sort()).toEqual(['cls.bias', 'cls.weight', 'h.0.attn.lora_value.A', 'h.0.attn.lora_value.B', 'h.1.attn.lora_value.A', 'h.1.attn.lora_value.B']);
    model.dispose();
  });
});
