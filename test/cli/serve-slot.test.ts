import type { ModelVersion } from '../../activities/registry/model-registry';
import type { ServedModel } from '../../cli/serve/engine';
import { ModelSlot } from '../../cli/serve/model-slot';

// ModelSlot's swap rules, with models that only record what happens to them.

const version = (n: number): ModelVersion => ({ name: 'm', version: n, createdAt: '', outputs: {}, metrics: {}, lineage: { runId: 'r', pipeline: 'p', stage: 's' } });

function fakeModel(n: number, disposed: number[]): ServedModel {
  return { kind: 'classifier', engine: `fake v${n}`, labels: ['a'], classify: async () => [], dispose: async () => void disposed.push(n) };
}

test('a swap lets requests in flight finish on the old model, which is disposed after the last of them', async () => {
  let champion = 1;
  const disposed: number[] = [];
  const loaded: string[] = [];
  const slot = new ModelSlot(async () => version(champion), 'm@champion', async (v) => fakeModel(v.version, disposed), { loaded: (s, p) => loaded.push(`${p?.version.version ?? '-'}->${s.version.version}`) });
  await slot.start(0);
  let finish!: () => void;
  const running = slot.use((served) => new Promise<number>((resolve) => (finish = () => resolve(served.version.version))));
  champion = 2;
  await slot.refresh();
  expect(slot.served?.version.version).toBe(2);
  expect(disposed).toEqual([]); // v1 still answers the request it began
  expect(await slot.use(async (s) => s.version.version)).toBe(2);
  finish();
  expect(await running).toBe(1);
  expect(disposed).toEqual([1]);
  expect(loaded).toEqual(['-->1', '1->2']);
  await slot.close();
  expect(disposed).toEqual([1, 2]);
});

test('a version that fails to load leaves the old one serving, and is tried again only after a pause', async () => {
  let champion = 1;
  let attempts = 0;
  const failures: string[] = [];
  const slot = new ModelSlot(
    async () => version(champion),
    'm',
    async (v) => {
      if (v.version === 2) {
        attempts++;
        throw new Error('no such file');
      }
      return fakeModel(v.version, []);
    },
    { loadFailed: (v, err) => failures.push(`v${v?.version}: ${(err as Error).message}`) },
  );
  await slot.start(0);
  champion = 2;
  await slot.refresh();
  await slot.refresh();
  expect(attempts).toBe(1);
  expect(failures).toEqual(['v2: no such file']);
  expect(slot.served?.version.version).toBe(1);
  // The first load of what the reference names is strict: a server does not start on nothing.
  await expect(new ModelSlot(async () => version(2), 'm', async () => Promise.reject(new Error('bad'))).start(0)).rejects.toThrow('bad');
});

test('a broken model is loaded again at the next look-up; a numbered reference does not follow', async () => {
  let loads = 0;
  const slot = new ModelSlot(async () => version(3), 'm@3', async (v) => (loads++, fakeModel(v.version, [])));
  await slot.start(0);
  expect(slot.follows).toBe(false);
  slot.served!.model.broken = 'the process died';
  await slot.refresh();
  expect(loads).toBe(2);
  expect(slot.served?.model.broken).toBeUndefined();
});
