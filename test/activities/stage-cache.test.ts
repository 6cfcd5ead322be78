import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { findReusable, rememberResult, stageCacheKey } from '../../activities/stage-cache';
import { commitManifest, FileArtifactStore } from '../../activities/store';
import type { StageInput } from '../../workflows/types';

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
