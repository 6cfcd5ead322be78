import * as tf from '@tensorflow/tfjs';
import type { ClassifyBatch, Example } from './batches';
import { crossEntropy } from './losses';
import type { Gpt } from './model';
import { runTraining, type TrainHooks, type TrainOptions, type TrainResult } from './train';

// Knowledge distillation (Hinton et al., 2015): the student matches the teacher's softened class
// distribution as well as the hard labels,
//   loss = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, labels).
// T² keeps the soft term's gradients on the scale of the hard term's as T grows.

export interface DistillationLossOptions {
  /** Softmax temperature of both distributions. */
  temperature: number;
  /** Weight of the soft (KL) term; 1 − alpha weights the hard-label cross-entropy. */
  alpha: number;
}

/**
 * The distillation loss, averaged over rows: student and teacher logits [N, K], labels int32 [N].
 * `weights` [N] replaces the plain mean (e.g. 1/(N·accumulation) per row); it must sum to the
 * intended normalizer.
 */
export function distillationLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  labels: tf.Tensor1D,
  { temperature, alpha }: DistillationLossOptions,
  weights?: tf.Tensor1D,
): tf.Scalar {
  if (studentLogits.shape.join() !== teacherLogits.shape.join()) {
    throw new Error(`student logits [${studentLogits.shape}] and teacher logits [${teacherLogits.shape}] differ in shape`);
  }
  if (!(temperature > 0)) throw new Error(`temperature must be positive, got ${temperature}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`alpha must be in [0, 1], got ${alpha}`);
  return tf.tidy(() => {
    const n = studentLogits.shape[0];
    const w = weights ?? (tf.fill([n], 1 / n) as tf.Tensor1D);
    const logP = tf.logSoftmax(teacherLogits.div(temperature)); // teacher, [N, K]
    const logQ = tf.logSoftmax(studentLogits.div(temperature)); // student, [N, K]
    const kl = logP.exp().mul(logP.sub(logQ)).sum(-1); // [N]
    const soft = kl.mul(w).sum().mul(alpha * temperature * temperature);
    const hard = crossEntropy(studentLogits, labels, w).mul(1 - alpha);
    return soft.add(hard) as tf.Scalar;
  });
}

export interface DistillOptions extends TrainOptions, DistillationLossOptions {
  /** The frozen teacher; it must share the student's vocabulary and classes. */
  teacher: Gpt;
}

/**
 * Trains `opts.model` (the student) to classify with the teacher's soft targets, through the
 * ordinary training loop (checkpoints, early stopping and resume work the same). Validation
 * metrics are the student's own: hard-label loss, accuracy, macro-F1. The teacher is only read.
 */
export function distillModel(opts: DistillOptions, data: { train: Example[]; validation: Example[] }, hooks: TrainHooks = {}): Promise<TrainResult> {
  const { teacher, temperature, alpha, ...trainOptions } = opts;
  if (trainOptions.objective !== 'classify') throw new Error(`distillation trains classifiers; objective is ${trainOptions.objective}`);
  const s = trainOptions.model.config;
  const t = teacher.config;
  if (s.vocabSize !== t.vocabSize || s.numClasses !== t.numClasses) {
    throw new Error(
      `teacher (vocab ${t.vocabSize}, ${t.numClasses} classes) and student (vocab ${s.vocabSize}, ${s.numClasses} classes) must share vocabulary and classes`,
    );
  }
  if (t.context < s.context) throw new Error(`teacher context ${t.context} is shorter than the student's ${s.context}`);
  return runTraining(trainOptions, data, hooks, {
    prepare: (batch: ClassifyBatch) => [tf.tidy(() => teacher.forwardClassify(batch.inputs, batch.lengths))],
    loss: (logits, batch, [teacherLogits]) =>
      distillationLoss(logits, teacherLogits as tf.Tensor2D, batch.labels, { temperature, alpha }, batch.weights),
  });
}
