import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultStateDir, findStateDirAbove } from '../../infra/state-dir';
import { localServerOnPort } from '../../infra/servers';

// The state directory is found as git finds .git; `up` names its own servers holding a port.

let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'state-dir-'));
  await mkdir(path.join(root, 'project', '.tempered'), { recursive: true });
  await mkdir(path.join(root, 'project', 'pipelines', 'nested'), { recursive: true });
  await mkdir(path.join(root, 'elsewhere'), { recursive: true });
});

test('from a subfolder of a project, the nearest .tempered above is used', () => {
  const expected = path.join(root, 'project', '.tempered');
  expect(defaultStateDir(path.join(root, 'project', 'pipelines', 'nested'), {})).toBe(expected);
  expect(defaultStateDir(path.join(root, 'project'), {})).toBe(expected);
});

test('with no .tempered above, the working directory gets one (where up creates it)', () => {
  expect(findStateDirAbove(path.join(root, 'elsewhere'))).toBeUndefined();
  expect(defaultStateDir(path.join(root, 'elsewhere'), {})).toBe(path.join(root, 'elsewhere', '.tempered'));
});

test('TEMPERED_STATE_DIR wins over the search, relative to the working directory', () => {
  expect(defaultStateDir(path.join(root, 'project', 'pipelines'), { TEMPERED_STATE_DIR: '/srv/tempered' })).toBe('/srv/tempered');
  expect(defaultStateDir(path.join(root, 'elsewhere'), { TEMPERED_STATE_DIR: 'state' })).toBe(path.join(root, 'elsewhere', 'state'));
});

test('a file named .tempered is not a state directory', async () => {
  await mkdir(path.join(root, 'filecase', 'sub'), { recursive: true });
  await writeFile(path.join(root, 'filecase', '.tempered'), 'not a folder');
  expect(findStateDirAbove(path.join(root, 'filecase', 'sub'))).toBeUndefined();
});

describe('which of our own servers holds a port, from process command lines', () => {
  let proc: string;
  const process = async (pid: number, args: string[]) => {
    await mkdir(path.join(proc, String(pid)), { recursive: true });
    await writeFile(path.join(proc, String(pid), 'cmdline'), `${args.join('\0')}\0`);
  };

  beforeAll(async () => {
    proc = await mkdtemp(path.join(os.tmpdir(), 'fake-proc-'));
    await process(101, ['/home/u/.cache/tempered/temporal', 'server', 'start-dev', '--db-filename', '/work/a/.tempered/temporal.db', '--ip', '127.0.0.1', '--port', '7233', '--ui-port', '8233']);
    await process(102, ['/home/u/.cache/tempered/minio', 'server', '/work/a/.tempered/minio', '--address', '127.0.0.1:9000', '--console-address', '127.0.0.1:9001']);
    await process(103, ['/usr/bin/python3', '-m', 'http.server', '8080']);
    await mkdir(path.join(proc, 'self'), { recursive: true });
  });

  test('the Temporal dev server by its gRPC or UI port, MinIO by its S3 or console port', async () => {
    expect(await localServerOnPort(7233, proc)).toEqual({ server: 'Temporal server', pid: 101, stateDir: '/work/a/.tempered' });
    expect(await localServerOnPort(8233, proc)).toEqual({ server: 'Temporal server', pid: 101, stateDir: '/work/a/.tempered' });
    expect(await localServerOnPort(9001, proc)).toEqual({ server: 'MinIO', pid: 102, stateDir: '/work/a/.tempered' });
  });

  test('another program on a port is not taken for ours', async () => {
    expect(await localServerOnPort(8080, proc)).toBeUndefined();
    expect(await localServerOnPort(9000 + 1000, proc)).toBeUndefined();
  });

  test('no /proc (another OS) answers undefined', async () => {
    expect(await localServerOnPort(7233, path.join(proc, 'missing'))).toBeUndefined();
  });
});
