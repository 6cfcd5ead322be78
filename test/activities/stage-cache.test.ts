import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { findReusable, rememberResult, stageCacheKey } from '../../activities/stage-cache';
import { commitManifest, FileArtifactStore } from '../../activities/store';
import type { StageInput, StageResult } from '../../workflows/types';

// The stage cache's index on a real file store: what a hit needs, and that a damaged entry is a
// miss that the recomputed result repairs.

const input = (runId: string): StageInput => ({
  runId, pipeline: 'p', stage: 's', type: 'noop', config: {}, inputs: {}, dataInputs: [],
  outputPrefix: `runs/p/${runId}/s/`, baseDir: '/tmp', seed: 1, cacheKey: 'digest-1', cache: true,
});

async function committedRun(store: FileArtifactStore, runId: string) {
  const out = await store.put(`runs/p/${runId}/s/out.txt`, 'hello', 'text/plain');
  const { manifest } = await commitManifest(store, `runs/p/${runId}/s/`, {
    runId, pipeline: 'p', stage: 's', type: 'noop', cacheKey: 'digest-1', outputs: { out }, metrics: {}, inputs: {},
  });
  await rememberResult(store, input(runId), manifest);
  return manifest;
}

test('a remembered result is found again, and only with the same source fingerprint', async () => {
  const store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-cache-')));
  const manifest = await committedRun(store, 'r1');
  const hit = await findReusable(store, input('r2'));
  expect(hit.result?.manifest).toEqual(manifest);
  expect(stageCacheKey(input('r2'), 'sources-a')).not.toBe(stageCacheKey(input('r2')));
  expect((await findReusable(store, input('r2'), 'sources-a')).result).toBeUndefined();
});

test('a truncated cache entry is a miss naming the entry, and the next result repairs it', async () => {
  const store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-cache-')));
  await committedRun(store, 'r1');
  const key = `cache/${stageCacheKey(input('r2'))}.json`;
  const whole = (await store.readKey(key, 'application/json'))!.body.toString('utf8');
  await store.put(key, whole.slice(0, whole.length / 2), 'application/json');

  const miss = await findReusable(store, input('r2'));
  expect(miss.result).toBeUndefined();
  expect(miss).toMatchObject({ miss: expect.stringMatching(new RegExp(`^earlier cache entry ${key} is damaged`)) });

  await committedRun(store, 'r3'); // the recomputed result is remembered under the same key
  expect((await findReusable(store, input('r4'))).result).toBeDefined();
});

test('the pipeline seed is part of the key', () => {
  expect(stageCacheKey({ ...input('r'), seed: 2 })).not.toBe(stageCacheKey(input('r')));
});

test('a result resume names is reused only if this run gives it the inputs it was computed from', async () => {
  const store = new FileArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'tempered-cache-')));
  const commit = async (runId: string, stage: string, text: string, inputs: Record<string, StageResult['manifest']> = {}) => {
    const out = await store.put(`runs/p/${runId}/${stage}/out.txt`, text, 'text/plain');
    return commitManifest(store, `runs/p/${runId}/${stage}/`, { runId, pipeline: 'p', stage, type: 'noop', cacheKey: 'digest-1', outputs: { out }, metrics: {}, inputs });
  };
  const upstreamThen = await commit('old', 'up', 'data as it was');
  const downstream = await commit('old', 'down', 'derived', { up: upstreamThen.manifest });
  const reusing = (up: StageResult): StageInput => ({ ...input('new'), stage: 'down', inputs: { up }, reuse: { runId: 'old', manifest: downstream.manifest } });

  // Upstream recomputed to the same bytes (a new manifest, same outputs): reused.
  const same = await commit('new', 'up', 'data as it was');
  expect((await findReusable(store, reusing(same))).result?.manifest).toEqual(downstream.manifest);

  // Upstream recomputed to other bytes (its earlier result failed verification and the data changed): recomputed, saying why.
  const other = await commit('new2', 'up', 'data as it is now');
  const miss = await findReusable(store, reusing(other));
  expect(miss.result).toBeUndefined();
  expect(miss).toMatchObject({ miss: 'earlier result of run old was computed from other inputs (up changed since); recomputing' });
});
