import type { Command } from 'commander';
import { checkRunArgument } from '../../pipelines/run-id';
import { integerArgument, stateDirOf, withClient } from './shared';

// Commands on existing runs: status, list, report, cancel.

export function registerRunCommands(cli: Command): void {
  cli
    .command('status')
    .description("a run's per-stage status")
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .option('--json', 'print the summary as JSON')
    .action(async (run: string, opts: { json?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ getRunSummary, resolveWorkflowId }, { formatSummary }, { printJson }] = await Promise.all([import('../runs'), import('../format'), import('../output')]);
        const summary = await getRunSummary(client, await resolveWorkflowId(client, run));
        if (opts.json) printJson(summary);
        else console.log(formatSummary(summary));
      }),
    );

  cli
    .command('list')
    .description('recent runs, newest first')
    .option('--limit <n>', 'how many (1 to 1000)', integerArgument(1, 1000), 20)
    .option('--json', 'print as JSON')
    .action(async (opts: { limit: number; json?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ listRuns }, { printJson }] = await Promise.all([import('../runs'), import('../output')]);
        const runs = await listRuns(client, opts.limit);
        if (opts.json) return printJson(runs);
        if (runs.length === 0) return console.log('no runs yet; start one with "tempered run <spec>"');
        for (const r of runs) console.log(`${r.runId}  ${r.pipeline.padEnd(24)} ${r.status.padEnd(10)} ${r.startedAt}`);
      }),
    );

  cli
    .command('report')
    .description("write a run's HTML report: loss curves, metrics, confusion matrices, two-phase lift, size/quality")
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .option('--out <dir>', 'output directory (default: .tempered/reports/<run>)')
    .option('--open', 'open it in the browser')
    .action(async (run: string, opts: { out?: string; open?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ getRunSummary, resolveWorkflowId }, { writeReport }, { openReport }] = await Promise.all([import('../runs'), import('../local-run'), import('../report')]);
        const summary = await getRunSummary(client, await resolveWorkflowId(client, run));
        const files = await writeReport(stateDirOf(cli), summary, opts.out);
        console.log(files.htmlPath);
        if (opts.open) await openReport(files.htmlPath);
      }),
    );

  cli
    .command('cancel')
    .description('cancel a run; its running stages are cancelled too')
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .action(async (run: string) =>
      withClient(cli, async (client) => {
        const { cancelRun, resolveWorkflowId } = await import('../runs');
        const workflowId = await resolveWorkflowId(client, run);
        await cancelRun(client, workflowId);
        console.log(`cancellation requested for ${workflowId}`);
      }),
    );
}
