import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

// Several "machines" on this one: each a Linux network namespace with its own address, loopback,
// hostname (a UTS namespace per process) and private folder, cabled by veth pairs to a bridge in a
// "switch" namespace. The test process (the host) has one more cable to the switch, so it is a
// client on the same network. Needs root and iproute2 (`ip netns`, veth, bridge).

const run = promisify(execFile);

/** Prefix of every namespace made here: `tempered-<owner pid>-<id>-<role>`, so leftovers of a crashed run can be found. */
const NS_PREFIX = 'tempered-';

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** True when this process may make namespaces: Linux, root, `ip netns` and `unshare` (callers skip otherwise). */
export function netnsUsable(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('unshare', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Names of the namespaces that exist now. */
export async function listNamespaces(): Promise<string[]> {
  return (await ip('netns', 'list'))
    .split('\n')
    .map((line) => line.split(' ')[0])
    .filter(Boolean);
}

/** A process started on a `VirtualHost`; its pid is the program's own (ip netns exec, unshare and sh exec in place). */
export interface HostProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines it printed. */
  output(): string;
}

/** One machine: a network namespace with an address on the virtual network and a folder of its own. */
export interface VirtualHost {
  /** Its role (`temporal`, `w1`, ...). */
  role: string;
  /** The network namespace's name, also the hostname of the processes started here. */
  netns: string;
  /** Its IPv4 address on the virtual network. */
  address: string;
  /** Its private folder: HOME, TMPDIR, caches and state of the processes started here live under it. */
  dir: string;
  /** Starts `command args` in this host (its network, its hostname), with exactly `env` plus PATH and its own HOME/TMPDIR. */
  spawn(command: string, args: string[], env?: Record<string, string>, options?: { cwd?: string; logFile?: string }): Promise<HostProcess>;
  /** Runs `command args` in this host and resolves with its exit code and output. */
  exec(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Pulls the plug: SIGKILLs every process in the namespace, removes its cable, the namespace and its folder. Idempotent. */
  destroy(): Promise<void>;
  readonly destroyed: boolean;
}

/** A bridge in a switch namespace, the hosts cabled to it, and a cable from the test process. */
export interface VirtualNetwork {
  /** Random id in every name made here. */
  id: string;
  /** The test process's address on the network (it is a client like any other host). */
  hostAddress: string;
  /** Makes a host with the next free address. */
  addHost(role: string): Promise<VirtualHost>;
  /** Kills every process on every host, deletes every namespace and cable and the folders. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Makes the switch namespace and the test process's cable to it, on a random 10.x.y.0/24 subnet no
 * route of this machine uses. Namespaces left by an earlier run whose process has died are removed first.
 */
export async function createVirtualNetwork(): Promise<VirtualNetwork> {
  await removeOrphans();
  const id = randomBytes(3).toString('hex');
  const prefix = `${NS_PREFIX}${process.pid}-${id}`;
  const subnet = await freeSubnet();
  const root = await mkdtemp(path.join(os.tmpdir(), `tempered-net-${id}-`));
  const switchNs = `${prefix}-switch`;
  // The host side of its cable lives in the host namespace, where names are global and at most 15 bytes.
  const hostLink = `tmpd${id}`;
  const hosts: VirtualHost[] = [];
  let closed = false;
  let next = 2;

  const close = async () => {
    if (closed) return;
    closed = true;
    try {
      for (const h of hosts) await h.destroy().catch(() => undefined); // whatever is left shows in `ip netns list`
      await destroyNamespace(switchNs);
    } finally {
      await ip('link', 'del', hostLink).catch(() => undefined); // gone with its peer already, normally
      await rm(root, { recursive: true, force: true });
    }
  };

  try {
    await ip('netns', 'add', switchNs);
    await ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', switchNs, 'link', 'set', 'br0', 'up');
    await ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'p-host', 'netns', switchNs);
    await ip('-n', switchNs, 'link', 'set', 'p-host', 'master', 'br0', 'up');
    await ip('addr', 'add', `${subnet}.1/24`, 'dev', hostLink);
    await ip('link', 'set', hostLink, 'up');
  } catch (err) {
    await close();
    throw err;
  }

  return {
    id,
    hostAddress: `${subnet}.1`,
    close,
    async addHost(role) {
      if (closed) throw new Error('the virtual network is closed');
      const host = await makeHost({ role, netns: `${prefix}-${role}`, address: `${subnet}.${next++}`, switchNs, dir: path.join(root, role) });
      hosts.push(host);
      return host;
    },
  };
}

async function makeHost(o: { role: string; netns: string; address: string; switchNs: string; dir: string }): Promise<VirtualHost> {
  const port = `p-${o.role}`.slice(0, 15);
  let destroyed = false;
  const processes: HostProcess[] = [];
  await ip('netns', 'add', o.netns);
  try {
    await ip('-n', o.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o.netns);
    await ip('-n', o.switchNs, 'link', 'set', port, 'master', 'br0', 'up');
    await ip('-n', o.netns, 'addr', 'add', `${o.address}/24`, 'dev', 'eth0');
    await ip('-n', o.netns, 'link', 'set', 'eth0', 'up');
    await ip('-n', o.netns, 'link', 'set', 'lo', 'up');
    for (const sub of ['home', 'tmp', 'cache', 'logs']) await mkdir(path.join(o.dir, sub), { recursive: true, mode: 0o700 });
  } catch (err) {
    await destroyNamespace(o.netns);
    throw err;
  }
  // `ip netns exec` enters the network namespace, `unshare --uts` gives the process a hostname of its
  // own (Temporal worker identities are pid@hostname), and each execs in place: the pid is the program's.
  const inHost = (command: string, args: string[]) => [
    'netns', 'exec', o.netns, 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', o.netns, command, ...args,
  ];
  const baseEnv = () => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: path.join(o.dir, 'home'),
    TMPDIR: path.join(o.dir, 'tmp'),
    XDG_CACHE_HOME: path.join(o.dir, 'cache'),
  });

  const host: VirtualHost = {
    role: o.role,
    netns: o.netns,
    address: o.address,
    dir: o.dir,
    get destroyed() {
      return destroyed;
    },
    async spawn(command, args, env = {}, options = {}) {
      if (destroyed) throw new Error(`host ${o.netns} was destroyed`);
      const log = options.logFile ? await open(options.logFile, 'a', 0o600) : undefined;
      try {
        const child = spawn('ip', inHost(command, args), {
          cwd: options.cwd ?? o.dir,
          env: { ...baseEnv(), ...env }, // nothing of the test process's environment leaks in
          stdio: ['ignore', log ? log.fd : 'pipe', log ? log.fd : 'pipe'],
        });
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', resolve);
          child.once('error', reject);
        });
        const lines: string[] = [];
        const onData = (d: Buffer) => {
          for (const line of d.toString().split('\n')) if (line.trim()) lines.push(line);
          if (lines.length > 300) lines.splice(0, lines.length - 300);
        };
        // Always drain both pipes: a full pipe would block the process.
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
        const handle: HostProcess = {
          child,
          pid: child.pid!,
          exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
          output: () => lines.join('\n'),
        };
        processes.push(handle);
        return handle;
      } finally {
        await log?.close();
      }
    },
    async exec(command, args) {
      try {
        const { stdout, stderr } = await run('ip', inHost(command, args), { env: baseEnv(), cwd: o.dir, timeout: 30_000 });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
      }
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await destroyNamespace(o.netns);
      await ip('-n', o.switchNs, 'link', 'del', port).catch(() => undefined); // gone with its peer already, normally
      await Promise.all(processes.map((p) => p.exited));
      await rm(o.dir, { recursive: true, force: true }); // its disk goes with it
    },
  };
  return host;
}

/** SIGKILLs every process in `netns` until none is left, then deletes it (its veth ends go with it). */
async function destroyNamespace(netns: string): Promise<void> {
  if (!(await listNamespaces()).includes(netns)) return;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const pids = (await ip('netns', 'pids', netns).catch(() => ''))
      .split('\n')
      .map(Number)
      .filter((pid) => pid > 0 && pid !== process.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (Date.now() > deadline) throw new Error(`processes ${pids.join(', ')} in ${netns} survive SIGKILL`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await ip('netns', 'del', netns);
}

/** Namespaces made here by a test process that no longer exists (a crashed or killed run). */
async function removeOrphans(): Promise<void> {
  for (const netns of await listNamespaces()) {
    const owner = new RegExp(`^${NS_PREFIX}(\\d+)-[0-9a-f]{6}-`).exec(netns);
    if (!owner || alive(Number(owner[1]))) continue;
    await destroyNamespace(netns).catch(() => undefined);
  }
  // The host ends of their cables went with the switch namespaces: a veth pair dies whole.
}

/** A random 10.x.y.0/24 prefix (as `10.x.y`) that no route or address of this machine overlaps. */
async function freeSubnet(): Promise<string> {
  const used = (await ip('-4', 'route', 'show', 'table', 'all')) + (await ip('-4', '-o', 'addr', 'show'));
  for (let i = 0; i < 50; i++) {
    const subnet = `10.${randomInt(64, 250)}.${randomInt(1, 250)}`;
    const [, x] = subnet.split('.');
    if (!used.includes(`${subnet}.`) && !used.includes(`10.${x}.0.0/16`) && !used.includes('10.0.0.0/8')) return subnet;
  }
  throw new Error('no free 10.x.y.0/24 subnet found for the virtual network');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
