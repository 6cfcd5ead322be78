import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, up } from '../../infra/servers';

/**
 * Starts a real Temporal dev server and a real MinIO on free loopback ports, in a throwaway state
 * directory, for the integration tests (building them from their Go modules on first use). Tests
 * find them through the same environment variables production uses.
 */
export default async function globalSetup(): Promise<void> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'tempered-test-'));
  const ports = { temporal: await freePort(), temporalUi: await freePort(), minio: await freePort(), minioConsole: await freePort() };
  const started = Date.now();
  const servers = await up({ stateDir, ports, log: (line) => process.stderr.write(`[test servers] ${line}\n`) });
  process.stderr.write(`[test servers] Temporal ${servers.temporal.address}, MinIO ${servers.minio.endpoint} up in ${Date.now() - started} ms\n`);
  Object.assign(process.env, {
    TEMPERED_TEST_STATE_DIR: stateDir,
    TEMPORAL_ADDRESS: servers.temporal.address,
    TEMPORAL_NAMESPACE: servers.temporal.namespace,
    TEMPERED_TEST_S3_ENDPOINT: servers.minio.endpoint,
    TEMPERED_S3_ENDPOINT: servers.minio.endpoint,
    AWS_ACCESS_KEY_ID: servers.minio.accessKeyId,
    AWS_SECRET_ACCESS_KEY: servers.minio.secretAccessKey,
    AWS_REGION: 'us-east-1',
    // Each test's store is a fresh bucket, created on its first write (off by default: a typo is an error).
    TEMPERED_STORE_CREATE_BUCKET: '1',
  });
}
