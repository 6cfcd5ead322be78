import { createHash } from 'node:crypto';
import type { ArtifactRef, StageInput, StageManifest, StageResult } from '../workflows/types';
import type { ArtifactStore } from './store';

// The stage cache (ARCHITECTURE.md, invariant 4) and explicit reuse by `tempered resume`. A stage's full
// cache key is sha256(type + canonical config + implementation version — the plan's digest — the
// pipeline seed, the sha256 of every input artifact and, for a stage that reads outside the store,
// the fingerprint of its sources). The index lives in the store: `cache/<key>.json` names the
// committed manifest of the run that computed it. Nothing is reused unless every output it names
// still reads back with its sha256; a result `resume` reuses must also have been computed from
// the inputs this run gives it.

/** What `cache/<key>.json` holds. */
interface CacheEntry {
  runId: string;
  pipeline: string;
  stage: string;
  manifest: ArtifactRef;
}

/**
 * The stage's full cache key: its config digest, the pipeline seed, the digests of everything it reads from the store,
 * and — for a stage that reads outside the store — the fingerprint of what its sources resolve to.
 */
export function stageCacheKey(input: StageInput, sourceFingerprint?: string): string {
  // The seed is not in the config digest, yet sampling, splitting, augmenting and training draw from it.
  const hash = createHash('sha256').update(input.cacheKey).update(`\nseed=${input.seed}`);
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
  let manifest: StageManifest;
  try {
    manifest = await verifyCommittedResult(store, candidate.manifest);
  } catch (err) {
    return { miss: `earlier result of run ${candidate.runId} failed verification (${(err as Error).message}); recomputing` };
  }
  if (input.reuse) {
    // `resume` names the result to reuse before its upstream stages ran: one that was recomputed
    // instead (its earlier result failed verification) may have given other outputs.
    const changed = await changedInputs(store, manifest, input);
    if (changed.length > 0) {
      return { miss: `earlier result of run ${candidate.runId} was computed from other inputs (${changed.join(', ')} changed since); recomputing` };
    }
  }
  return { result: { outputs: manifest.outputs, metrics: manifest.metrics, manifest: candidate.manifest }, fromRun: candidate.runId };
}

/**
 * Reads a committed stage result back as reuse does: the manifest and every output it names
 * through the verifying stream, so a missing artifact or a flipped byte anywhere throws.
 */
export async function verifyCommittedResult(store: ArtifactStore, manifestRef: ArtifactRef): Promise<StageManifest> {
  const manifest = await store.readJson<StageManifest>(manifestRef);
  for (const ref of Object.values(manifest.outputs)) {
    for await (const chunk of store.openRead(ref)) void chunk;
  }
  return manifest;
}

/** Upstream stages whose outputs now differ from those the earlier result was computed from. */
async function changedInputs(store: ArtifactStore, manifest: StageManifest, input: StageInput): Promise<string[]> {
  const digests = (outputs: Record<string, ArtifactRef>) =>
    Object.keys(outputs)
      .sort()
      .map((name) => `${name}=${outputs[name].sha256}`)
      .join(',');
  const recorded = manifest.inputs ?? {};
  const names = [...new Set([...Object.keys(recorded), ...Object.keys(input.inputs)])].sort();
  const changed: string[] = [];
  for (const name of names) {
    if (!recorded[name] || !input.inputs[name]) {
      changed.push(name);
      continue;
    }
    try {
      const then = await store.readJson<StageManifest>(recorded[name]);
      if (digests(then.outputs) !== digests(input.inputs[name].outputs)) changed.push(name);
    } catch {
      changed.push(`${name} (its earlier manifest is unreadable)`);
    }
  }
  return changed;
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
