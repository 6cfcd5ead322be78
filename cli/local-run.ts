import * as path from 'node:path';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { createStore, describeStore, storeConfigFromEnv } from '../activities/store';
import { applyLocalStoreEnv, connectClient, temporalSettings, type TemporalSettings } from '../infra/config';
import { queuePrefixFromEnv } from '../infra/queue-prefix';
import { readServers, up } from '../infra/servers';
import type { ServerPorts } from '../infra/state-dir';
import { installWorkerRuntime, startWorkers, type RunningWorkers } from '../infra/worker';
import { TASK_QUEUES, type Plan, type TaskQueue } from '../pipelines/plan';
import type { PipelineWorkflowInput } from '../workflows/pipeline';
import type { RunSummary } from '../workflows/types';
import { EXAMPLES_DIR, EXIT, loadPlan, log, openStore, UsageError } from './commands/shared';
import { runContinualDemo } from './continual-demo';
import { formatSummary } from './format';
import { printJson } from './output';
import { defaultReportDir, writeRunReport } from './report';
import { localQueuePrefix, newRunId, queuesWithoutWorkers, startRun, waitForRun } from './runs';

// The heavy half of the commands that start runs and servers: loaded only by the commands that need it.

export async function startLocalServers(stateDir: string, ports?: Partial<ServerPorts>): Promise<void> {
  const servers = await up({ stateDir, ports, log });
  log(servers.alreadyRunning ? 'local servers already running' : 'local servers started');
  log(`  Temporal  ${servers.temporal.address}   web UI ${servers.temporal.uiUrl}`);
  log(`  MinIO     ${servers.minio.endpoint}   console ${servers.minio.consoleUrl}`);
  log(`  state     ${servers.stateDir}`);
}

export async function startWorkersFor(stateDir: string, queues: TaskQueue[], logLevel: 'WARN' | 'ERROR' = 'WARN', queuePrefix?: string): Promise<RunningWorkers> {
  const settings = await temporalSettings(stateDir);
  if (settings.source === 'local') await applyLocalStoreEnv(stateDir);
  const config = storeConfigFromEnv();
  log(`store: ${describeStore(config)}`);
  // In-process workers of `run --local` stay quiet: the run's own output reports failures.
  installWorkerRuntime({ level: logLevel });
  return startWorkers({ settings, store: createStore(config), queues, queuePrefix });
}

/** Writes the run's report under the state directory unless `out` says where; curves come from the store. */
export async function writeReport(stateDir: string, summary: RunSummary, out?: string) {
  const store = await openStore(stateDir);
  try {
    return await writeRunReport(summary, out ? path.resolve(out) : defaultReportDir(path.join(stateDir, 'reports'), summary.runId), store);
  } finally {
    await store.close();
  }
}

export interface RunPlanOptions {
  runId?: string;
  wait?: boolean;
  json?: boolean;
  local?: boolean;
  stateDir: string;
  reuse?: PipelineWorkflowInput['reuse'];
}

/** Starts a run of `plan` (with in-process workers for `local`), and waits for it unless told not to. */
export async function runPlan(plan: Plan, opts: RunPlanOptions): Promise<RunSummary | undefined> {
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

/** The continual demo: three scheduled retrain cycles on the mail corpus, in this process. */
export async function continualDemo(stateDir: string): Promise<void> {
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
