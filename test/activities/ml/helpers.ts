import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../activities/ml/backend';
import type { Example } from '../../../activities/ml/batches';
import type { ModelConfig, NamedWeights } from '../../../activities/ml/model';
import { Rng } from '../../../activities/ml/rng';

/** A model small enough for milliseconds per step. */
export const TINY: ModelConfig = { vocabSize: 23, context: 12, layers: 2, dModel: 16, heads: 2 };

/** Single-threaded wasm: deterministic, and no worker threads left behind by a test file. */
export async function useWasm(): Promise<void> {
  await initBackend('wasm', { threads: 1 });
}

export function tokens(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
}

export function randomRows(b: number, t: number, vocab: number, seed: number): number[][] {
  const rng = Rng.fromSeed(seed, 'rows');
  return Array.from({ length: b }, () => Array.from({ length: t }, () => rng.int(vocab)));
}

/** Sequences of the pattern x, x+1, x+2, ... (mod vocab): next tokens are fully predictable. */
export function countingExamples(n: number, length: number, vocab: number, seed: number): Example[] {
  const rng = Rng.fromSeed(seed, 'counting');
  return Array.from({ length: n }, () => {
    const start = rng.int(vocab);
    return { tokens: Array.from({ length }, (_, i) => (start + i) % vocab) };
  });
}

export function maxAbsDiff(a: NamedWeights, b: NamedWeights): number {
  let max = 0;
  for (const name of Object.keys(a)) {
    const x = a[name].data;
    const y = b[name].data;
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
  }
  return max;
}
