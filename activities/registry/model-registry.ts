import type { ArtifactRef, Metrics } from '../../workflows/types';
import type { ArtifactStore } from '../store';

// The model registry, kept in the artifact store beside the artifacts it points at:
//   models/<name>/versions/<n>.json   one immutable record per registered model (never deleted)
//   models/<name>/aliases.json        { champion, previous, history }: rewritten whole, so a
//                                     promotion or rollback is one atomic object write
// Versions are numbered 1, 2, ... per name. Writers are expected to be serialized (continual
// cycles run one at a time under their schedule's overlap policy); a version number that is
// already taken is never overwritten.

/** One registered model. */
export interface ModelVersion {
  name: string;
  version: number;
  createdAt: string;
  /** The model stage's outputs (model, weights, adapter?, tokenizer). */
  outputs: Record<string, ArtifactRef>;
  metrics: Metrics;
  lineage: { runId: string; pipeline: string; stage: string; specDigest?: string; parentVersion?: number; dataWatermark?: unknown };
}

/** Which versions the aliases point at, and how they got there. */
export interface Aliases {
  champion?: number;
  previous?: number;
  history: Array<{ at: string; action: 'promote' | 'rollback'; champion: number; previous?: number; reason?: string }>;
}

/** A registry operation that cannot be done as asked (non-retryable). */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly nonRetryable = true;
}

/** Another writer took the version number first: retryable (the next attempt takes the next number). */
export class VersionTakenError extends Error {
  override readonly name = 'VersionTakenError';
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/;
const versionsPrefix = (name: string) => `models/${name}/versions/`;
const aliasesKey = (name: string) => `models/${name}/aliases.json`;

function checkName(name: string): void {
  if (!NAME.test(name)) throw new RegistryError(`model name ${JSON.stringify(name)} must be lowercase letters, digits and dashes, e.g. "spam-classifier"`);
}

/** Names of every registered model, sorted. */
export async function listModels(store: ArtifactStore): Promise<string[]> {
  const keys = await store.list('models/');
  return [...new Set(keys.map((k) => k.split('/')[1]).filter(Boolean))].sort();
}

/** Version numbers of a model, ascending. */
export async function listVersions(store: ArtifactStore, name: string): Promise<number[]> {
  checkName(name);
  const keys = await store.list(versionsPrefix(name));
  return keys
    .map((k) => /\/(\d+)\.json$/.exec(k)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** One version's record. */
export async function getVersion(store: ArtifactStore, name: string, version: number): Promise<ModelVersion> {
  checkName(name);
  const found = await store.readKey(`${versionsPrefix(name)}${version}.json`, 'application/json');
  if (!found) throw new RegistryError(`model "${name}" has no version ${version}; versions: ${(await listVersions(store, name)).join(', ') || 'none'}`);
  return JSON.parse(found.body.toString('utf8')) as ModelVersion;
}

/** The aliases of a model (empty history if never promoted). */
export async function getAliases(store: ArtifactStore, name: string): Promise<Aliases> {
  checkName(name);
  const found = await store.readKey(aliasesKey(name), 'application/json');
  return found ? (JSON.parse(found.body.toString('utf8')) as Aliases) : { history: [] };
}

/** Registers a new version (the next number) and returns it. Does not promote it. */
export async function registerVersion(store: ArtifactStore, name: string, entry: Omit<ModelVersion, 'name' | 'version' | 'createdAt'>): Promise<ModelVersion> {
  checkName(name);
  // A tfjs model is model.json + weights + tokenizer; a torch model its torch-model.json and a Hugging Face directory under hf/.
  const torch = entry.outputs['torch-model.json'] !== undefined;
  const required = torch ? ['torch-model.json', Object.keys(entry.outputs).find((o) => o.startsWith('hf/')) ?? 'hf/…'] : ['model', 'weights', 'tokenizer'];
  for (const output of required) {
    if (!entry.outputs[output]) throw new RegistryError(`cannot register stage "${entry.lineage.stage}" as a model: it has no "${output}" output (is it a finetune, distill or quantize stage?)`);
  }
  // Claim the next number with an atomic create: of concurrent registrations each gets its own.
  const existing = await listVersions(store, name);
  let version = (existing[existing.length - 1] ?? 0) + 1;
  for (let tries = 0; tries < 20; tries++, version++) {
    const record: ModelVersion = { name, version, createdAt: new Date().toISOString(), ...entry };
    if (await store.create(`${versionsPrefix(name)}${version}.json`, JSON.stringify(record, null, 2), 'application/json')) return record;
  }
  throw new VersionTakenError(`20 version numbers of "${name}" after ${version - 20} were taken while registering; retry`);
}

/** Makes `version` the champion; the old champion becomes `previous`. One atomic write. */
export async function promote(store: ArtifactStore, name: string, version: number, reason?: string): Promise<Aliases> {
  await getVersion(store, name, version);
  const aliases = await getAliases(store, name);
  if (aliases.champion === version) return aliases;
  const next: Aliases = {
    champion: version,
    previous: aliases.champion,
    history: [...aliases.history, { at: new Date().toISOString(), action: 'promote', champion: version, previous: aliases.champion, reason }],
  };
  await store.put(aliasesKey(name), JSON.stringify(next, null, 2), 'application/json');
  return next;
}

/** Restores the previous champion (the current one becomes `previous`, so a second rollback undoes the first). */
export async function rollback(store: ArtifactStore, name: string, reason?: string): Promise<Aliases> {
  const aliases = await getAliases(store, name);
  if (aliases.champion === undefined || aliases.previous === undefined) {
    throw new RegistryError(`model "${name}" has no previous champion to roll back to${aliases.champion === undefined ? ' (nothing was promoted yet)' : ''}`);
  }
  const next: Aliases = {
    champion: aliases.previous,
    previous: aliases.champion,
    history: [...aliases.history, { at: new Date().toISOString(), action: 'rollback', champion: aliases.previous, previous: aliases.champion, reason }],
  };
  await store.put(aliasesKey(name), JSON.stringify(next, null, 2), 'application/json');
  return next;
}

/**
 * The version a reference names: `<name>` or `<name>@champion` (the champion), `<name>@previous`,
 * `<name>@<n>` or `<name>@v<n>`. What serving and export take, so that they follow the aliases.
 */
export async function resolveReference(store: ArtifactStore, reference: string): Promise<ModelVersion> {
  const at = reference.lastIndexOf('@');
  const [name, tag] = at < 0 ? [reference, 'champion'] : [reference.slice(0, at), reference.slice(at + 1)];
  checkName(name);
  const numbered = /^v?(\d+)$/.exec(tag);
  if (numbered) return getVersion(store, name, Number(numbered[1]));
  if (tag !== 'champion' && tag !== 'previous') throw new RegistryError(`model reference ${JSON.stringify(reference)}: after "@" give champion, previous or a version number (e.g. ${name}@3)`);
  const aliases = await getAliases(store, name);
  const version = aliases[tag];
  if (version === undefined) {
    const versions = await listVersions(store, name);
    if (versions.length === 0) throw new RegistryError(`no model "${name}" is registered ("tempered models list" shows the registry)`);
    throw new RegistryError(`model "${name}" has no ${tag} yet (versions: ${versions.join(', ')}); name a version, e.g. ${name}@${versions[versions.length - 1]}, or promote one`);
  }
  return getVersion(store, name, version);
}
