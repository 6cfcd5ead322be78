import { InvalidArgumentError, Option, type Command } from 'commander';
import { checkRunArgument } from '../../pipelines/run-id';
import { EXIT, integerArgument, stateDirOf, withClient } from './shared';

// Commands on existing runs: status, list, report, cancel, terminate.

const RUN_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;

/** A pipeline name as specs allow it (letters, digits, single dashes): anything else matches no run. */
function pipelineArgument(value: string): string {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(value) || value.includes('--')) throw new InvalidArgumentError(`"${value}" is not a pipeline name (letters, digits and single dashes)`);
  return value;
}

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
    .option('--pipeline <name>', "only this pipeline's runs", pipelineArgument)
    .addOption(new Option('--status <status>', 'only runs in this state').choices(RUN_STATUSES))
    .option('--json', 'print as JSON')
    .action(async (opts: { limit: number; pipeline?: string; status?: (typeof RUN_STATUSES)[number]; json?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ listRuns }, { formatRunList }, { printJson }] = await Promise.all([import('../runs'), import('../run-list'), import('../output')]);
        const runs = await listRuns(client, opts.limit, { pipeline: opts.pipeline, status: opts.status });
        if (opts.json) return printJson(runs);
        if (runs.length > 0) return console.log(formatRunList(runs));
        const filtered = opts.pipeline !== undefined || opts.status !== undefined;
        console.log(filtered ? 'no runs match' : 'no runs yet; start one with "tempered run <spec>"');
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
    .description('cancel a run: its running stages are stopped and it ends as cancelled; waits for that')
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .option('--wait <seconds>', 'how long to wait for the run to end (0 to 3600)', integerArgument(0, 3600), 10)
    .action(async (run: string, opts: { wait: number }) =>
      withClient(cli, async (client) => {
        const { cancelRun, resolveWorkflowId } = await import('../runs');
        const workflowId = await resolveWorkflowId(client, run);
        const { ended, summary } = await cancelRun(client, workflowId, opts.wait * 1000);
        if (ended) return console.log(`${workflowId} is ${summary.status}`);
        console.log(
          `cancellation of ${workflowId} requested, but the run is still running after ${opts.wait} s` +
            `${summary.waiting ? `: ${summary.waiting}` : ' (its running stages are finishing their cancellation)'}. ` +
            `It ends once a worker handles the request; "tempered terminate ${run}" ends it now.`,
        );
        process.exitCode = EXIT.failed;
      }),
    );

  cli
    .command('terminate')
    .description('end a run at once, without its workers (e.g. none is left to cancel it); running attempts are abandoned')
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .option('--reason <text>', 'recorded in the run history', 'terminated with "tempered terminate"')
    .action(async (run: string, opts: { reason: string }) =>
      withClient(cli, async (client) => {
        const { terminateRun, resolveWorkflowId } = await import('../runs');
        const workflowId = await resolveWorkflowId(client, run);
        console.log(`${workflowId} is ${await terminateRun(client, workflowId, opts.reason)}`);
      }),
    );
}
