import { Option, type Command } from 'commander';
import { DEFAULT_PORTS } from '../../infra/state-dir';
import { integerArgument, stateDirOf } from './shared';

export function registerServers(cli: Command): void {
  const port = integerArgument(1, 65_535);
  cli
    .command('up')
    .description('build (once) and start a local Temporal dev server and MinIO; a no-op when they run')
    .addOption(new Option('--temporal-port <port>', 'Temporal gRPC port').default(DEFAULT_PORTS.temporal).argParser(port))
    .addOption(new Option('--ui-port <port>', 'Temporal web UI port').default(DEFAULT_PORTS.temporalUi).argParser(port))
    .addOption(new Option('--minio-port <port>', 'MinIO S3 port').default(DEFAULT_PORTS.minio).argParser(port))
    .addOption(new Option('--console-port <port>', 'MinIO console port').default(DEFAULT_PORTS.minioConsole).argParser(port))
    .action(async (opts: { temporalPort: number; uiPort: number; minioPort: number; consolePort: number }) => {
      const { startLocalServers } = await import('../local-run');
      await startLocalServers(stateDirOf(cli), { temporal: opts.temporalPort, temporalUi: opts.uiPort, minio: opts.minioPort, minioConsole: opts.consolePort });
    });

  cli
    .command('down')
    .description('stop the local servers (their data stays in the state directory)')
    .action(async () => {
      const { down } = await import('../../infra/servers');
      const stateDir = stateDirOf(cli);
      console.log((await down({ stateDir })) ? `stopped the local Temporal server and MinIO of ${stateDir}` : `no local servers were running from ${stateDir}`);
    });
}
