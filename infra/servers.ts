import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { DEFAULT_PORTS, defaultStateDir, type ServerPorts } from './state-dir';
import { ensureTool, TOOLS } from './tools';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

// Local Temporal dev server and MinIO, started detached so they outlive the command that started
// them, with their state (SQLite file, object data) in a state directory so runs survive restarts.
// The state directory is private (0700): it holds every local run's data and the MinIO credentials,
// and the servers create their files with whatever umask they inherit (0644 data, 0755 folders),
// so only the folder's own mode keeps other users out. The servers are also started with umask 077.

/** What `up` leaves in `<stateDir>/servers.json`, so later commands find the servers. */
export interface LocalServers {
  stateDir: string;
  temporal: { address: string; uiUrl: string; namespace: string; pid: number };
  minio: { endpoint: string; consoleUrl: string; bucket: string; accessKeyId: string; secretAccessKey: string; pid: number };
}

export interface UpOptions {
  /** Directory for the SQLite file, MinIO data, logs and servers.json. Default `.tempered`. */
  stateDir?: string;
  ports?: Partial<ServerPorts>;
  log?: (line: string) => void;
}

const STATE_FILE = 'servers.json';

/** Starts both servers unless they are already up (then a no-op); waits until both answer. Makes the state directory private either way. */
export async function up(options: UpOptions = {}): Promise<LocalServers & { alreadyRunning: boolean }> {
  const stateDir = path.resolve(options.stateDir ?? defaultStateDir());
  const log = options.log ?? (() => {});
  await ensurePrivateDir(stateDir);
  await chmod(path.join(stateDir, STATE_FILE), 0o600).catch(() => undefined); // one an earlier version wrote
  const existing = await readServers(stateDir);
  if (existing && (await healthy(existing))) return { ...existing, alreadyRunning: true };
  if (existing) await down({ stateDir });

  const ports = { ...DEFAULT_PORTS, ...options.ports };
  for (const [name, port] of Object.entries(ports)) {
    if (!(await portFree(port))) {
      const own = await localServerOnPort(port);
      if (own) {
        throw new PortTakenError(
          `port ${port} (${name}) is held by Tempered's own local ${own.server} (pid ${own.pid}) started with the state directory ${own.stateDir}, not ${stateDir}. ` +
            `Use those servers with --state-dir ${own.stateDir} (or TEMPERED_STATE_DIR, or run from that project), or stop them with "tempered down --state-dir ${own.stateDir}"`,
        );
      }
      throw new PortTakenError(`port ${port} (${name}) is in use by another program; stop it or choose other ports (tempered up --help)`);
    }
  }
  const [temporalBin, minioBin] = [await ensureTool(TOOLS.temporal, log), await ensureTool(TOOLS.minio, log)];
  await ensurePrivateDir(path.join(stateDir, 'logs'));
  await ensurePrivateDir(path.join(stateDir, 'minio'));
  const credentials = (await readServers(stateDir, true))?.minio ?? {
    accessKeyId: 'tempered',
    secretAccessKey: randomBytes(18).toString('base64url'),
  };

  const temporalPid = await startTemporal(temporalBin, stateDir, ports);
  const minioPid = await startMinio(minioBin, stateDir, ports, credentials);
  const servers: LocalServers = {
    stateDir,
    temporal: { address: `127.0.0.1:${ports.temporal}`, uiUrl: `http://127.0.0.1:${ports.temporalUi}`, namespace: 'default', pid: temporalPid },
    minio: {
      endpoint: `http://127.0.0.1:${ports.minio}`,
      consoleUrl: `http://127.0.0.1:${ports.minioConsole}`,
      bucket: 'tempered',
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      pid: minioPid,
    },
  };
  // Credentials stay in the state file (mode 600), never in workflow inputs or logs.
  await writeState(stateDir, servers);
  await waitUntilHealthy(servers, 'temporal');
  await waitUntilHealthy(servers, 'minio');
  return { ...servers, alreadyRunning: false };
}

function startTemporal(binary: string, stateDir: string, ports: Pick<ServerPorts, 'temporal' | 'temporalUi'>): Promise<number> {
  return startDetached(binary, temporalServerArgs(path.join(stateDir, 'temporal.db'), ports), path.join(stateDir, 'logs', 'temporal.log'), {});
}

/**
 * The dev server's command line: its SQLite file, and the address it listens on (`host`, default
 * 127.0.0.1). Only 127.0.0.1 or 0.0.0.0 work: the dev server (CLI v1.5.1) binds its internal services
 * on `--ip` but dials them at 127.0.0.1, so any other address fails every call past the frontend
 * (test/support/netns-servers.ts, used by the multi-host test, binds 0.0.0.0).
 */
export function temporalServerArgs(dbFile: string, ports: Pick<ServerPorts, 'temporal' | 'temporalUi'>, host = '127.0.0.1'): string[] {
  return ['server', 'start-dev', '--db-filename', dbFile, '--ip', host,
    '--port', String(ports.temporal), '--ui-port', String(ports.temporalUi), '--log-level', 'error',
    // Eager activity dispatch: the worker that completes a workflow task gets the activity it
    // scheduled in the same response. Measured here: halves per-stage latency (~100 -> ~50 ms).
    '--dynamic-config-value', 'system.enableActivityEagerExecution=true',
    // Find runs by pipeline in the UI and in `tempered list --pipeline`.
    ...SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=Keyword`])];
}

function startMinio(
  binary: string,
  stateDir: string,
  ports: Pick<ServerPorts, 'minio' | 'minioConsole'>,
  credentials: { accessKeyId: string; secretAccessKey: string },
): Promise<number> {
  return startDetached(binary, minioServerArgs(path.join(stateDir, 'minio'), ports), path.join(stateDir, 'logs', 'minio.log'), minioServerEnv(credentials));
}

/** MinIO's command line: its data folder, and the address it listens on (`host`, default 127.0.0.1; the multi-host test binds its host's address). */
export function minioServerArgs(dataDir: string, ports: Pick<ServerPorts, 'minio' | 'minioConsole'>, host = '127.0.0.1'): string[] {
  return ['server', dataDir, '--address', `${host}:${ports.minio}`, '--console-address', `${host}:${ports.minioConsole}`, '--quiet'];
}

/** MinIO's environment: its root credentials, console on. */
export function minioServerEnv(credentials: { accessKeyId: string; secretAccessKey: string }): Record<string, string> {
  return { MINIO_ROOT_USER: credentials.accessKeyId, MINIO_ROOT_PASSWORD: credentials.secretAccessKey, MINIO_BROWSER: 'on' };
}

function waitUntilHealthy(servers: LocalServers, which: 'temporal' | 'minio'): Promise<void> {
  return which === 'temporal'
    ? waitFor('Temporal', () => temporalHealthy(servers.temporal.address), 60_000, path.join(servers.stateDir, 'logs', 'temporal.log'))
    : waitFor('MinIO', () => minioHealthy(servers.minio.endpoint), 60_000, path.join(servers.stateDir, 'logs', 'minio.log'));
}

/** Stops the servers recorded in the state directory. Returns false when none were recorded. */
export async function down(options: { stateDir?: string } = {}): Promise<boolean> {
  const stateDir = path.resolve(options.stateDir ?? defaultStateDir());
  const servers = await readServers(stateDir);
  if (!servers) return false;
  await Promise.all([stopProcess(servers.temporal.pid), stopProcess(servers.minio.pid)]);
  // Keep the file's credentials for the next `up` (the MinIO data is encrypted to them), mark pids gone.
  await writeState(stateDir, { ...servers, temporal: { ...servers.temporal, pid: 0 }, minio: { ...servers.minio, pid: 0 } });
  return true;
}

/** Stops just one server (fault-injection tests and maintenance); `up` starts it again. */
export async function stopServer(stateDir: string, which: 'temporal' | 'minio'): Promise<void> {
  // Read stopped servers too: stopping one while the other is down must still work.
  const servers = await readServers(stateDir, true);
  if (!servers) return;
  await stopProcess(servers[which].pid);
  const updated = { ...servers, [which]: { ...servers[which], pid: 0 } };
  await writeState(path.resolve(stateDir), updated);
}

/**
 * Starts one server that `stopServer` (or a crash) stopped, with the ports, credentials and state
 * (SQLite file, MinIO data) recorded in `<stateDir>/servers.json`, and waits until it answers.
 * A no-op when it is running and healthy. Records the new pid.
 */
export async function startServer(stateDir: string, which: 'temporal' | 'minio'): Promise<LocalServers> {
  stateDir = path.resolve(stateDir);
  const servers = await readServers(stateDir, true);
  if (!servers) throw new Error(`no servers recorded in ${stateDir}; start them with "tempered up"`);
  if (alive(servers[which].pid) && (which === 'temporal' ? await temporalHealthy(servers.temporal.address) : await minioHealthy(servers.minio.endpoint))) {
    return servers;
  }
  await stopProcess(servers[which].pid); // alive but not answering: replace it
  const portOf = (url: string) => Number(new URL(url.includes('://') ? url : `tcp://${url}`).port);
  const ports: ServerPorts = {
    temporal: portOf(servers.temporal.address),
    temporalUi: portOf(servers.temporal.uiUrl),
    minio: portOf(servers.minio.endpoint),
    minioConsole: portOf(servers.minio.consoleUrl),
  };
  // A killed server's ports can take a moment to be released.
  const mine = which === 'temporal' ? [ports.temporal, ports.temporalUi] : [ports.minio, ports.minioConsole];
  const deadline = Date.now() + 10_000;
  while (!(await Promise.all(mine.map(portFree))).every(Boolean) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const pid =
    which === 'temporal'
      ? await startTemporal(await ensureTool(TOOLS.temporal, () => {}), stateDir, ports)
      : await startMinio(await ensureTool(TOOLS.minio, () => {}), stateDir, ports, servers.minio);
  // Re-read: the other server's record may have changed meanwhile.
  const latest = (await readServers(stateDir, true)) ?? servers;
  const updated: LocalServers = { ...latest, [which]: { ...latest[which], pid } };
  await writeState(stateDir, updated);
  await waitUntilHealthy(updated, which);
  return updated;
}

/** Writes servers.json: 0600 (it holds the MinIO credentials), also when an older file had a wider mode. */
async function writeState(stateDir: string, servers: LocalServers): Promise<void> {
  const file = path.join(stateDir, STATE_FILE);
  await writeFile(file, JSON.stringify(servers, null, 2), { mode: 0o600 });
  await chmod(file, 0o600);
}

/** The local servers recorded in `stateDir`, if `up` ran there and they are still running (or `includeStopped`). */
export async function readServers(stateDir = defaultStateDir(), includeStopped = false): Promise<LocalServers | undefined> {
  try {
    const servers = JSON.parse(await readFile(path.join(path.resolve(stateDir), STATE_FILE), 'utf8')) as LocalServers;
    if (includeStopped) return servers;
    return alive(servers.temporal.pid) && alive(servers.minio.pid) ? servers : undefined;
  } catch {
    return undefined;
  }
}

/** A port `up` needs is held by another process. */
export class PortTakenError extends Error {
  override readonly name = 'PortTakenError';
}

/**
 * Which of Tempered's own local servers listens on `port`, from the processes' command lines
 * (Linux /proc; elsewhere undefined): the dev server names its `--port`/`--ui-port` and database
 * file, MinIO its `--address`/`--console-address` and data folder, both under a state directory.
 */
export async function localServerOnPort(port: number, procDir = '/proc'): Promise<{ server: 'Temporal server' | 'MinIO'; pid: number; stateDir: string } | undefined> {
  const pids = await readdir(procDir).catch(() => [] as string[]);
  for (const pid of pids.filter((name) => /^\d+$/.test(name))) {
    const args = await readFile(path.join(procDir, pid, 'cmdline'), 'utf8').then((t) => t.split('\0'), () => [] as string[]);
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    if (args[1] === 'server' && args[2] === 'start-dev' && args.includes('--db-filename')) {
      if (value('--port') === String(port) || value('--ui-port') === String(port)) {
        return { server: 'Temporal server', pid: Number(pid), stateDir: path.dirname(value('--db-filename')) };
      }
    } else if (args[1] === 'server' && path.basename(args[2] ?? '') === 'minio' && args.includes('--address')) {
      if (value('--address')?.endsWith(`:${port}`) || value('--console-address')?.endsWith(`:${port}`)) {
        return { server: 'MinIO', pid: Number(pid), stateDir: path.dirname(args[2]) };
      }
    }
  }
  return undefined;
}

/** Removes the state directory: all local runs and artifacts. */
export async function wipeState(stateDir: string): Promise<void> {
  await rm(stateDir, { recursive: true, force: true });
}

async function healthy(servers: LocalServers): Promise<boolean> {
  return (await temporalHealthy(servers.temporal.address)) && (await minioHealthy(servers.minio.endpoint));
}

/** True when the Temporal frontend at `address` (host:port) answers its health check within about a second. */
export async function temporalHealthy(address: string): Promise<boolean> {
  try {
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      const response = await connection.healthService.check({}, );
      return response.status === 1; // SERVING
    } finally {
      await connection.close();
    }
  } catch {
    return false;
  }
}

/** True when MinIO at `endpoint` (http://host:port) says it is ready within a second. */
export async function minioHealthy(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  } catch {
    return false;
  }
}

async function waitFor(name: string, check: () => Promise<boolean>, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = await readFile(logFile, 'utf8').then((t) => t.split('\n').slice(-15).join('\n'), () => '');
  throw new Error(`${name} did not become healthy within ${timeoutMs / 1000} s; its log (${logFile}) ends:\n${tail}`);
}

/**
 * Creates `dir` (and its parents) if needed and makes it 0700 whatever the umask, also when it
 * existed with a wider mode (a state directory from an earlier version).
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** Runs `start` (synchronous, e.g. spawn) with the process umask set to `mask`, so its children inherit it. */
function withUmask<T>(mask: number, start: () => T): T {
  let previous: number | undefined;
  try {
    previous = process.umask(mask);
  } catch {
    // worker threads cannot set the umask; the private state directory still keeps others out
  }
  try {
    return start();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
}

async function startDetached(binary: string, args: string[], logFile: string, env: Record<string, string>): Promise<number> {
  const out = await open(logFile, 'a', 0o600);
  try {
    await out.chmod(0o600);
    // Their database, objects and logs: readable by this user only (umask 077), on top of the 0700 state directory.
    const child = withUmask(0o077, () => spawn(binary, args, { detached: true, stdio: ['ignore', out.fd, out.fd], env: { ...process.env, ...env } }));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.unref();
    return child.pid!;
  } finally {
    await out.close();
  }
}

function alive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopProcess(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** True when nothing listens on 127.0.0.1:`port`. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port the OS says is free now (for tests that must not clash with a developer's `up`). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
