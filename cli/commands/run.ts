import type { Command } from 'commander';
import { checkRunArgument, checkRunId } from '../../pipelines/run-id';
import { EXIT, loadPlan, log, openStore, stateDirOf, UsageError } from './shared';

export function registerRun(cli: Command): void {
  cli
    .command('run')
    .description('start a run of a spec')
    .argument('<spec>', 'pipeline spec (YAML)')
    .option('--run-id <id>', 'run id (default: time-based); starting a running id again attaches to it', checkRunId)
    .option('--wait', 'wait for the run, showing live per-stage progress')
    .option('--json', 'print the final summary as JSON (implies --wait)')
    .option('--local', 'run the workers the pipeline needs in this process (implies --wait)')
    .option('--no-cache', 'compute every stage, even those whose results the cache holds')
    .action(async (specFile: string, opts: { runId?: string; wait?: boolean; json?: boolean; local?: boolean; cache: boolean }) => {
      const plan = await loadPlan(specFile, { noCache: !opts.cache });
      const { runPlan } = await import('../local-run');
      const summary = await runPlan(plan, { ...opts, stateDir: stateDirOf(cli) });
      if (summary && summary.status !== 'succeeded') process.exitCode ??= EXIT.failed; // a signal's code stays
    });

  cli
    .command('resume')
    .description('start a new run of a failed, cancelled or terminated run that reuses every stage that succeeded')
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .option('--spec <file>', 'the (fixed) spec to run; changed stages and their descendants run again')
    .option('--dry-run', 'only print what would be reused and what would run')
    .option('--wait', 'wait for the run, showing live progress')
    .option('--json', 'print the final summary as JSON (implies --wait)')
    .option('--local', 'run the needed workers in this process (implies --wait)')
    .action(async (run: string, opts: { spec?: string; dryRun?: boolean; wait?: boolean; json?: boolean; local?: boolean }) => {
      const stateDir = stateDirOf(cli);
      const [{ connectClient, temporalSettings }, { queuePrefixFromEnv }, runs, { planResume, verifyResume }, { runPlan }] = await Promise.all([
        import('../../infra/config'),
        import('../../infra/queue-prefix'),
        import('../runs'),
        import('../resume'),
        import('../local-run'),
      ]);
      const client = await connectClient(await temporalSettings(stateDir));
      let resume: ReturnType<typeof planResume>;
      let plan: Awaited<ReturnType<typeof loadPlan>>;
      try {
        const workflowId = await runs.resolveWorkflowId(client, run);
        const summary = await runs.getRunSummary(client, workflowId);
        if (summary.status === 'running') throw new UsageError(`run ${summary.runId} is still running; cancel it first ("tempered cancel ${summary.runId}") or wait for it`);
        const previous = await runs.getRunInput(client, workflowId);
        // The earlier plan's queue prefix may be a `--local` process's own, which no worker polls now.
        plan = opts.spec ? await loadPlan(opts.spec) : { ...previous.plan, queuePrefix: queuePrefixFromEnv() };
        resume = planResume({ plan: previous.plan, summary }, plan);
      } finally {
        await client.connection.close();
      }
      // Verified as the stage cache would (every output read back against its sha256), so the dry
      // run says what the real run does.
      const store = await openStore(stateDir);
      try {
        resume = await verifyResume(store, resume, plan);
      } finally {
        await store.close();
      }
      const width = Math.max(...resume.decisions.map((d) => d.stage.length));
      for (const d of resume.decisions) log(`  ${d.action === 'reuse' ? 'reuse' : 'run  '}  ${d.stage.padEnd(width)}  ${d.reason}`);
      if (opts.dryRun) return;
      const summary = await runPlan(plan, { ...opts, stateDir, reuse: resume.reuse });
      if (summary && summary.status !== 'succeeded') process.exitCode ??= EXIT.failed; // a signal's code stays
    });
}
