import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileArtifactStore } from '../../../activities/store';
import { getAliases, getVersion, listModels, listVersions, promote, registerVersion, rollback } from '../../../activities/registry/model-registry';

// The registry on the real file:// backend.

const ref = (name: string) => ({ uri: `file:///x/${name}`, sha256: 'a'.repeat(64), bytes: 1, mediaType: 'application/octet-stream' });
const entry = (runId: string, f1: number) => ({
  outputs: { model: ref('model.json'), weights: ref('weights.bin'), tokenizer: ref('tokenizer.json') },
  metrics: { macroF1: f1 },
  lineage: { runId, pipeline: 'p', stage: 'domain-finetune' },
});

async function freshStore() {
  return new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'registry-')));
}

test('versions are numbered per model and never overwritten', async () => {
  const store = await freshStore();
  const v1 = await registerVersion(store, 'spam', entry('r1', 0.8));
  const v2 = await registerVersion(store, 'spam', entry('r2', 0.85));
  await registerVersion(store, 'other', entry('r3', 0.5));
  expect([v1.version, v2.version]).toEqual([1, 2]);
  expect(await listVersions(store, 'spam')).toEqual([1, 2]);
  expect(await listModels(store)).toEqual(['other', 'spam']);
  expect((await getVersion(store, 'spam', 1)).lineage.runId).toBe('r1');
});

test('promote moves the champion and keeps the previous one; rollback restores it; nothing is lost', async () => {
  const store = await freshStore();
  for (const [run, f1] of [['r1', 0.8], ['r2', 0.85], ['r3', 0.9]] as const) await registerVersion(store, 'spam', entry(run, f1));
  await promote(store, 'spam', 1, 'first');
  await promote(store, 'spam', 3, 'better on new data');
  expect(await getAliases(store, 'spam')).toMatchObject({ champion: 3, previous: 1 });
  const rolled = await rollback(store, 'spam', 'regression in production');
  expect(rolled).toMatchObject({ champion: 1, previous: 3 });
  expect(rolled.history.map((h) => `${h.action}:${h.champion}`)).toEqual(['promote:1', 'promote:3', 'rollback:1']);
  expect(await listVersions(store, 'spam')).toEqual([1, 2, 3]);
  // a second rollback undoes the first
  expect(await rollback(store, 'spam')).toMatchObject({ champion: 3, previous: 1 });
});

test('bad requests are named and change nothing', async () => {
  const store = await freshStore();
  await expect(rollback(store, 'spam')).rejects.toThrow('model "spam" has no previous champion to roll back to (nothing was promoted yet)');
  await expect(promote(store, 'spam', 7)).rejects.toThrow('model "spam" has no version 7; versions: none');
  await expect(registerVersion(store, 'Bad Name', entry('r', 1))).rejects.toThrow(/must be lowercase letters, digits and dashes/);
  await expect(registerVersion(store, 'spam', { ...entry('r', 1), outputs: {} })).rejects.toThrow(/has no "model" output/);
  expect(await listModels(store)).toEqual([]);
});

test('concurrent registrations each get their own version number; none is lost', async () => {
  const store = await freshStore();
  const registered = await Promise.all(Array.from({ length: 6 }, (_, i) => registerVersion(store, 'spam', entry(`r${i}`, i / 10))));
  expect(registered.map((v) => v.version).sort()).toEqual([1, 2, 3, 4, 5, 6]);
  expect(await listVersions(store, 'spam')).toEqual([1, 2, 3, 4, 5, 6]);
  for (const v of registered) expect((await getVersion(store, 'spam', v.version)).lineage.runId).toBe(v.lineage.runId);
});
