import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { initBackend } from '../../../activities/ml/backend';

describe('initBackend', () => {
  it('initializes single-threaded wasm and is idempotent', async () => {
    const first = await initBackend('wasm', { threads: 1 });
    expect(first).toEqual({ name: 'wasm', threads: 1, skipped: [] });
    expect(await initBackend('wasm', { threads: 1 })).toBe(first);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('under auto, silently moves past the native backends this machine lacks', async () => {
    const info = await initBackend('auto', { threads: 1 });
    expect(info.name).toBe('wasm');
    expect(info.skipped.map((s) => s.split(':')[0])).toEqual(['tfjs-node-gpu', 'tfjs-node']);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('runs wasm on two threads in a child process, which then exits on its own', () => {
    // A separate process: the threaded build starts a pool of workers, which should not share
    // the test runner's process, and the point is that the process ends without process.exit.
    const root = path.resolve(__dirname, '../../..');
    const script = `
      const tf = require('@tensorflow/tfjs');
      const { initBackend } = require('./activities/ml/backend');
      initBackend('wasm', { threads: 2 }).then((info) => {
        const a = tf.randomNormal([256, 256], 0, 1, 'float32', 1);
        const single = tf.matMul(a, a).sum().dataSync()[0];
        console.log(JSON.stringify({ info, finite: Number.isFinite(single) }));
      });`;
    const child = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), '-e', script], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(child.error).toBeUndefined();
    expect(child.status).toBe(0);
    const out = JSON.parse(child.stdout.trim().split('\n').pop()!);
    expect(out).toEqual({ info: { name: 'wasm', threads: 2, skipped: [] }, finite: true });
  });
});
