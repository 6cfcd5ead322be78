import type { Command } from 'commander';
import { log } from './shared';

export function registerSetup(cli: Command): void {
  const setup = cli.command('setup').description('prepare this machine for Tempered');
  setup
    .command('python')
    .description('build (once per machine and lock) the pinned Python environment of the torch engine, and check it')
    .option('--python <interpreter>', 'Python >= 3.11 to make the venv from (default: $TEMPERED_PYTHON, else python3)')
    .option('--json', 'print one JSON document: the env and what it holds')
    .action(async (opts: { python?: string; json?: boolean }) => {
      const { ensurePythonEnv, checkPythonEnv } = await import('../../infra/python-env');
      const env = await ensurePythonEnv({ python: opts.python, log });
      const check = await checkPythonEnv(env.python);
      if (opts.json) {
        const { printJson } = await import('../output');
        printJson({ ...env, check });
        return;
      }
      const models = Object.entries(check.packagedModels).map(([name, where]) => `  ${name}: ${where ?? 'not installed'}`);
      console.log(
        [
          `${env.created ? 'created' : 'reused'} ${env.dir}${env.created ? ` in ${Math.round(env.installSeconds)} s` : ''}`,
          `python: ${env.python} (${check.python})`,
          `torch ${check.versions.torch}, transformers ${check.versions.transformers}, peft ${check.versions.peft}; device: ${check.device}${check.cuda ? ` (${check.gpus.join(', ')}, CUDA ${check.cudaVersion})` : ` (${check.threads} threads)`}`,
          'packaged models:',
          ...models,
        ].join('\n'),
      );
    });
}
