// The stage commit protocol (ARCHITECTURE.md, invariant 3). A stage writes its outputs under its fixed
// `outputPrefix`, then `commitManifest` writes `<outputPrefix>manifest.json` LAST: the manifest's
// presence is the commit. A retried attempt calls `readCommittedManifest` first and returns the
// committed result, or, finding none, redoes the work and overwrites whatever partial output exists.
import { z } from 'zod';
import type { ArtifactRef, StageManifest, StageResult } from '../../workflows/types';
import type { ArtifactStore } from './artifact-store';
import { MalformedArtifactError } from './errors';

const MANIFEST_NAME = 'manifest.json';
const MANIFEST_MEDIA_TYPE = 'application/json';

const artifactRefSchema = z.object({
  uri: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  mediaType: z.string(),
});

const stageManifestSchema = z.object({
  apiVersion: z.literal('tempered.dev/v1'),
  runId: z.string(),
  pipeline: z.string(),
  stage: z.string(),
  type: z.string(),
  cacheKey: z.string(),
  outputs: z.record(z.string(), artifactRefSchema),
  metrics: z.record(z.string(), z.unknown()),
  inputs: z.record(z.string(), artifactRefSchema),
  createdAt: z.string(),
});

/** The manifest's key: `<outputPrefix>manifest.json` (a missing trailing `/` is added). */
export function manifestKey(outputPrefix: string): string {
  return `${outputPrefix === '' || outputPrefix.endsWith('/') ? outputPrefix : `${outputPrefix}/`}${MANIFEST_NAME}`;
}

/**
 * The committed result under `outputPrefix`, or undefined if the stage has not committed. Also
 * undefined when a committed output is missing or has the wrong size, so the stage redoes the work
 * rather than hand on a ref that cannot be read. Throws `MalformedArtifactError` for a manifest
 * that does not parse: nothing this module writes looks like that, so it needs a human.
 */
export async function readCommittedManifest(
  store: ArtifactStore,
  outputPrefix: string,
): Promise<StageResult | undefined> {
  const found = await store.readKey(manifestKey(outputPrefix), MANIFEST_MEDIA_TYPE);
  if (found === undefined) return undefined;
  let manifest: StageManifest;
  try {
    manifest = stageManifestSchema.parse(JSON.parse(found.body.toString('utf8')));
  } catch (err) {
    const reason = err instanceof z.ZodError ? z.prettifyError(err) : (err as Error).message;
    throw new MalformedArtifactError(found.ref.uri, undefined, `${reason}; delete it to rerun the stage`);
  }
  const present = await Promise.all(Object.values(manifest.outputs).map((ref) => isPresent(store, ref)));
  if (present.includes(false)) return undefined;
  return { outputs: manifest.outputs, metrics: manifest.metrics, manifest: found.ref };
}

/**
 * Commits a stage: writes its manifest (with `apiVersion` and `createdAt` added) under
 * `outputPrefix`. Call it after every output is written. Returns the result to hand downstream,
 * whose `manifest` ref comes from the write, since a manifest cannot contain its own digest.
 */
export async function commitManifest(
  store: ArtifactStore,
  outputPrefix: string,
  manifestBody: Omit<StageManifest, 'apiVersion' | 'createdAt'>,
): Promise<StageResult> {
  const manifest: StageManifest = {
    apiVersion: 'tempered.dev/v1',
    ...manifestBody,
    createdAt: new Date().toISOString(),
  };
  const ref = await store.put(manifestKey(outputPrefix), `${JSON.stringify(manifest, null, 2)}\n`, MANIFEST_MEDIA_TYPE);
  return { outputs: manifest.outputs, metrics: manifest.metrics, manifest: ref };
}

async function isPresent(store: ArtifactStore, ref: ArtifactRef): Promise<boolean> {
  const stat = await store.stat(store.keyFromUri(ref.uri));
  return stat?.bytes === ref.bytes;
}
