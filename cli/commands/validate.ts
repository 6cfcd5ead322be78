import type { Command } from 'commander';
import { loadPlan } from './shared';

const DURATION_KEYS = new Set(['timeout', 'heartbeatTimeout', 'initialInterval', 'maximumInterval']);

export function registerValidate(cli: Command): void {
  cli
    .command('validate')
    .description('check a spec and report every problem at once (exit 2 if any)')
    .argument('<spec>', 'pipeline spec (YAML)')
    .option('--print', 'print the spec with every default applied')
    .option('--json', 'print the plan as JSON')
    .action(async (specFile: string, opts: { print?: boolean; json?: boolean }) => {
      const plan = await loadPlan(specFile);
      if (opts.json) {
        const { printJson } = await import('../output');
        printJson(plan);
      } else if (opts.print) {
        const [{ stringify }, { loadSpecFile }, { formatDuration }] = await Promise.all([import('yaml'), import('../../pipelines/load'), import('../../pipelines/duration')]);
        const readable = (value: unknown, key = ''): unknown => {
          if (typeof value === 'number' && DURATION_KEYS.has(key)) return formatDuration(value);
          if (Array.isArray(value)) return value.map((v) => readable(v));
          if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, readable(v, k)]));
          return value;
        };
        console.log(stringify(readable((await loadSpecFile(specFile)).spec)));
      } else {
        console.log(`${specFile}: valid, ${plan.stages.length} stages in ${plan.levels.length} levels: ${plan.levels.map((l) => l.join(' + ')).join(' -> ')}`);
      }
    });
}
