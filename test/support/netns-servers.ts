import { randomBytes } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { minioHealthy, minioServerArgs, minioServerEnv, temporalHealthy, temporalServerArgs } from '../../infra/servers';
import { ensureTool, TOOLS } from '../../infra/tools';
import { ROOT } from './cli';
import type { HostProcess, VirtualHost } from './netns';

// The servers and workers of the multi-host test, each started on its own `VirtualHost`: the same
// Go-built binaries and command lines as `tempered up`, bound to the host's network address.

const TEMPORAL_PORTS = { temporal: 7233, temporalUi: 8233 };
const MINIO_PORTS = { minio: 9000, minioConsole: 9001 };

/**
 * Starts the Temporal dev server on `host`, on all of its interfaces; resolves once it answers at
 * the host's address from the test process. Not `--ip <address>`: the dev server (CLI v1.5.1,
 * temporalcli/devserver/server.go) binds its history, matching and worker services on `--ip` but
 * dials them at 127.0.0.1 (`WithStaticHosts`), so with any other address the frontend answers its
 * health check and fails every call behind it ("dial tcp 127.0.0.1:<port>: connection refused").
 * On 0.0.0.0 it reaches them on its own loopback and clients reach it on the network address.
 */
export async function startTemporalOn(host: VirtualHost): Promise<{ address: string; process: HostProcess }> {
  const binary = await ensureTool(TOOLS.temporal);
  const logFile = path.join(host.dir, 'logs', 'temporal.log');
  const args = temporalServerArgs(path.join(host.dir, 'temporal.db'), TEMPORAL_PORTS, '0.0.0.0');
  const started = await host.spawn(binary, args, {}, { logFile });
  const address = `${host.address}:${TEMPORAL_PORTS.temporal}`;
  // Healthy is not yet serving: once the frontend answers, wait for a call that goes past it too.
  await waitFor(`Temporal on ${host.netns}`, async () => (await temporalHealthy(address)) && (await namespaceReady(address)), started, logFile);
  return { address, process: started };
}

/** Whether the default namespace can be described at `address` (frontend and the services behind it up). */
async function namespaceReady(address: string): Promise<boolean> {
  try {
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await connection.workflowService.describeNamespace({ namespace: 'default' });
      return true;
    } finally {
      await connection.close();
    }
  } catch {
    return false;
  }
}

/** MinIO's endpoint and root credentials. */
export interface MinioOnHost {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  process: HostProcess;
}

/** Starts MinIO on `host`, its data in the host's folder, on the host's address (MinIO adds its own loopback listeners); resolves once it answers. */
export async function startMinioOn(host: VirtualHost): Promise<MinioOnHost> {
  const binary = await ensureTool(TOOLS.minio);
  const logFile = path.join(host.dir, 'logs', 'minio.log');
  const credentials = { accessKeyId: 'tempered', secretAccessKey: randomBytes(18).toString('base64url') };
  const args = minioServerArgs(path.join(host.dir, 'minio'), MINIO_PORTS, host.address);
  const started = await host.spawn(binary, args, minioServerEnv(credentials), { logFile });
  const endpoint = `http://${host.address}:${MINIO_PORTS.minio}`;
  await waitFor(`MinIO on ${host.netns}`, () => minioHealthy(endpoint), started, logFile);
  return { endpoint, ...credentials, process: started };
}

/** A `tempered worker` on a virtual host. Its Temporal identity is `<pid>@<netns>` (the host's own hostname). */
export interface WorkerOnHost extends HostProcess {
  host: VirtualHost;
  identity: string;
}

/**
 * Starts `tempered worker --queue <queue>` on `host` (from source through tsx, as test/support/cli.ts
 * does) with only `env` and the host's own HOME, TMPDIR, cache and state folder; resolves once it polls.
 */
export async function startWorkerOn(host: VirtualHost, env: Record<string, string>, queue: 'cpu' | 'gpu' | 'all' = 'cpu'): Promise<WorkerOnHost> {
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
  const started = await host.spawn(process.execPath, ['--import', tsx, path.join(ROOT, 'cli/main.ts'), 'worker', '--queue', queue], {
    ...env,
    TEMPERED_STATE_DIR: path.join(host.dir, 'state'),
    // Its working directory is its own folder, outside the checkout; the compute threads' code from
    // source (`require('tsx/cjs/api')`, activities/compute-thread.ts) finds the installed packages here.
    NODE_PATH: path.join(ROOT, 'node_modules'),
  });
  const deadline = Date.now() + 90_000;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void started.exited.then((e) => (exit = e));
  while (!/worker polling/.test(started.output())) {
    if (exit) throw new Error(`worker on ${host.netns} exited (${exit.signal ?? exit.code}) before polling:\n${started.output()}`);
    if (Date.now() > deadline) throw new Error(`worker on ${host.netns} not polling after 90 s:\n${started.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...started, host, identity: `${started.pid}@${host.netns}` };
}

async function waitFor(name: string, check: () => Promise<boolean>, started: HostProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void started.exited.then((e) => (exit = e));
  while (!(await check())) {
    if (exit || Date.now() > deadline) {
      const tail = await readFile(logFile, 'utf8').then((t) => t.split('\n').slice(-15).join('\n'), () => '');
      throw new Error(`${name} ${exit ? `exited (${exit.signal ?? exit.code})` : 'did not answer within 60 s'}; its log (${logFile}) ends:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
