import * as tf from '@tensorflow/tfjs';
import { distillationLoss, distillModel } from '../../../activities/ml/distill';
import { Gpt } from '../../../activities/ml/model';
import { Rng } from '../../../activities/ml/rng';
import { TINY, useWasm } from './helpers';

beforeAll(useWasm);

const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('distillationLoss', () => {
  const student = [
    [1.0, -0.5, 0.3],
    [0.2, 0.1, -1.2],
  ];
  const teacher = [
    [2.0, 0.5, -1.0],
    [-0.3, 1.4, 0.0],
  ];
  const labels = [0, 1];

  it('equals α·T²·KL(teacher ‖ student) + (1 − α)·CE, computed by hand in float64', () => {
    const T = 2;
    const alpha = 0.7;
    let kl = 0;
    let ce = 0;
    student.forEach((s, i) => {
      const p = softmax(teacher[i].map((v) => v / T));
      const q = softmax(s.map((v) => v / T));
      kl += p.reduce((a, pj, j) => a + pj * Math.log(pj / q[j]), 0) / 2;
      ce += -Math.log(softmax(s)[labels[i]]) / 2;
    });
    const expected = alpha * T * T * kl + (1 - alpha) * ce;
    const got = tf.tidy(() =>
      distillationLoss(tf.tensor2d(student), tf.tensor2d(teacher), tf.tensor1d(labels, 'int32'), { temperature: T, alpha }).dataSync()[0],
    );
    expect(got).toBeCloseTo(expected, 5);
  });

  it('is the plain cross-entropy at α = 0 and zero soft loss when student equals teacher', () => {
    const [hardOnly, sameLogits] = tf.tidy(() => {
      const s = tf.tensor2d(student);
      const y = tf.tensor1d(labels, 'int32');
      return [
        distillationLoss(s, tf.tensor2d(teacher), y, { temperature: 3, alpha: 0 }).dataSync()[0],
        distillationLoss(s, s, y, { temperature: 3, alpha: 1 }).dataSync()[0],
      ];
    });
    expect(hardOnly).toBeCloseTo(student.reduce((a, s, i) => a - Math.log(softmax(s)[labels[i]]) / 2, 0), 5);
    expect(sameLogits).toBeCloseTo(0, 6);
  });
});

describe('distillModel', () => {
  it('trains the student toward a frozen teacher through the ordinary loop', async () => {
    const rng = Rng.fromSeed(1, 'distill');
    const examples = Array.from({ length: 32 }, () => ({
      tokens: Array.from({ length: 4 + rng.int(6) }, () => rng.int(TINY.vocabSize)),
      label: rng.int(2),
    }));
    const teacher = new Gpt({ ...TINY, numClasses: 2 }, { seed: 1 });
    // A confident teacher: scale its head up so its soft targets are far from uniform.
    const head = teacher.getWeights()['cls.weight'];
    teacher.setWeights({ 'cls.weight': { shape: head.shape, data: head.data.map((v) => v * 200) } });
    const teacherBefore = teacher.getWeights();
    const student = new Gpt({ ...TINY, layers: 1, numClasses: 2 }, { seed: 2 });
    const result = await distillModel(
      { model: student, teacher, temperature: 2, alpha: 0.9, objective: 'classify', steps: 15, batchSize: 8, optimizer: { lr: 1e-2, warmupSteps: 0 }, evalEvery: 5, evalBatches: 1 },
      { train: examples, validation: examples.slice(0, 8) },
    );
    expect(teacher.getWeights()).toEqual(teacherBefore);
    const first = result.history.slice(0, 3).reduce((a, h) => a + h.loss, 0);
    const last = result.history.slice(-3).reduce((a, h) => a + h.loss, 0);
    expect(last).toBeLessThan(first);
    expect(result.history[4]).toMatchObject({ valLoss: expect.any(Number), valAccuracy: expect.any(Number), valF1: expect.any(Number) });
    teacher.dispose();
    student.dispose();
  });
});
