import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

// Runs the real `tempered` command (from source, through tsx) as a user would.

export const ROOT = path.resolve(__dirname, '../..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Spawns `tempered <args>` and resolves when it exits. */
export function tempered(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000, cwd = ROOT): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTempered(args, env, cwd);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tempered ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `tempered <args>` and leaves it running (workers). */
export function spawnTempered(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): ChildProcess {
  // tsx by its own path: a `cwd` outside the repository cannot resolve the package name.
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
  return spawn(process.execPath, ['--import', tsx, path.join(ROOT, 'cli/main.ts'), ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
