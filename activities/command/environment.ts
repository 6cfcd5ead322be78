// What a command stage's program is started with: its arguments and its environment.
import { deviceEnvironment } from '../gpu-slots';
import { ReservedNameError } from './errors';

/** The directories a program reads from and writes to. */
export interface WorkDirs {
  /** Staged upstream outputs, with `manifest.json` describing them. */
  inputs: string;
  /** Where the program leaves its declared outputs. */
  outputs: string;
}

/** `{inputs}` and `{outputs}` in any element replaced by the directories; nothing else is touched. */
export function expandCommand(command: readonly string[], dirs: WorkDirs): string[] {
  return command.map((arg) => arg.replaceAll('{inputs}', dirs.inputs).replaceAll('{outputs}', dirs.outputs));
}

/**
 * Worker variables a program does not inherit: everything that configures Tempered's own
 * connections, credentials included (AWS_*, TEMPERED_*, TEMPORAL_*).
 *
 * Why: a program's output is stored as its log and quoted in failure messages, which enter
 * Temporal history; a script that prints its environment, or a library that dumps it in a crash
 * report, would otherwise leak the store's keys there. And libraries such as boto3 or s3fs pick up
 * AWS_* on their own: a program should not silently act with the worker's identity, nor be pointed
 * at the worker's MinIO by AWS_ENDPOINT_URL_S3. This is least privilege, not a sandbox: the program
 * runs as the worker's user and can read whatever that user can (~/.aws, instance metadata).
 * A worker operator lets named variables through with TEMPERED_COMMAND_PASS_ENV; a spec sets
 * non-secret values through `env`.
 */
export const SCRUBBED_ENV_PATTERN = /^(AWS_|TEMPERED_|TEMPORAL_)/i;

/** The worker setting listing variables programs inherit despite the scrubbing, comma-separated. */
export const PASS_ENV_VARIABLE = 'TEMPERED_COMMAND_PASS_ENV';

/** The variables Tempered sets for every program; a spec's `env` cannot override them. */
export interface TemperedVariables {
  TEMPERED_INPUTS: string;
  TEMPERED_OUTPUTS: string;
  TEMPERED_RUN_ID: string;
  TEMPERED_STAGE: string;
  TEMPERED_ATTEMPT: string;
  TEMPERED_SEED: string;
}

export interface ChildEnvironmentOptions {
  /** The worker's environment. */
  parent: NodeJS.ProcessEnv;
  /** The stage's `env` option. */
  spec: Record<string, string>;
  /** Scrubbed variables to keep anyway (exact names). */
  passEnv: readonly string[];
  tempered: TemperedVariables;
  /** The GPU devices the attempt holds on a gpu worker: the program's CUDA_VISIBLE_DEVICES. Default none (the variable is left as the worker and spec set it). */
  devices?: readonly string[];
}

/**
 * The program's environment: the worker's minus the scrubbed variables, then PYTHONUNBUFFERED=1 (so
 * progress lines arrive as they are printed, not when a pipe buffer fills), then the spec's `env`,
 * then CUDA_VISIBLE_DEVICES when the attempt holds GPUs, then the TEMPERED_* variables. Throws
 * `ReservedNameError` if the spec sets one of those.
 */
export function childEnvironment({ parent, spec, passEnv, tempered, devices }: ChildEnvironmentOptions): NodeJS.ProcessEnv {
  const reserved = Object.keys(spec).find((name) => Object.hasOwn(tempered, name));
  if (reserved !== undefined) {
    throw new ReservedNameError('env', reserved, 'is set by Tempered for every program', 'remove it from the stage\'s env; the program reads the value Tempered sets');
  }
  if (devices && Object.hasOwn(spec, 'CUDA_VISIBLE_DEVICES')) {
    throw new ReservedNameError('env', 'CUDA_VISIBLE_DEVICES', `is set by the gpu worker to the ${devices.length} device(s) this attempt holds (resources.gpu)`, 'remove it from the stage\'s env; ask for more GPUs with resources.gpu');
  }
  const keep = new Set(passEnv);
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && (!SCRUBBED_ENV_PATTERN.test(name) || keep.has(name))) env[name] = value;
  }
  return { ...env, PYTHONUNBUFFERED: '1', ...spec, ...deviceEnvironment(devices), ...tempered };
}

/** Parses TEMPERED_COMMAND_PASS_ENV (`AWS_PROFILE, AWS_REGION`) into names. */
export function parsePassEnv(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}
