import { Option, type Command } from 'commander';
import { checkScheduleId } from '../../pipelines/run-id';
import { OVERLAP_POLICIES, type ScheduleBlock } from '../../pipelines/schema';
import { UsageError, withClient } from './shared';

export function registerSchedule(cli: Command): void {
  const schedule = cli.command('schedule').description('recurring runs of a spec on Temporal Schedules; each tick starts one run');
  schedule
    .command('create')
    .description("create a schedule (its time from --cron/--every, else the spec's schedule: block)")
    .argument('<spec>', 'pipeline spec (YAML)')
    .option('--cron <expr>', 'cron expression, UTC (e.g. "0 3 * * *")')
    .option('--every <duration>', 'fixed interval (e.g. 6h)')
    .addOption(new Option('--overlap <policy>', 'a tick while a run still runs').choices([...OVERLAP_POLICIES]))
    .option('--id <scheduleId>', 'schedule id (default: the pipeline name)', checkScheduleId)
    .option('--paused', 'create it paused')
    .action(async (specFile: string, opts: { cron?: string; every?: string; overlap?: ScheduleBlock['overlap']; id?: string; paused?: boolean }) => {
      if (opts.cron && opts.every) throw new UsageError('give --cron or --every, not both');
      const [{ loadSpecFile }, { planPipeline }, { queuePrefixFromEnv }, { createSchedule, describeSchedule }] = await Promise.all([
        import('../../pipelines/load'),
        import('../../pipelines/plan'),
        import('../../infra/queue-prefix'),
        import('../schedules'),
      ]);
      const loaded = await loadSpecFile(specFile);
      const plan = planPipeline(loaded, { queuePrefix: queuePrefixFromEnv() });
      await withClient(cli, async (client) => {
        const id = await createSchedule(client, plan, { scheduleId: opts.id, cron: opts.cron, every: opts.every, overlap: opts.overlap, paused: opts.paused }, loaded.spec.schedule);
        const view = await describeSchedule(client, id);
        console.log(`created schedule ${id}: ${view.spec}, overlap ${view.overlap.toLowerCase()}${view.paused ? ', paused' : ''}; next runs ${view.nextRuns?.slice(0, 3).join(', ') || 'none'}`);
      });
    });
  schedule
    .command('list')
    .description('schedules of Tempered pipelines')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ listSchedules }, { printJson }] = await Promise.all([import('../schedules'), import('../output')]);
        const views = await listSchedules(client);
        if (opts.json) return printJson(views);
        if (views.length === 0) return console.log('no schedules; create one with "tempered schedule create <spec> --every 1d"');
        console.log(`${'SCHEDULE'.padEnd(28)} ${'PIPELINE'.padEnd(24)} ${'WHEN'.padEnd(20)} STATE   NEXT RUN`);
        for (const v of views) console.log(`${v.scheduleId.padEnd(28)} ${v.pipeline.padEnd(24)} ${v.spec.padEnd(20)} ${v.paused ? 'paused' : 'active'}  ${v.nextRuns?.[0] ?? '-'}`);
      }),
    );
  schedule
    .command('describe')
    .description("a schedule's recent and upcoming runs")
    .argument('<scheduleId>')
    .option('--json', 'print as JSON')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ describeSchedule }, { printJson }] = await Promise.all([import('../schedules'), import('../output')]);
        const v = await describeSchedule(client, id);
        if (opts.json) return printJson(v);
        console.log(`${v.scheduleId}  ${v.pipeline}  ${v.spec}  overlap ${v.overlap.toLowerCase()}  ${v.paused ? 'PAUSED' : 'active'}${v.note ? `  (${v.note})` : ''}`);
        console.log(`  runs started: ${v.actionsTaken}, skipped for overlap: ${v.skippedOverlap}`);
        for (const r of v.recentRuns ?? []) console.log(`  recent   ${r.scheduledAt}  ${r.workflowId}`);
        for (const r of v.runningRuns ?? []) console.log(`  running  ${r}`);
        for (const t of v.nextRuns ?? []) console.log(`  next     ${t}`);
      }),
    );
  schedule
    .command('trigger')
    .description("start a run now (it follows the schedule's overlap policy)")
    .argument('<scheduleId>')
    .addOption(new Option('--overlap <policy>', 'override the overlap policy for this run').choices([...OVERLAP_POLICIES]))
    .action(async (id: string, opts: { overlap?: ScheduleBlock['overlap'] }) =>
      withClient(cli, async (client) => {
        const { triggerSchedule } = await import('../schedules');
        await triggerSchedule(client, id, opts.overlap);
        console.log(`triggered schedule ${id}`);
      }),
    );
  for (const [verb, description] of [['pause', 'stop starting runs'], ['unpause', 'start runs again'], ['delete', 'delete the schedule (its runs stay)']] as const) {
    const command = schedule.command(verb).description(description).argument('<scheduleId>');
    if (verb !== 'delete') command.option('--note <text>', `why (shown by "schedule describe")`);
    command.action(async (id: string, opts: { note?: string }) =>
      withClient(cli, async (client) => {
        const { scheduleHandle } = await import('../schedules');
        const handle = await scheduleHandle(client, id);
        if (verb === 'pause') await handle.pause(opts.note ?? 'paused with tempered');
        else if (verb === 'unpause') await handle.unpause(opts.note ?? 'unpaused with tempered');
        else await handle.delete();
        console.log(`${verb}${verb.endsWith('e') ? 'd' : 'ed'} schedule ${id}`);
      }),
    );
  }
  schedule
    .command('backfill')
    .description('run the ticks a time range would have had (e.g. while paused)')
    .argument('<scheduleId>')
    .requiredOption('--start <time>', 'ISO time')
    .requiredOption('--end <time>', 'ISO time')
    .addOption(new Option('--overlap <policy>', 'for the backfilled ticks').choices([...OVERLAP_POLICIES]).default('buffer-all'))
    .action(async (id: string, opts: { start: string; end: string; overlap: ScheduleBlock['overlap'] }) => {
      const [start, end] = [new Date(opts.start), new Date(opts.end)];
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || start >= end) throw new UsageError(`--start ${opts.start} and --end ${opts.end} must be ISO times with start before end`);
      await withClient(cli, async (client) => {
        const { OVERLAP_POLICY_NAMES, scheduleHandle } = await import('../schedules');
        await (await scheduleHandle(client, id)).backfill({ start, end, overlap: OVERLAP_POLICY_NAMES[opts.overlap] });
        console.log(`backfilling schedule ${id} from ${start.toISOString()} to ${end.toISOString()}`);
      });
    });
}
