import { deviceEnvironment, GpuSlots, NotEnoughGpusError, type GpuLease } from '../../activities/gpu-slots';

// The gpu worker's device pool: whole requests, first come first served, always given back.

/** Lets pending promise callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Tracks whether an acquire has resolved yet. */
function track(promise: Promise<GpuLease>) {
  const state: { lease?: GpuLease; error?: unknown } = {};
  promise.then((lease) => (state.lease = lease), (error) => (state.error = error));
  return state;
}

test('attempts get disjoint devices, the lowest free first, and get them back on release', async () => {
  const slots = new GpuSlots(['0', '1', '2']);
  const a = await slots.acquire(1);
  const b = await slots.acquire(2);
  expect(a.devices).toEqual(['0']);
  expect(b.devices).toEqual(['1', '2']);
  expect(slots.freeCount).toBe(0);
  a.release();
  a.release(); // a second release gives nothing back twice
  expect(slots.freeCount).toBe(1);
  expect((await slots.acquire(1)).devices).toEqual(['0']);
});

test('a request waits until all its devices are free at once, and hears how many are free meanwhile', async () => {
  const slots = new GpuSlots(['0', '1', '2']);
  const held = [await slots.acquire(1), await slots.acquire(1), await slots.acquire(1)];
  const waits: Array<{ wanted: number; free: number; total: number }> = [];
  const big = track(slots.acquire(2, { onWait: (w) => waits.push(w) }));
  held[0].release();
  await settle();
  expect(big.lease).toBeUndefined(); // one free is not enough: it takes nothing yet, so nothing deadlocks
  held[2].release();
  await settle();
  expect(big.lease?.devices).toEqual(['0', '2']);
  expect(waits).toEqual([
    { wanted: 2, free: 0, total: 3 },
    { wanted: 2, free: 1, total: 3 },
  ]);
});

test('first come, first served: small requests do not overtake a waiting big one', async () => {
  const slots = new GpuSlots(['0', '1', '2', '3']);
  const first = await slots.acquire(2);
  const big = track(slots.acquire(4));
  const small = track(slots.acquire(1)); // two devices are free, but the 4-GPU request is ahead
  await settle();
  expect(small.lease).toBeUndefined();
  first.release();
  await settle();
  expect(big.lease?.devices).toEqual(['0', '1', '2', '3']);
  expect(small.lease).toBeUndefined();
  big.lease!.release();
  await settle();
  expect(small.lease?.devices).toEqual(['0']);
});

test('many mixed requests all finish: no deadlock, every device returned', async () => {
  const slots = new GpuSlots(['0', '1', '2']);
  const inUse = new Set<string>();
  const sizes = [1, 3, 2, 1, 1, 2, 3, 1, 2, 2, 1, 3];
  await Promise.all(
    sizes.map((size, i) =>
      slots.withDevices(size, {}, async (devices) => {
        for (const d of devices) {
          expect(inUse.has(d)).toBe(false); // never two holders of one device
          inUse.add(d);
        }
        await new Promise((resolve) => setTimeout(resolve, (i % 3) + 1));
        for (const d of devices) inUse.delete(d);
      }),
    ),
  );
  expect(slots.freeCount).toBe(3);
  expect(slots.waiting).toBe(0);
});

test('devices come back when the holder throws', async () => {
  const slots = new GpuSlots(['0', '1']);
  await expect(slots.withDevices(2, {}, async () => Promise.reject(new Error('out of memory')))).rejects.toThrow('out of memory');
  expect(slots.freeCount).toBe(2);
});

test('a cancelled waiter leaves the line, and the one behind it moves up', async () => {
  const slots = new GpuSlots(['0', '1']);
  const held = await slots.acquire(1);
  const cancel = new AbortController();
  const big = track(slots.acquire(2, { signal: cancel.signal }));
  const small = track(slots.acquire(1));
  await settle();
  expect(small.lease).toBeUndefined(); // behind the 2-GPU request
  cancel.abort(new Error('stage cancelled'));
  await settle();
  expect((big.error as Error).message).toBe('stage cancelled');
  expect(small.lease?.devices).toEqual(['1']);
  held.release();
  small.lease!.release();
  expect(slots.freeCount).toBe(2);
  expect(slots.waiting).toBe(0);
  await expect(slots.acquire(1, { signal: cancel.signal })).rejects.toThrow('stage cancelled'); // already aborted: takes nothing
  expect(slots.freeCount).toBe(2);
});

test('a request larger than the worker fails at once, naming the worker\'s devices', async () => {
  const slots = new GpuSlots(['0', '1', '2']);
  const failure = slots.acquire(4);
  await expect(failure).rejects.toThrow(NotEnoughGpusError);
  await expect(failure).rejects.toThrow(/asks for 4 GPUs \(resources.gpu: 4\) but this worker has 3 \(devices 0,1,2\); the attempt is retried so that a gpu worker with at least 4 GPUs can take it/);
  await expect(failure).rejects.toMatchObject({ nonRetryable: false });
  expect(slots.freeCount).toBe(3);
  await expect(slots.acquire(0)).rejects.toThrow(RangeError);
});

test('a pool needs distinct devices', () => {
  expect(() => new GpuSlots([])).toThrow(/at least one device/);
  expect(() => new GpuSlots(['0', '0'])).toThrow(/repeat/);
});

test('deviceEnvironment confines child processes to the attempt\'s devices', () => {
  expect(deviceEnvironment(['1', '3'])).toEqual({ CUDA_VISIBLE_DEVICES: '1,3' });
  expect(deviceEnvironment(undefined)).toEqual({});
});
