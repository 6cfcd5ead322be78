import * as tf from '@tensorflow/tfjs';
import {
  deserializeCheckpoint,
  loadModel,
  serializeCheckpoint,
  serializeModel,
  type TrainCheckpoint,
} from '../../../activities/ml/checkpoint';
import { ArtifactFormatError } from '../../../activities/ml/errors';
import { Gpt } from '../../../activities/ml/model';
import { trainModel } from '../../../activities/ml/train';
import { countingExamples, randomRows, TINY, tokens, useWasm } from './helpers';

beforeAll(useWasm);

async function someCheckpoint(): Promise<TrainCheckpoint> {
  const model = new Gpt(TINY, { seed: 1 });
  let checkpoint: TrainCheckpoint | undefined;
  await trainModel(
    { model, objective: 'causal-lm', steps: 3, batchSize: 4, evalEvery: 1, evalBatches: 1, checkpointEvery: 2 },
    { train: countingExamples(8, 13, TINY.vocabSize, 1), validation: countingExamples(4, 13, TINY.vocabSize, 2) },
    { onCheckpoint: async (c) => void (checkpoint = c) },
  );
  model.dispose();
  return checkpoint!;
}

describe('training checkpoints', () => {
  it('round-trip through the binary format unchanged', async () => {
    const checkpoint = await someCheckpoint();
    const buf = serializeCheckpoint(checkpoint);
    expect(buf.toString('ascii', 0, 8)).toBe('TMPDCKPT');
    expect(buf.readUInt32LE(8)).toBe(1);
    const back = deserializeCheckpoint(buf);
    expect(back).toEqual(checkpoint);
    expect(back.best.weights).not.toBeNull();
    expect(back.optimizer.m).toHaveLength(back.optimizer.names.length);
  });

  it('reject other files, other versions and truncated blobs with a clear message', async () => {
    const buf = serializeCheckpoint(await someCheckpoint());
    expect(() => deserializeCheckpoint(Buffer.from('not a checkpoint at all'))).toThrow(/TMPDCKPT magic/);
    const v2 = Buffer.from(buf);
    v2.writeUInt32LE(2, 8);
    expect(() => deserializeCheckpoint(v2)).toThrow(ArtifactFormatError);
    expect(() => deserializeCheckpoint(buf.subarray(0, buf.length - 4))).toThrow(/outside the/);
  });
});

describe('model files', () => {
  it('save and load to a model with identical weights and outputs', () => {
    const model = new Gpt({ ...TINY, numClasses: 2 }, { seed: 5 });
    const { config, weights } = serializeModel(model);
    expect(config).toMatchObject({ format: 'tempered-gpt', version: 1, byteLength: weights.length });
    expect(config.tensors[0]).toEqual({ name: 'wte', shape: [TINY.vocabSize, TINY.dModel], dtype: 'float32', offset: 0, byteLength: 4 * TINY.vocabSize * TINY.dModel });
    const loaded = loadModel(JSON.parse(JSON.stringify(config)), weights);
    expect(loaded.getWeights()).toEqual(model.getWeights());
    const x = tokens(randomRows(2, 6, TINY.vocabSize, 1));
    expect(tf.tidy(() => loaded.forwardLm(x).arraySync())).toEqual(tf.tidy(() => model.forwardLm(x).arraySync()));
    x.dispose();
    model.dispose();
    loaded.dispose();
  });

  it('keep unmerged LoRA adapters and their options', () => {
    const model = new Gpt(TINY, { seed: 5 });
    model.applyLora({ rank: 2, alpha: 4, targets: ['value'] });
    const { config, weights } = serializeModel(model);
    expect(config.lora).toEqual({ rank: 2, alpha: 4, dropout: 0, targets: ['value'] });
    const loaded = loadModel(config, weights);
    expect(loaded.lora).toEqual(model.lora);
    expect(loaded.loraWeights()).toEqual(model.loraWeights());
    model.dispose();
    loaded.dispose();
  });

  it('refuse blobs that do not match the index', () => {
    const model = new Gpt(TINY, { seed: 5 });
    const { config, weights } = serializeModel(model);
    expect(() => loadModel(config, weights.subarray(4))).toThrow(/bytes but the index says/);
    expect(() => loadModel({ ...config, tensors: config.tensors.slice(1) }, weights)).toThrow(/weights missing: wte/);
    model.dispose();
  });
});
