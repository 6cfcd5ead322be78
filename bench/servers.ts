import { mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { down, freePort, up, wipeState, type LocalServers } from '../infra/servers';

/** Fresh local servers on free ports for one benchmark run; `stop()` removes them and their state. */
export async function benchServers(): Promise<LocalServers & { stop(): Promise<void> }> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'tempered-bench-'));
  const ports = { temporal: await freePort(), temporalUi: await freePort(), minio: await freePort(), minioConsole: await freePort() };
  const servers = await up({ stateDir, ports, log: (l) => console.error(l) });
  Object.assign(process.env, {
    TEMPORAL_ADDRESS: servers.temporal.address,
    TEMPERED_S3_ENDPOINT: servers.minio.endpoint,
    AWS_ACCESS_KEY_ID: servers.minio.accessKeyId,
    AWS_SECRET_ACCESS_KEY: servers.minio.secretAccessKey,
    AWS_REGION: 'us-east-1',
    TEMPERED_STORE_CREATE_BUCKET: '1', // the bench's own MinIO: its bucket is created on first write
  });
  return {
    ...servers,
    async stop() {
      await down({ stateDir });
      await wipeState(stateDir);
    },
  };
}

/** p-th percentile (0–100) by nearest rank. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
