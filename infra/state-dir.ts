import { statSync } from 'node:fs';
import * as path from 'node:path';

// Where the local servers keep their state. Found the way git finds `.git`: the nearest `.tempered`
// folder in the working directory or above it, so every command works from any folder of a
// project. Light on purpose: `--help` and `validate` load this and nothing heavier.

/** Name of the state folder `tempered up` creates. */
export const STATE_DIR_NAME = '.tempered';

/** Ports of the local servers. Defaults: Temporal 7233 (UI 8233), MinIO 9000 (console 9001). */
export interface ServerPorts {
  temporal: number;
  temporalUi: number;
  minio: number;
  minioConsole: number;
}

export const DEFAULT_PORTS: ServerPorts = { temporal: 7233, temporalUi: 8233, minio: 9000, minioConsole: 9001 };

/**
 * The state directory: `TEMPERED_STATE_DIR` if set, else the nearest `.tempered` folder in `cwd`
 * or one of its parents, else `<cwd>/.tempered` (where `tempered up` creates it).
 */
export function defaultStateDir(cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPERED_STATE_DIR) return path.resolve(cwd, env.TEMPERED_STATE_DIR);
  return findStateDirAbove(cwd) ?? path.join(path.resolve(cwd), STATE_DIR_NAME);
}

/** The nearest `.tempered` folder in `dir` or above it. */
export function findStateDirAbove(dir: string): string | undefined {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const candidate = path.join(current, STATE_DIR_NAME);
    if (isDirectory(candidate)) return candidate;
    if (path.dirname(current) === current) return undefined;
  }
}

function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}
