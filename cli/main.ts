#!/usr/bin/env node
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { stringify } from 'yaml';
import { createStore, describeStore, storeConfigFromEnv, type ArtifactStore } from '../activities/store';
import { readContinualState } from '../activities/continual/state';
import { getAliases, getVersion, listModels, listVersions, promote, registerVersion, rollback, RegistryError } from '../activities/registry/model-registry';
import { applyLocalStoreEnv, connectClient, NoServerError, queuePrefixFromEnv, temporalSettings, type TemporalSettings } from '../infra/config';
import { DEFAULT_PORTS, defaultStateDir, down, readServers, up } from '../infra/servers';
import { installWorkerRuntime, startWorkers, type RunningWorkers } from '../infra/worker';
import { formatDuration } from '../pipelines/duration';
import { SpecValidationError } from '../pipelines/errors';
import { loadSpecFile } from '../pipelines/load';
import { planPipeline, TASK_QUEUES, type Plan, type TaskQueue } from '../pipelines/plan';
import { checkRunArgument, checkRunId, checkScheduleId, InvalidRunIdError } from '../pipelines/run-id';
import type { RunSummary, StageManifest } from '../workflows/types';
import { formatHeadline, formatSummary } from './format';
import { exitAfterFlush, keepStdoutForJson, printJson } from './output';
import { defaultReportDir, openReport, writeRunReport } from './report';
import { createProgressView } from './progress-view';
import { cancelRun, getRunInput, getRunSummary, listRuns, localQueuePrefix, newRunId, queuesWithoutWorkers, resolveWorkflowId, startRun, waitForRun } from './runs';
import { planResume, verifyResume } from './resume';
import { formatCycles, readWatermark } from './cycles';
import { runContinualDemo } from './continual-demo';
import { createSchedule, describeSchedule, listSchedules, OVERLAP_POLICY_NAMES, ScheduleInputError, triggerSchedule } from './schedules';
import { OVERLAP_POLICIES, type ScheduleBlock } from '../pipelines/schema';
import type { PipelineWorkflowInput } from '../workflows/pipeline';

/** Exit codes: 0 success, 1 a run or command failed, 2 the input (spec, arguments) is wrong, 130/143 a local run cancelled by SIGINT/SIGTERM. */
const EXIT = { ok: 0, failed: 1, badInput: 2, interrupted: 130, terminated: 143 } as const;

const log = (line: string) => process.stderr.write(`${line}\n`);

/** The examples shipped with Tempered, wherever it is installed. */
export const EXAMPLES_DIR = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../pipelines/examples' : '../pipelines/examples');

function program(): Command {
  const cli = new Command('tempered')
    .description('Declare an LLM fine-tuning pipeline in one YAML file and run it durably on Temporal.')
    .option('--state-dir <dir>', 'where local servers keep their state', defaultStateDir())
    .showHelpAfterError();

  cli
    .command('validate')
    .description('check a spec and report every problem at once (exit 2 if any)')
    .argument('<spec>', 'pipeline spec (YAML)')
    .option('--print', 'print the spec with every default applied')
    .option('--json', 'print the plan as JSON')
    .action(async (specFile: string, opts: { print?: boolean; json?: boolean }) => {
      const plan = await loadPlan(specFile);
      if (opts.json) printJson(plan);
      else if (opts.print) console.log(stringify(withReadableDurations((await loadSpecFile(specFile)).spec)));
      else console.log(`${specFile}: valid, ${plan.stages.length} stages in ${plan.levels.length} levels: ${plan.levels.map((l) => l.join(' + ')).join(' -> ')}`);
    });

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
      const summary = await runPlan(plan, { ...opts, stateDir: cli.opts().stateDir });
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
      const stateDir = cli.opts().stateDir;
      const client = await connectClient(await temporalSettings(stateDir));
      let resume: ReturnType<typeof planResume>;
      let plan: Plan;
      try {
        const workflowId = await resolveWorkflowId(client, run);
        const summary = await getRunSummary(client, workflowId);
        if (summary.status === 'running') throw new UsageError(`run ${summary.runId} is still running; cancel it first ("tempered cancel ${summary.runId}") or wait for it`);
        const previous = await getRunInput(client, workflowId);
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

  cli
    .command('status')
    .description("a run's per-stage status")
    .argument('<run>', 'run id or workflow id', checkRunArgument)
    .option('--json', 'print the summary as JSON')
    .action(async (run: string, opts: { json?: boolean }) =>
      withClient(cli, async (client) => {
        const summary = await getRunSummary(client, await resolveWorkflowId(client, run));
        if (opts.json) printJson(summary);
        else console.log(formatSummary(summary));
      }),
    );

  cli
    .command('list')
    .description('recent runs, newest first')
    .option('--limit <n>', 'how many', (v) => Number(v), 20)
    .option('--json', 'print as JSON')
    .action(async (opts: { limit: number; json?: boolean }) =>
      withClient(cli, async (client) => {
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
        const summary = await getRunSummary(client, await resolveWorkflowId(client, run));
        const files = await writeReport(cli.opts().stateDir, summary, opts.out);
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
        const workflowId = await resolveWorkflowId(client, run);
        await cancelRun(client, workflowId);
        console.log(`cancellation requested for ${workflowId}`);
      }),
    );

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
        const views = await listSchedules(client);
        if (opts.json) return printJson(views);
        if (views.length === 0) return console.log('no schedules; create one with "tempered schedule create <spec> --every 1d"');
        for (const v of views) console.log(`${v.scheduleId.padEnd(28)} ${v.pipeline.padEnd(24)} ${v.spec.padEnd(20)} ${v.paused ? 'paused' : 'active'}  next ${v.nextRuns?.[0] ?? '-'}`);
      }),
    );
  schedule
    .command('describe')
    .description("a schedule's recent and upcoming runs")
    .argument('<scheduleId>')
    .option('--json', 'print as JSON')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(cli, async (client) => {
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
        await triggerSchedule(client, id, opts.overlap);
        console.log(`triggered schedule ${id}`);
      }),
    );
  for (const [verb, description] of [['pause', 'stop starting runs'], ['unpause', 'start runs again'], ['delete', 'delete the schedule (its runs stay)']] as const) {
    schedule
      .command(verb)
      .description(description)
      .argument('<scheduleId>')
      .option('--note <text>', 'why (pause/unpause)')
      .action(async (id: string, opts: { note?: string }) =>
        withClient(cli, async (client) => {
          const handle = client.schedule.getHandle(id);
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
        await client.schedule.getHandle(id).backfill({ start, end, overlap: OVERLAP_POLICY_NAMES[opts.overlap] });
        console.log(`backfilling schedule ${id} from ${start.toISOString()} to ${end.toISOString()}`);
      });
    });

  const models = cli.command('models').description('the model registry in the store: versions, champion and previous aliases');
  models
    .command('register')
    .description("register a model stage's outputs from a run as the next version")
    .argument('<name>', 'model name, e.g. spam-classifier')
    .requiredOption('--run <run>', 'run id or workflow id', checkRunArgument)
    .requiredOption('--stage <stage>', 'a finetune, distill or quantize stage of that run')
    .option('--promote', 'make it the champion too')
    .action(async (name: string, opts: { run: string; stage: string; promote?: boolean }) =>
      withClient(cli, async (client) => {
        const summary = await getRunSummary(client, await resolveWorkflowId(client, opts.run));
        const stage = summary.stages[opts.stage];
        if (!stage?.manifest || (stage.status !== 'succeeded' && stage.status !== 'cached')) {
          throw new UsageError(`run ${summary.runId} has no finished stage "${opts.stage}"; finished stages: ${Object.entries(summary.stages).filter(([, s]) => s.manifest).map(([n]) => n).join(', ')}`);
        }
        const store = await openStore(cli.opts().stateDir);
        try {
          const manifest = await store.readJson<StageManifest>(stage.manifest);
          const version = await registerVersion(store, name, { outputs: manifest.outputs, metrics: manifest.metrics, lineage: { runId: summary.runId, pipeline: summary.pipeline, stage: opts.stage } });
          if (opts.promote) await promote(store, name, version.version, 'registered with --promote');
          console.log(`registered ${name} version ${version.version}${opts.promote ? ' as champion' : ''}`);
        } finally {
          await store.close();
        }
      }),
    );
  models
    .command('list')
    .description('registered models with their champion')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) =>
      withStore(cli, async (store) => {
        const rows = [];
        for (const name of await listModels(store)) rows.push({ name, versions: (await listVersions(store, name)).length, ...(await getAliases(store, name)) });
        if (opts.json) return printJson(rows.map(({ history: _, ...r }) => r));
        if (rows.length === 0) return console.log('no models registered; "tempered models register <name> --run <run> --stage <stage>" adds one');
        for (const r of rows) console.log(`${r.name.padEnd(28)} ${String(r.versions).padStart(3)} versions  champion ${r.champion ?? '-'}  previous ${r.previous ?? '-'}`);
      }),
    );
  models
    .command('show')
    .description("a model's versions, metrics, lineage and alias history")
    .argument('<name>')
    .option('--json', 'print as JSON')
    .action(async (name: string, opts: { json?: boolean }) =>
      withStore(cli, async (store) => {
        const aliases = await getAliases(store, name);
        const versions = await Promise.all((await listVersions(store, name)).map((v) => getVersion(store, name, v)));
        if (versions.length === 0) throw new UsageError(`no model "${name}"; "tempered models list" shows the registered ones`);
        if (opts.json) return printJson({ name, ...aliases, versions });
        for (const v of versions) {
          const tag = v.version === aliases.champion ? ' champion' : v.version === aliases.previous ? ' previous' : '';
          const m = v.metrics as Record<string, unknown>;
          console.log(`v${v.version}${tag}  ${v.createdAt}  run ${v.lineage.runId} stage ${v.lineage.stage}${typeof m.macroF1 === 'number' ? `  macro-F1 ${m.macroF1}` : ''}`);
        }
        for (const h of aliases.history) console.log(`  ${h.at} ${h.action} -> v${h.champion}${h.reason ? ` (${h.reason})` : ''}`);
      }),
    );
  models
    .command('promote')
    .description('make a version the champion (the old champion becomes previous)')
    .argument('<name>')
    .argument('<version>', 'version number', Number)
    .option('--reason <text>', 'why')
    .action(async (name: string, version: number, opts: { reason?: string }) =>
      withStore(cli, async (store) => {
        const a = await promote(store, name, version, opts.reason);
        console.log(`${name}: champion v${a.champion}, previous ${a.previous === undefined ? '-' : `v${a.previous}`}`);
      }),
    );
  models
    .command('rollback')
    .description('restore the previous champion')
    .argument('<name>')
    .option('--reason <text>', 'why')
    .action(async (name: string, opts: { reason?: string }) =>
      withStore(cli, async (store) => {
        const a = await rollback(store, name, opts.reason);
        console.log(`${name}: champion v${a.champion} again, previous v${a.previous}`);
      }),
    );

  cli
    .command('cycles')
    .description("a continual pipeline's completed retrain cycles, its collect watermark and replay reservoir")
    .argument('<pipeline>', 'pipeline name (metadata.name of its spec)')
    .option('--json', 'print the continual state as JSON')
    .action(async (pipeline: string, opts: { json?: boolean }) =>
      withStore(cli, async (store) => {
        const state = await readContinualState(store, pipeline);
        if (opts.json) printJson(state);
        else console.log(formatCycles(state, await readWatermark(store, state)));
      }),
    );

  cli
    .command('up')
    .description('build (once) and start a local Temporal dev server and MinIO; a no-op when they run')
    .addOption(new Option('--temporal-port <port>', 'Temporal gRPC port').default(DEFAULT_PORTS.temporal).argParser(Number))
    .addOption(new Option('--ui-port <port>', 'Temporal web UI port').default(DEFAULT_PORTS.temporalUi).argParser(Number))
    .addOption(new Option('--minio-port <port>', 'MinIO S3 port').default(DEFAULT_PORTS.minio).argParser(Number))
    .addOption(new Option('--console-port <port>', 'MinIO console port').default(DEFAULT_PORTS.minioConsole).argParser(Number))
    .action(async (opts: { temporalPort: number; uiPort: number; minioPort: number; consolePort: number }) => {
      await startLocalServers(cli.opts().stateDir, {
        temporal: opts.temporalPort,
        temporalUi: opts.uiPort,
        minio: opts.minioPort,
        minioConsole: opts.consolePort,
      });
    });

  cli
    .command('down')
    .description('stop the local servers (their data stays in the state directory)')
    .action(async () => {
      console.log((await down({ stateDir: cli.opts().stateDir })) ? 'stopped the local Temporal server and MinIO' : 'no local servers were running');
    });

  cli
    .command('worker')
    .description('poll task queues and run stages; run one per GPU node with --queue gpu')
    .addOption(new Option('--queue <queue>', 'which queue').choices(['cpu', 'gpu', 'all']).default('all'))
    .action(async (opts: { queue: 'cpu' | 'gpu' | 'all' }) => {
      const queues: TaskQueue[] = opts.queue === 'all' ? [TASK_QUEUES.cpu, TASK_QUEUES.gpu] : [opts.queue];
      const workers = await startWorkersFor(cli.opts().stateDir, queues);
      log(`worker polling ${queues.join(', ')}; Ctrl-C stops it after running stages finish their attempt`);
      const stop = () => void workers.shutdown();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await workers.done;
    });

  cli
    .command('demo')
    .description('start local servers and run the two-corpus demo pipeline end to end (--continual: three continual-learning cycles)')
    .option('--json', 'print the final summary as JSON')
    .option('--continual', 'run the continual demo: the mail corpus released in three slices, one scheduled retrain cycle each')
    .action(async (opts: { json?: boolean; continual?: boolean }) => {
      const stateDir = cli.opts().stateDir;
      await startLocalServers(stateDir);
      if (opts.continual) return continualDemo(stateDir);
      const specFile = path.join(EXAMPLES_DIR, 'demo.yaml');
      log(`running ${path.relative(process.cwd(), specFile)}`);
      const summary = await runPlan(await loadPlan(specFile), { local: true, wait: true, json: opts.json, stateDir });
      if (summary && !opts.json) {
        const servers = await readServers(stateDir);
        const headline = formatHeadline(summary);
        if (headline) log(`\n${headline}`);
        log(`\nartifacts: ${process.env.TEMPERED_STORE}/runs/${summary.pipeline}/${summary.runId}/`);
        if (servers) log(`browse them in the MinIO console ${servers.minio.consoleUrl} (user ${servers.minio.accessKeyId}, password in ${path.join(stateDir, 'servers.json')})`);
        const report = await writeReport(stateDir, summary);
        log(`report: ${report.htmlPath}`);
      }
      if (summary?.status !== 'succeeded') process.exitCode ??= EXIT.failed;
    });

  return cli;
}

async function continualDemo(stateDir: string): Promise<void> {
  // Queues of this process alone, like `run --local`: no other worker on the server takes its ticks.
  const queuePrefix = localQueuePrefix(queuePrefixFromEnv());
  const workers = await startWorkersFor(stateDir, [TASK_QUEUES.cpu, TASK_QUEUES.gpu], 'ERROR', queuePrefix);
  const client = await connectClient(await temporalSettings(stateDir));
  const store = await openStore(stateDir);
  try {
    const result = await runContinualDemo({
      client,
      store,
      workDir: path.join(stateDir, 'continual-demo'),
      specFile: path.join(EXAMPLES_DIR, 'continual.yaml'),
      plan: async (specFile) => ({ ...(await loadPlan(specFile)), queuePrefix }),
      log,
    });
    const last = [...result.runs].reverse().find((r) => !r.endedEarly && r.status === 'succeeded');
    if (last) log(`\nreport: ${(await writeReport(stateDir, last)).htmlPath}`);
    log(`cycles: tempered cycles ${result.pipeline}    models: tempered models list ${result.pipeline}`);
    if (result.runs.some((r) => r.status !== 'succeeded')) process.exitCode = EXIT.failed;
  } finally {
    await client.connection.close();
    await workers.shutdown();
    await store.close();
  }
}

/** Writes the run's report under the state directory unless `out` says where; curves come from the store. */
async function writeReport(stateDir: string, summary: RunSummary, out?: string) {
  const store = await openStore(stateDir);
  try {
    return await writeRunReport(summary, out ? path.resolve(out) : defaultReportDir(path.join(stateDir, 'reports'), summary.runId), store);
  } finally {
    await store.close();
  }
}

async function loadPlan(specFile: string, options: { noCache?: boolean } = {}): Promise<Plan> {
  return planPipeline(await loadSpecFile(specFile), { queuePrefix: queuePrefixFromEnv(), ...options });
}

async function startLocalServers(stateDir: string, ports?: Partial<typeof DEFAULT_PORTS>): Promise<void> {
  const servers = await up({ stateDir, ports, log });
  log(servers.alreadyRunning ? 'local servers already running' : 'local servers started');
  log(`  Temporal  ${servers.temporal.address}   web UI ${servers.temporal.uiUrl}`);
  log(`  MinIO     ${servers.minio.endpoint}   console ${servers.minio.consoleUrl}`);
  log(`  state     ${servers.stateDir}`);
}

async function startWorkersFor(stateDir: string, queues: TaskQueue[], logLevel: 'WARN' | 'ERROR' = 'WARN', queuePrefix?: string): Promise<RunningWorkers> {
  const settings = await temporalSettings(stateDir);
  if (settings.source === 'local') await applyLocalStoreEnv(stateDir);
  const config = storeConfigFromEnv();
  log(`store: ${describeStore(config)}`);
  // In-process workers of `run --local` stay quiet: the run's own output reports failures.
  installWorkerRuntime({ level: logLevel });
  return startWorkers({ settings, store: createStore(config), queues, queuePrefix });
}

async function runPlan(
  plan: Plan,
  opts: { runId?: string; wait?: boolean; json?: boolean; local?: boolean; stateDir: string; reuse?: PipelineWorkflowInput['reuse'] },
): Promise<RunSummary | undefined> {
  const settings = await temporalSettings(opts.stateDir);
  const neededQueues = [...new Set<TaskQueue>([TASK_QUEUES.cpu, ...plan.stages.map((s) => s.activity.taskQueue)])];
  // In-process workers poll queues of this process alone, so another `--local` run never takes its stages.
  if (opts.local) plan = { ...plan, queuePrefix: localQueuePrefix(plan.queuePrefix) };
  const workers = opts.local ? await startWorkersFor(opts.stateDir, neededQueues, 'ERROR', plan.queuePrefix) : undefined;
  const client = await connectClient(settings);
  try {
    if (!workers) {
      for (const queue of await queuesWithoutWorkers(client, plan)) {
        const pool = queue.slice(plan.queuePrefix.length);
        log(`warning: no worker polls the "${queue}" queue, so its stages will wait. Start one with "tempered worker --queue ${pool}", or use "tempered run --local"`);
      }
    }
    const runId = opts.runId ?? newRunId();
    let started: { workflowId: string; attached: boolean };
    try {
      started = await startRun(client, plan, runId, opts.reuse);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new UsageError(`run id "${runId}" was already used by a finished run; choose another --run-id`);
      }
      throw err;
    }
    log(`${started.attached ? 'attached to running' : 'started'} run ${runId} (workflow ${started.workflowId})`);
    const ui = uiLink(settings, started.workflowId, await readServers(opts.stateDir));
    if (ui) log(`  follow it at ${ui}`);
    if (!opts.wait && !opts.json && !opts.local) {
      console.log(runId);
      return undefined;
    }
    // The run's workers live in this process: a signal must not leave it RUNNING with none. The
    // first Ctrl-C / SIGTERM cancels it and waits until its stages have stopped; a second exits now.
    const stopSignals = workers ? cancelOnSignal(client, started.workflowId, runId) : undefined;
    try {
      const summary = await waitForRun(client, started.workflowId, !opts.json);
      if (opts.json) printJson(summary);
      else console.log(formatSummary(summary));
      if (stopSignals?.received) process.exitCode = stopSignals.received === 'SIGINT' ? EXIT.interrupted : EXIT.terminated;
      return summary;
    } finally {
      stopSignals?.remove();
    }
  } finally {
    await client.connection.close();
    await workers?.shutdown();
  }
}

/** Cancels the run on the first SIGINT or SIGTERM, exits on the second. */
function cancelOnSignal(client: Client, workflowId: string, runId: string): { received?: NodeJS.Signals; remove(): void } {
  const state: { received?: NodeJS.Signals; remove(): void } = {
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
  function onSignal(signal: NodeJS.Signals) {
    if (state.received) {
      log(`${signal} again: exiting without waiting; run ${runId} may stay RUNNING until a worker picks it up ("tempered cancel ${runId}")`);
      process.exit(signal === 'SIGINT' ? EXIT.interrupted : EXIT.terminated);
    }
    state.received = signal;
    log(`${signal}: cancelling run ${runId}, whose workers run in this process; waiting for its stages to stop (again to exit now)`);
    client.workflow.getHandle(workflowId).cancel().catch((err: unknown) => log(`could not cancel run ${runId}: ${err instanceof Error ? err.message : String(err)}`));
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return state;
}

function uiLink(settings: TemporalSettings, workflowId: string, servers: Awaited<ReturnType<typeof readServers>>): string | undefined {
  if (settings.source !== 'local' || !servers) return undefined;
  return `${servers.temporal.uiUrl}/namespaces/${settings.namespace}/workflows/${encodeURIComponent(workflowId)}`;
}

/** The artifact store: TEMPERED_STORE, else the local MinIO. */
async function openStore(stateDir: string): Promise<ArtifactStore> {
  if (!process.env.TEMPERED_STORE && (await readServers(stateDir))) await applyLocalStoreEnv(stateDir);
  return createStore(storeConfigFromEnv());
}

async function withStore(cli: Command, fn: (store: ArtifactStore) => Promise<void>): Promise<void> {
  const store = await openStore(cli.opts().stateDir);
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

async function withClient(cli: Command, fn: (client: Client) => Promise<void>): Promise<void> {
  const client = await connectClient(await temporalSettings(cli.opts().stateDir));
  try {
    await fn(client);
  } finally {
    await client.connection.close();
  }
}

const DURATION_KEYS = new Set(['timeout', 'heartbeatTimeout', 'initialInterval', 'maximumInterval']);

function withReadableDurations(value: unknown, key = ''): unknown {
  if (typeof value === 'number' && DURATION_KEYS.has(key)) return formatDuration(value);
  if (Array.isArray(value)) return value.map((v) => withReadableDurations(v));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withReadableDurations(v, k)]));
  }
  return value;
}

/** Wrong arguments: exit 2 with the message. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

export async function main(argv = process.argv): Promise<void> {
  if (argv.includes('--json')) keepStdoutForJson();
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof SpecValidationError || err instanceof UsageError || err instanceof InvalidRunIdError || err instanceof ScheduleInputError || err instanceof RegistryError) {
      log(err.message);
      process.exitCode = EXIT.badInput;
    } else if (err instanceof NoServerError) {
      log(`error: ${err.message}`);
      process.exitCode = EXIT.failed;
    } else {
      log(`error: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = EXIT.failed;
    }
  }
}

if (require.main === module) {
  void main().then(() => exitAfterFlush(Number(process.exitCode ?? 0)));
}
