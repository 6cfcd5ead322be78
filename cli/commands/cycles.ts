import type { Command } from 'commander';
import { UsageError, withStore } from './shared';

export function registerCycles(cli: Command): void {
  cli
    .command('cycles')
    .description("a continual pipeline's completed retrain cycles, its collect watermark and replay reservoir")
    .argument('<pipeline>', 'pipeline name (metadata.name of its spec)')
    .option('--json', 'print the continual state as JSON')
    .action(async (pipeline: string, opts: { json?: boolean }) =>
      withStore(cli, async (store) => {
        const [{ readContinualState }, { formatCycles, readWatermark }, { printJson }] = await Promise.all([
          import('../../activities/continual/state'),
          import('../cycles'),
          import('../output'),
        ]);
        const state = await readContinualState(store, pipeline);
        if (state.cycles.length === 0) {
          // No cycle yet is normal for a pipeline that has run; an unknown name is a typo.
          const hasRuns = (await store.list(`runs/${pipeline}/`)).length > 0;
          if (!hasRuns) {
            const known = [...new Set((await store.list('continual/')).map((key) => key.split('/')[1]))].sort();
            throw new UsageError(`no pipeline "${pipeline}" in the store: it has no runs and no continual state. ${known.length > 0 ? `Continual pipelines: ${known.join(', ')}` : 'No pipeline has completed a cycle yet'}`);
          }
        }
        if (opts.json) printJson(state);
        else console.log(formatCycles(state, await readWatermark(store, state)));
      }),
    );
}
