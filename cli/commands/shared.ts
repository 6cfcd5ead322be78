import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { ArtifactStore } from '../../activities/store';
import type { Plan } from '../../pipelines/plan';
import { defaultStateDir } from '../../infra/state-dir';

// What every command shares. This module and the command files stay light — commander, node
// built-ins and types — so `tempered --help` and `validate` start fast; anything heavier (the
// Temporal client, the AWS SDK, tfjs) is imported inside the action that needs it.

/** Exit codes: 0 success, 1 a run or command failed, 2 the input (spec, arguments) is wrong, 130/143 a local run cancelled by SIGINT/SIGTERM. */
export const EXIT = { ok: 0, failed: 1, badInput: 2, interrupted: 130, terminated: 143 } as const;

export const log = (line: string) => process.stderr.write(`${line}\n`);

/** Wrong arguments: exit 2 with the message. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The folder holding package.json, wherever Tempered is installed (source or dist/). */
export const PACKAGE_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..');

/** The examples shipped with Tempered. */
export const EXAMPLES_DIR = path.join(PACKAGE_ROOT, 'pipelines/examples');

/** Tempered's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The state directory: `--state-dir`, else `TEMPERED_STATE_DIR`, else the nearest `.tempered` above the working directory. */
export function stateDirOf(cli: Command): string {
  const given = cli.opts<{ stateDir?: string }>().stateDir;
  return given ? path.resolve(given) : defaultStateDir();
}

/** A commander argument parser for an integer in [min, max]; anything else is an argument error (exit 2). */
export function integerArgument(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
}

export async function loadPlan(specFile: string, options: { noCache?: boolean } = {}): Promise<Plan> {
  const [{ loadSpecFile }, { planPipeline }, { queuePrefixFromEnv }] = await Promise.all([
    import('../../pipelines/load'),
    import('../../pipelines/plan'),
    import('../../infra/queue-prefix'),
  ]);
  return planPipeline(await loadSpecFile(specFile), { queuePrefix: queuePrefixFromEnv(), ...options });
}

/** The artifact store: TEMPERED_STORE, else the local MinIO. */
export async function openStore(stateDir: string): Promise<ArtifactStore> {
  const [{ readServers }, { applyLocalStoreEnv }, { createStore, storeConfigFromEnv }] = await Promise.all([
    import('../../infra/servers'),
    import('../../infra/config'),
    import('../../activities/store'),
  ]);
  if (!process.env.TEMPERED_STORE && (await readServers(stateDir))) await applyLocalStoreEnv(stateDir);
  return createStore(storeConfigFromEnv());
}

export async function withStore(cli: Command, fn: (store: ArtifactStore) => Promise<void>): Promise<void> {
  const store = await openStore(stateDirOf(cli));
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

export async function withClient(cli: Command, fn: (client: Client) => Promise<void>): Promise<void> {
  const { connectClient, temporalSettings } = await import('../../infra/config');
  const client = await connectClient(await temporalSettings(stateDirOf(cli)));
  try {
    await fn(client);
  } finally {
    await client.connection.close();
  }
}
