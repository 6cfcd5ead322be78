import * as tf from '@tensorflow/tfjs';
import { hasTrainingKernel, SLICE_MAT_MUL, SUM_ROWS } from './kernels';

// Matrix products with hand-written gradients. The wasm backend is fast (XNNPACK, ~25 GFLOP/s per
// thread here) only for a plain, untransposed 2-D matMul; with transposeA/transposeB or a batch
// dimension it falls back to loops running at 0.4–2 GFLOP/s. tfjs's own matMul gradient uses
// exactly those slow forms, so every product in the model goes through these functions, whose
// backward passes are explicit `tf.transpose` + plain 2-D `tf.matMul` (~3.5× faster training).
// Other backends are merely indifferent to the rewrite.

/** Column sums of a 2-D tensor, [N, C] -> [C] (wasm's Sum over axis 0 transposes first and is ~10× slower). Not differentiable: for gradients only. */
export function sumRows(x: tf.Tensor2D): tf.Tensor1D {
  if (hasTrainingKernel(SUM_ROWS)) return tf.engine().runKernel(SUM_ROWS, { x }) as tf.Tensor1D;
  return tf.sum(x, 0);
}

const matMulPlain = tf.customGrad((a, b, save) => {
  const [x, w] = [a as tf.Tensor2D, b as tf.Tensor2D];
  (save as tf.GradSaveFunc)([x, w]);
  return {
    value: tf.matMul(x, w), // [N, K] @ [K, M] -> [N, M]
    gradFunc: (dy, saved) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const gy = dy as tf.Tensor2D;
      return [tf.matMul(gy, tf.transpose(sw)), tf.matMul(tf.transpose(sx), gy)];
    },
  };
});

const matMulBias = tf.customGrad((a, b, c, save) => {
  const [x, w, bias] = [a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor1D];
  (save as tf.GradSaveFunc)([x, w]);
  return {
    // The fused op adds the bias inside XNNPACK's GEMM for free.
    value: tf.fused.matMul({ a: x, b: w, bias }),
    gradFunc: (dy, saved) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const gy = dy as tf.Tensor2D;
      return [tf.matMul(gy, tf.transpose(sw)), tf.matMul(tf.transpose(sx), gy), sumRows(gy)];
    },
  };
});

/** a @ b (+ bias) for 2-D tensors: a [N, K], b [K, M], bias [M] -> [N, M]. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[0]) {
    throw new Error(`matMul2d expects [N, K] @ [K, M]; got [${a.shape}] @ [${b.shape}]`);
  }
  return (bias ? matMulBias(a, b, bias) : matMulPlain(a, b)) as tf.Tensor2D;
}

const matMulBtImpl = tf.customGrad((a, b, save) => {
  const [x, w] = [a as tf.Tensor2D, b as tf.Tensor2D];
  (save as tf.GradSaveFunc)([x, w]);
  return {
    value: tf.matMul(x, tf.transpose(w)), // [N, K] @ [K, M]: w is [M, K]
    gradFunc: (dy, saved) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const gy = dy as tf.Tensor2D; // [N, M]
      // dW = dyᵀ x = (xᵀ dy)ᵀ: transposing x [N, K] and the [K, M] product is cheaper than dy [N, M].
      return [tf.matMul(gy, sw), tf.transpose(tf.matMul(tf.transpose(sx), gy))];
    },
  };
});

/** a @ bᵀ for 2-D tensors: a [N, K], b [M, K] -> [N, M]. Used by the LM head tied to the embedding table. */
export function matMulTransposeB(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[1]) {
    throw new Error(`matMulTransposeB expects [N, K] @ [M, K]ᵀ; got [${a.shape}] @ [${b.shape}]ᵀ`);
  }
  return matMulBtImpl(a, b) as tf.Tensor2D;
}

/** Per-slice plain 2-D products: a [S, N, K], b [S, K, M] -> [S, N, M] (in place on wasm, else unstack/stack). */
function sliceProducts(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (hasTrainingKernel(SLICE_MAT_MUL)) return tf.engine().runKernel(SLICE_MAT_MUL, { a, b }) as tf.Tensor3D;
  const as = tf.unstack(a) as tf.Tensor2D[];
  const bs = tf.unstack(b) as tf.Tensor2D[];
  return tf.stack(as.map((x, i) => tf.matMul(x, bs[i]))) as tf.Tensor3D;
}

const batchMatMulImpl = tf.customGrad((a, b, save) => {
  const [x, y] = [a as tf.Tensor3D, b as tf.Tensor3D];
  (save as tf.GradSaveFunc)([x, y]);
  return {
    value: sliceProducts(x, y),
    gradFunc: (dy, saved) => {
      const [sx, sy] = saved as [tf.Tensor3D, tf.Tensor3D];
      const g = dy as tf.Tensor3D;
      return [
        sliceProducts(g, tf.transpose(sy, [0, 2, 1])), // dA_s = dY_s @ B_sᵀ
        sliceProducts(tf.transpose(sx, [0, 2, 1]), g), // dB_s = A_sᵀ @ dY_s
      ];
    },
  };
});

/**
 * Batched a @ b: a [S, N, K], b [S, K, M] -> [S, N, M], as S plain 2-D products (attention's
 * per-(batch, head) products). wasm's batched matMul runs at ~1–2 GFLOP/s; S small XNNPACK
 * GEMMs on the slices in place (kernels.ts SliceMatMul) run ~3× faster for attention's shapes.
 * The backward pass is the same products on explicitly transposed operands.
 */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (a.rank !== 3 || b.rank !== 3 || a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) {
    throw new Error(`batchMatMul expects [S, N, K] @ [S, K, M]; got [${a.shape}] @ [${b.shape}]`);
  }
  // Native backends (tfjs-node) have fast batched GEMMs and their own gradients.
  if (tf.getBackend() === 'tensorflow') return tf.matMul(a, b);
  return batchMatMulImpl(a, b) as tf.Tensor3D;
}
