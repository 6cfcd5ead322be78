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
