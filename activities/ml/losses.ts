import * as tf from '@tensorflow/tfjs';

// Weighted softmax cross-entropy with a closed-form gradient. Over an LM's [B*T, V] logits the
// naive form (logSoftmax + gather, autodiff) costs ~10 full passes over V; this one takes the
// softmax once (XNNPACK) and returns w·(p − onehot) as the gradient.

/** Smallest probability whose log is taken: the reported loss is capped at −log(1e-30) ≈ 69; the gradient is exact. */
const P_MIN = 1e-30;

const crossEntropyImpl = tf.customGrad((logitsIn, targetsIn, weightsIn, save) => {
  const [logits, targets, weights] = [logitsIn as tf.Tensor2D, targetsIn as tf.Tensor1D, weightsIn as tf.Tensor1D];
  const [n, v] = logits.shape;
  const probs = tf.softmax(logits); // [N, V]
  const flat = tf.range(0, n, 1, 'int32').mul(tf.scalar(v, 'int32')).add(targets); // index of each target in probs' flat view
  const picked = tf.gather(probs.reshape([n * v]), flat); // [N]
  (save as tf.GradSaveFunc)([probs, targets, weights]);
  return {
    value: picked.maximum(P_MIN).log().mul(weights).sum().neg() as tf.Scalar,
    gradFunc: (dy, saved) => {
      const [sp, st, sw] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
      const scale = sw.mul(dy).reshape([n, 1]); // [N, 1]
      const dLogits = sp.sub(tf.oneHot(st, v, 1, 0, 'float32')).mul(scale); // [N, V]
      return [dLogits, tf.zerosLike(st), tf.zerosLike(sw)];
    },
  };
});

/**
 * Σᵢ wᵢ · −log softmax(logitsᵢ)[targetᵢ]: logits [N, V], targets int32 [N], weights [N] (e.g. a
 * pad mask divided by the number of real targets, which makes it a mean). Targets of zero-weight
 * rows may be any valid id.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const [n, v] = logits.shape;
  if (targets.shape[0] !== n || weights.shape[0] !== n) {
    throw new Error(`crossEntropy: logits [${logits.shape}] need targets and weights of length ${n}; got [${targets.shape}], [${weights.shape}]`);
  }
  if (targets.dtype !== 'int32') throw new Error(`crossEntropy: targets must be int32, got ${targets.dtype}`);
  if (v < 1) throw new Error('crossEntropy: empty class dimension');
  return crossEntropyImpl(logits, targets, weights) as tf.Scalar;
}
