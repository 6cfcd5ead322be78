import * as tf from '@tensorflow/tfjs';
import { batchMatMul, sumRows } from '../../../activities/ml/matmul';
import { useWasm } from './helpers';

// The replacement wasm kernels (kernels.ts) against the stock cpu kernels, on shapes that
// exercise contiguous and strided windows.

beforeAll(useWasm);

/** Runs `f` (which returns plain JS values) on wasm, then on the stock cpu backend. */
async function onBoth<T>(f: () => T): Promise<{ wasm: T; cpu: T }> {
  const run = () => {
    let out: T | undefined;
    tf.tidy(() => {
      out = f();
    });
    return out as T;
  };
  const wasm = run();
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    await tf.setBackend('cpu');
    const cpu = run();
    return { wasm, cpu };
  } finally {
    await tf.setBackend('wasm');
    warn.mockRestore();
  }
}

const x4 = () => tf.range(0, 2 * 3 * 4 * 5).reshape([2, 3, 4, 5]);

describe('wasm kernels', () => {
  it('Slice copies exactly the window, contiguous or strided', async () => {
    const cases: Array<[number[], number[]]> = [
      [[1, 0, 0, 0], [1, 3, 4, 5]],
      [[0, 1, 0, 0], [2, 2, 4, 5]],
      [[0, 0, 1, 2], [2, 3, 2, 3]],
      [[1, 2, 3, 4], [1, 1, 1, 1]],
      [[0, 0, 0, 0], [2, 3, 4, 5]],
    ];
    const { wasm, cpu } = await onBoth(() => cases.map(([b, s]) => tf.slice(x4(), b, s).arraySync()));
    expect(wasm).toEqual(cpu);
  });

  it('SplitV and Unpack split along every axis', async () => {
    const { wasm, cpu } = await onBoth(() => [
      ...[0, 1, 2, 3].map((axis) => tf.unstack(x4(), axis).map((t) => t.arraySync())),
      tf.split(x4(), [1, 3], 2).map((t) => t.arraySync()),
      tf.split(x4(), 5, 3).map((t) => t.arraySync()),
    ]);
    expect(wasm).toEqual(cpu);
  });

  it('GatherV2 gathers rows and inner axes, repeated indices included', async () => {
    const { wasm, cpu } = await onBoth(() => {
      const idx = tf.tensor1d([2, 0, 2, 1], 'int32');
      return [tf.gather(x4(), tf.tensor1d([1, 1, 0], 'int32')), tf.gather(x4(), idx, 2), tf.gather(x4(), tf.tensor2d([[4, 0], [3, 3]], [2, 2], 'int32'), 3)].map((t) =>
        t.arraySync(),
      );
    });
    expect(wasm).toEqual(cpu);
    expect(() => tf.gather(x4(), tf.tensor1d([2], 'int32'))).toThrow(/not in \[0, 1\]/);
  });

  it('OneHot honours a float32 dtype (the stock wasm kernel writes int32 bits)', async () => {
    const { wasm, cpu } = await onBoth(() => tf.oneHot(tf.tensor1d([0, 3, 1], 'int32'), 4, 1, 0, 'float32').arraySync() as number[][]);
    expect(wasm).toEqual(cpu);
    expect(wasm[1][3]).toBe(1);
  });

  it('Identity shares the buffer and frees it only with the last reference', () => {
    const before = tf.memory();
    const a = tf.tensor1d([1, 2, 3]);
    const b = a.clone();
    a.dispose();
    expect(b.arraySync()).toEqual([1, 2, 3]);
    b.dispose();
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
  });

  it('UnsortedSegmentSum adds rows with equal ids (the gradient of gather)', async () => {
    const { wasm, cpu } = await onBoth(() =>
      tf.unsortedSegmentSum(tf.range(0, 12).reshape([4, 3]), tf.tensor1d([2, 0, 2, 4], 'int32'), 5).arraySync() as number[][],
    );
    expect(wasm).toEqual(cpu);
    expect(wasm[2]).toEqual([6, 8, 10]);
  });

  it('SliceMatMul (attention products) equals a batched matMul on the cpu backend, gradients included', async () => {
    const { wasm, cpu } = await onBoth(() => {
      const a = tf.randomNormal([5, 7, 3], 0, 1, 'float32', 1) as tf.Tensor3D;
      const b = tf.randomNormal([5, 3, 4], 0, 1, 'float32', 2) as tf.Tensor3D;
      const r = tf.randomNormal([5, 7, 4], 0, 1, 'float32', 3);
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => batchMatMul(x as tf.Tensor3D, y as tf.Tensor3D).mul(r).sum())([a, b]);
      return [batchMatMul(a, b).dataSync(), tf.matMul(a, b).dataSync(), ga.dataSync(), gb.dataSync()].map((t) => Array.from(t));
    });
    const close = (x: number[], y: number[]) => Math.max(...x.map((v, i) => Math.abs(v - y[i])));
    expect(close(wasm[0], cpu[1])).toBeLessThan(1e-5);
    expect(close(wasm[2], cpu[2])).toBeLessThan(1e-5);
    expect(close(wasm[3], cpu[3])).toBeLessThan(1e-5);
  });

  it('SumRows sums columns', async () => {
    const { wasm, cpu } = await onBoth(() => Array.from(sumRows(tf.range(0, 12).reshape([4, 3]) as tf.Tensor2D).dataSync()));
    expect(wasm).toEqual([18, 22, 26]);
    expect(cpu).toEqual(wasm);
  });
});
