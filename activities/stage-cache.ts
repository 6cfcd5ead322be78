import { createHash } from 'node:crypto';
import type { ArtifactRef, StageInput, StageManifest, StageResult } from '../workflows/types';
import type { ArtifactStore } from './store';

// The stage cache (ARCHITECTURE.md, invariant 4) and explicit reuse by `tempered resume`. A stage's full
// cache key is sha256(type + canonical config + implementation version — the plan's digest — and
// the sha256 of every input artifact). The index lives in the store: `cache/<key>.json` names the
// committed manifest of the run that computed it. Nothing is reused unless every output it names
// still reads back with its sha256.

/** What `cache/<key>.json` holds. */
interface CacheEntry {
  runId: string;
  pipeline: string;
  stage: string;
  manifest: ArtifactRef;
}

/**
 * The stage's full cache key: its config digest, the digests of everything it reads from the store,
 * and — for a stage that reads outside the store — the fingerprint of what its sources resolve to.
 */
export function stageCacheKey(input: StageInput, sourceFingerprint?: string): string {
  const hash = createHash('sha256').update(input.cacheKey);
  if (sourceFingerprint !== undefined) hash.update(`\nsources=${sourceFingerprint}`);
  for (const name of Object.keys(input.inputs).sort()) {
    const { outputs } = input.inputs[name];
    for (const output of Object.keys(outputs).sort()) hash.update(`\n${name}.${output}=${outputs[output].sha256}`);
  }
  return hash.digest('hex');
}

const entryKey = (key: string) => `cache/${key}.json`;

/** A verified earlier result to reuse, or undefined. Reasons for not reusing come back too. */
export async function findReusable(
  store: ArtifactStore,
  input: StageInput,
  sourceFingerprint?: string,
): Promise<{ result: StageResult; fromRun: string } | { result?: undefined; miss: string }> {
  let candidate: { manifest: ArtifactRef; runId: string } | undefined;
  if (input.reuse) {
    candidate = input.reuse;
  } else if (input.cache) {
    const key = entryKey(stageCacheKey(input, sourceFingerprint));
    const found = await store.readKey(key, 'application/json');
    if (!found) return { miss: 'not in cache' };
    const entry = parseEntry(found.body);
    // A damaged entry (a truncated write, a hand edit) is a miss: the stage recomputes and its
    // result overwrites the entry.
    if (!entry) return { miss: `earlier cache entry ${key} is damaged (not a cache entry); recomputing` };
    candidate = { manifest: entry.manifest, runId: entry.runId };
  } else {
    return { miss: 'cache off' };
  }
  try {
    const manifest = await store.readJson<StageManifest>(candidate.manifest);
    // Read every output through the verifying stream: a flipped byte anywhere means recompute.
    for (const ref of Object.values(manifest.outputs)) {
      for await (const chunk of store.openRead(ref)) void chunk;
    }
    return { result: { outputs: manifest.outputs, metrics: manifest.metrics, manifest: candidate.manifest }, fromRun: candidate.runId };
  } catch (err) {
    return { miss: `earlier result of run ${candidate.runId} failed verification (${(err as Error).message}); recomputing` };
  }
}

function parseEntry(body: Buffer): CacheEntry | undefined {
  try {
    const entry = JSON.parse(body.toString('utf8')) as Partial<CacheEntry> | null;
    const manifest = entry?.manifest;
    if (typeof entry?.runId !== 'string' || typeof manifest?.uri !== 'string' || typeof manifest.sha256 !== 'string') return undefined;
    return entry as CacheEntry;
  } catch {
    return undefined;
  }
}

/** Records a committed result under the stage's cache key. */
export async function rememberResult(store: ArtifactStore, input: StageInput, manifest: ArtifactRef, sourceFingerprint?: string): Promise<void> {
  const entry: CacheEntry = { runId: input.runId, pipeline: input.pipeline, stage: input.stage, manifest };
  await store.put(entryKey(stageCacheKey(input, sourceFingerprint)), JSON.stringify(entry), 'application/json');
}
