// Running a command stage's program where it cannot see the worker: in a fresh PID namespace with
// its own /proc, so `/proc/$PPID/environ` (or any /proc/<pid>/environ) is not the worker's
// environment, which holds the store's and Temporal's credentials.
//
//   unshare --user --map-current-user --pid --fork --mount-proc --kill-child   (util-linux)
//     [setpriv --bounding-set=-all --inh-caps=-all --ambient-caps=-all]        (when the worker is root)
//       node -e INIT -- <program> <args>
//
// The user namespace lets an unprivileged worker create the others. Inside, the program has no
// capabilities (an unprivileged user loses them at exec; root drops them through setpriv), so it
// can neither unmount the fresh /proc to uncover the worker's nor mount another. INIT is PID 1 of
// the namespace: a PID 1 ignores signals it has no handler for, so the program must not be it, or
// SIGTERM would not stop a Python script. INIT starts the program, reports how it ended on fd 3
// (a shell's `wait` would confuse "killed by SIGKILL" with "exited 137") and exits with it; then
// the kernel kills whatever the program left in the namespace. Everything runs in the process
// group Tempered signals, so cancellation reaches the program directly.
//
// Where this cannot work (not Linux, no util-linux, user namespaces disabled or restricted by
// AppArmor/seccomp), programs run as before, with a one-time warning.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { CommandSettingError } from './errors';

/** How a worker isolates programs: `auto` (default) when possible, `required` fails stages where not, `off` never. */
export type IsolationMode = 'auto' | 'required' | 'off';

/** The worker setting choosing the IsolationMode. */
export const ISOLATION_VARIABLE = 'TEMPERED_COMMAND_ISOLATION';

/** How this worker starts programs. */
export type Isolation =
  | { kind: 'pid-namespace'; /** Put before the program's argv. */ prefix: readonly string[] }
  | { kind: 'none'; /** Why not. */ reason: string };

/** The namespace's PID 1: starts the program, reports `{exitCode, signal}` or `{spawnError}` on fd 3. */
export const INIT_SOURCE = `
const { spawn } = require('child_process'), { writeSync } = require('fs');
const [program, ...args] = process.argv.slice(1);
const report = (status) => { try { writeSync(3, JSON.stringify(status)); } catch {} };
const child = spawn(program, args, { stdio: ['ignore', 'inherit', 'inherit'] });
child.on('error', (err) => { report({ spawnError: err.code || String(err) }); process.exit(127); });
child.on('exit', (exitCode, signal) => { report({ exitCode, signal }); process.exit(exitCode ?? 128); });
`;

/** What INIT reported. */
export type InitReport = { exitCode: number | null; signal: NodeJS.Signals | null } | { spawnError: string };

/** Parses INIT's fd-3 report; undefined if it wrote none (it was killed) or something else. */
export function parseInitReport(text: string): InitReport | undefined {
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (typeof value.spawnError === 'string') return { spawnError: value.spawnError };
    if ((typeof value.exitCode === 'number' || value.exitCode === null) && (typeof value.signal === 'string' || value.signal === null)) {
      return { exitCode: value.exitCode, signal: value.signal as NodeJS.Signals | null };
    }
  } catch {
    // not a report
  }
  return undefined;
}

/** The argv prefix for a worker running as `uid` (root needs setpriv to shed its capabilities). */
export function isolationPrefix(uid: number, node = process.execPath): string[] {
  const unshare = ['unshare', '--user', uid === 0 ? '--map-root-user' : '--map-current-user', '--pid', '--fork', '--mount-proc', '--kill-child'];
  const dropCapabilities = uid === 0 ? ['setpriv', '--bounding-set=-all', '--inh-caps=-all', '--ambient-caps=-all'] : [];
  return [...unshare, ...dropCapabilities, node, '-e', INIT_SOURCE, '--'];
}

/**
 * Run as the program, it says whether it is isolated: its parent is PID 1 (INIT, so the worker
 * is not in its /proc) and it has no capabilities (so it cannot uncover the worker's /proc).
 */
const PROBE_SOURCE = `
const status = require('fs').readFileSync('/proc/self/status', 'utf8');
const capEff = /CapEff:\\s*([0-9a-f]+)/.exec(status)?.[1];
console.log(JSON.stringify({ ppid: process.ppid, noCapabilities: capEff !== undefined && /^0+$/.test(capEff) }));
`;

let probed: Promise<Isolation> | undefined;
let warned = false;

/**
 * How this worker can start programs, found once per process by running a probe program through
 * the namespaces (about 0.2 s). `mode: 'off'` skips the probe.
 */
export function workerIsolation(mode: IsolationMode): Promise<Isolation> {
  if (mode === 'off') return Promise.resolve({ kind: 'none', reason: `${ISOLATION_VARIABLE}=off` });
  probed ??= probeIsolation();
  return probed;
}

/** Warns once per process that programs run unisolated, on stderr, naming why and what still holds. */
export function warnUnisolated(reason: string, warn: (message: string) => void = (m) => console.warn(m)): void {
  if (warned) return;
  warned = true;
  warn(
    `tempered: command stages on this worker run without a PID namespace (${reason}): a program can read the worker's ` +
      `environment through /proc/<pid>/environ. Secret values are still redacted from everything Tempered stores and reports. ` +
      `To isolate programs, install util-linux (unshare, setpriv) and allow user namespaces; ${ISOLATION_VARIABLE}=off silences this.`,
  );
}

/** Runs the probe through the namespaces; any failure means programs run unisolated. */
export async function probeIsolation(uid = process.getuid?.() ?? -1): Promise<Isolation> {
  if (process.platform !== 'linux' || uid < 0) return { kind: 'none', reason: `not Linux (${process.platform})` };
  const prefix = isolationPrefix(uid);
  const [program, ...args] = [...prefix, process.execPath, '-e', PROBE_SOURCE];
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  (child.stdio[3] as Readable).resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    const [code] = (await Promise.race([once(child, 'close'), once(child, 'error').then(([err]) => Promise.reject(err as Error))])) as [number | null];
    const result = parseProbe(stdout);
    if (code === 0 && result?.ppid === 1 && result.noCapabilities) return { kind: 'pid-namespace', prefix };
    const said = stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300);
    return { kind: 'none', reason: `the probe through unshare ${code === 0 ? `was not isolated (${stdout.trim()})` : `failed${said ? `: ${said}` : ` with code ${code}`}`}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { kind: 'none', reason: code === 'ENOENT' ? 'unshare (util-linux) is not installed' : `unshare could not start: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

function parseProbe(stdout: string): { ppid: number; noCapabilities: boolean } | undefined {
  try {
    return JSON.parse(stdout.trim().split('\n').pop() ?? '') as { ppid: number; noCapabilities: boolean };
  } catch {
    return undefined;
  }
}

/** Parses TEMPERED_COMMAND_ISOLATION: `auto` (also when unset), `required` or `off`. */
export function parseIsolationMode(value: string | undefined): IsolationMode {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '') return 'auto';
  if (v === 'auto' || v === 'off' || v === 'required') return v;
  throw new CommandSettingError(ISOLATION_VARIABLE, value!, 'auto (the default), required or off');
}
