import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment as MockEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { GpuSlots } from '../../activities/gpu-slots';
import { defineStage, type StageContext } from '../../activities/stage-runner';
import { createStore, type ArtifactStore } from '../../activities/store';
import type { StageInput } from '../../workflows/types';

// The stage protocol on a gpu worker: an attempt holds `input.gpus` devices while it computes,
// heartbeats while it waits for them, and gives them back however it ends.

let dir: string;
let store: ArtifactStore;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-stage-gpus-'));
  store = createStore({ kind: 'file', dir });
});

afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const input = (stage: string, gpus?: number): StageInput => ({
  runId: 'r1', pipeline: 'p', stage, type: 'noop', config: {}, inputs: {}, dataInputs: [],
  outputPrefix: `runs/p/r1/${stage}/`, baseDir: dir, seed: 1, cacheKey: 'k', cache: false, ...(gpus === undefined ? {} : { gpus }),
});

const gpuQueue = { taskQueue: 'gpu', heartbeatTimeoutMs: 30_000 };

/** Failing on purpose here: keep the SDK's activity-failed log lines out. */
class MockActivityEnvironment extends MockEnvironment {
  constructor(info: ConstructorParameters<typeof MockEnvironment>[0]) {
    super(info, { logger: new DefaultLogger('ERROR') });
  }
}

test('an attempt sees its devices, a second waits (and heartbeats so) until they are back, and a throw gives them back', async () => {
  const slots = new GpuSlots(['4', '7']);
  let release!: () => void;
  const holding = new Promise<void>((resolve) => (release = resolve));
  const seen: Record<string, readonly string[] | undefined> = {};
  const activity = defineStage(
    store,
    async (ctx: StageContext) => {
      seen[ctx.input.stage] = ctx.devices;
      if (ctx.input.stage === 'first') {
        await holding;
        throw new Error('CUDA out of memory');
      }
      return { outputs: {}, metrics: {} };
    },
    {},
    { gpuSlots: slots },
  );

  const first = new MockActivityEnvironment(gpuQueue).run(activity, input('first', 2));
  const waiter = new MockActivityEnvironment(gpuQueue);
  const heartbeats: unknown[] = [];
  waiter.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const second = waiter.run(activity, input('second', 1));
  for (let i = 0; i < 100 && heartbeats.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(heartbeats).toContainEqual({ phase: 'waiting for 1 GPU (0 of 2 free on this worker)' });
  expect(seen.second).toBeUndefined();

  release();
  await expect(first).rejects.toThrow(/stage "first" \(noop\): CUDA out of memory/);
  expect(seen.first).toEqual(['4', '7']);
  const outcome = (await second) as { metrics: Record<string, unknown> };
  expect(seen.second).toEqual(['4']);
  expect(outcome.metrics.worker).toMatchObject({ devices: '4' });
  expect(slots.freeCount).toBe(2);
});

test('cancelling a waiting attempt takes it out of the line', async () => {
  const slots = new GpuSlots(['0']);
  const lease = await slots.acquire(1);
  const activity = defineStage(store, async () => ({ outputs: {}, metrics: {} }), {}, { gpuSlots: slots });
  const env = new MockActivityEnvironment(gpuQueue);
  const waiting = env.run(activity, input('cancelled', 1));
  for (let i = 0; i < 100 && slots.waiting === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(slots.waiting).toBe(1);
  env.cancel();
  await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
  expect(slots.waiting).toBe(0);
  lease.release();
  expect(slots.freeCount).toBe(1);
});

test('cpu-queue attempts take no devices; a gpu-queue attempt of an older plan (no input.gpus) takes one', async () => {
  const slots = new GpuSlots(['0', '1']);
  let devices: readonly string[] | undefined = ['not called'];
  const activity = defineStage(store, async (ctx) => ((devices = ctx.devices), { outputs: {}, metrics: {} }), {}, { gpuSlots: slots });
  await new MockActivityEnvironment({ taskQueue: 'cpu' }).run(activity, input('on-cpu'));
  expect(devices).toBeUndefined();
  await new MockActivityEnvironment({ taskQueue: 'pre-gpu' }).run(activity, input('legacy'));
  expect(devices).toEqual(['0']);
});
