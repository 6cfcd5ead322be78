import { chmod, lstat, readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { readServers, up } from '../../infra/servers';

// globalSetup started the servers with `up`; these check what a user of `tempered up` relies on.

test('a second up is a no-op that reports the running servers', async () => {
  const stateDir = process.env.TEMPERED_TEST_STATE_DIR!;
  const before = await readServers(stateDir);
  const again = await up({ stateDir });
  expect(again.alreadyRunning).toBe(true);
  expect(again.temporal.pid).toBe(before!.temporal.pid);
  expect(again.minio.pid).toBe(before!.minio.pid);
});

test('the Temporal web UI and the MinIO health endpoint answer', async () => {
  const servers = (await readServers(process.env.TEMPERED_TEST_STATE_DIR!))!;
  expect((await fetch(servers.temporal.uiUrl)).status).toBe(200);
  expect((await fetch(`${servers.minio.endpoint}/minio/health/live`)).status).toBe(200);
});

describe('the local state is private', () => {
  /** Every path under `dir` with group or other permission bits set. */
  async function widerThanOwner(dir: string): Promise<string[]> {
    const wide: string[] = [];
    for (const entry of await readdir(dir, { recursive: true })) {
      const file = path.join(dir, entry);
      const stats = await lstat(file);
      if (!stats.isSymbolicLink() && (stats.mode & 0o077) !== 0) wide.push(`${entry} ${(stats.mode & 0o777).toString(8)}`);
    }
    return wide;
  }

  test('the state dir is 0700, servers.json 0600, and what the servers wrote is readable by this user only', async () => {
    const stateDir = process.env.TEMPERED_TEST_STATE_DIR!;
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(stateDir, 'servers.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(stateDir, 'temporal.db'))).mode & 0o077).toBe(0);
    expect((await readdir(path.join(stateDir, 'minio'), { recursive: true })).length).toBeGreaterThan(0);
    expect(await widerThanOwner(stateDir)).toEqual([]);
  });

  test('up makes a state dir left world-readable private again, even when the servers already run', async () => {
    const stateDir = process.env.TEMPERED_TEST_STATE_DIR!;
    await chmod(stateDir, 0o755);
    await chmod(path.join(stateDir, 'servers.json'), 0o644);
    try {
      expect((await up({ stateDir })).alreadyRunning).toBe(true);
      expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
      expect((await stat(path.join(stateDir, 'servers.json'))).mode & 0o777).toBe(0o600);
    } finally {
      await chmod(stateDir, 0o700);
      await chmod(path.join(stateDir, 'servers.json'), 0o600);
    }
  });
});
