import * as os from 'node:os';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
  type LogLevel,
  type Logger,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { createActivities } from '../activities';
import { GpuSlots } from '../activities/gpu-slots';
import type { ArtifactStore } from '../activities/store';
import { TASK_QUEUES, taskQueueName, type TaskQueue } from '../pipelines/plan';
import { connectionOptions, type TemporalSettings } from './config';
import { detectGpuDevices, type GpuDevices } from './gpu-devices';
import { queuePrefixFromEnv } from './queue-prefix';

/** Options of the workers one process runs. */
export interface WorkerOptions {
  settings: TemporalSettings;
  store: ArtifactStore;
  /** Pools to poll. Workflows run on the `cpu` pool's worker. Default both. */
  queues?: TaskQueue[];
  /** Task queue name prefix. Default `TEMPERED_TASK_QUEUE_PREFIX` or ''. */
  queuePrefix?: string;
  /**
   * The `gpu` worker's devices: a count (`4`: devices 0..3) or device ids (`['0', '2', '5']`). Each
   * gpu-queue attempt holds `resources.gpu` of them. Default: TEMPERED_GPUS, else
   * CUDA_VISIBLE_DEVICES, else the GPUs `nvidia-smi -L` lists, else one (infra/gpu-devices.ts).
   */
  gpus?: number | readonly string[];
  /** Where stage compute runs (see `ActivityDependencies.compute`). Default `thread`. */
  compute?: 'thread' | 'main';
  /** Pre-built workflow bundle (tests and `run --local` build it once). */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

/** Workers that are polling; `shutdown()` drains them and closes the connection. */
export interface RunningWorkers {
  queues: TaskQueue[];
  /** The `gpu` worker's devices and where the list came from; absent when it does not poll `gpu`. */
  gpus?: GpuDevices;
  /** Resolves when every worker has stopped; rejects if one crashed. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Installs the process's Temporal runtime so that every log line — the TypeScript SDK's and the
 * native core's (e.g. TMPRL1104 warnings) — goes through `logger`, which writes to stderr by
 * default (left alone, core prints coloured lines to stdout, into `--json` output), and leaves
 * signals to the entry point. Must run before the first connection; a second call in one process
 * keeps the first runtime.
 */
export function installWorkerRuntime(options: { level?: LogLevel; logger?: Logger } = {}): void {
  const level = options.level ?? 'WARN';
  if (Runtime._instance) return;
  Runtime.install({
    logger: options.logger ?? new DefaultLogger(level),
    // The SDK's default stops every worker on SIGINT/SIGTERM by itself: a `run --local` would lose
    // its workers and leave the run RUNNING. The entry points handle signals (cancel, then drain).
    shutdownSignals: [],
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: level, other: level }), forward: {} } },
  });
}

/** Bundles the workflow code once (webpack; a few seconds). */
export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietLogger });
}

/** Starts a worker per queue on one connection. */
export async function startWorkers(options: WorkerOptions): Promise<RunningWorkers> {
  const queues = options.queues ?? [TASK_QUEUES.cpu, TASK_QUEUES.gpu];
  installWorkerRuntime();
  // A bad TEMPERED_GPUS stops the worker before it connects.
  const gpus = queues.includes(TASK_QUEUES.gpu) ? detectGpuDevices(options.gpus) : undefined;
  const gpuSlots = gpus ? new GpuSlots(gpus.devices) : undefined;
  const connection = await NativeConnection.connect(await connectionOptions(options.settings));
  const activities = createActivities({ store: options.store, compute: options.compute, gpuSlots });
  try {
    const bundle = queues.includes(TASK_QUEUES.cpu) ? (options.workflowBundle ?? (await bundleWorkflows())) : undefined;
    const workers = await Promise.all(
      queues.map((taskQueue) =>
        Worker.create({
          connection,
          namespace: options.settings.namespace,
          taskQueue: taskQueueName(taskQueue, options.queuePrefix ?? queuePrefixFromEnv()),
          activities,
          ...(taskQueue === TASK_QUEUES.cpu ? { workflowBundle: bundle } : {}),
          // A gpu worker takes one activity per device: every attempt holds at least one, so more
          // could only wait here for devices while another worker sits idle. Attempts take their
          // devices all at once, first come first served (activities/gpu-slots.ts), so N-device
          // stages cannot deadlock. CPU stages are bounded by cores.
          maxConcurrentActivityTaskExecutions: taskQueue === TASK_QUEUES.gpu ? gpuSlots!.devices.length : Math.max(2, os.availableParallelism()),
          shutdownGraceTime: '5s',
          // Heartbeats carry the progress `status` and the progress bars show: send them every 2 s
          // rather than at 80% of the heartbeat timeout (48 s with the default 1 m).
          maxHeartbeatThrottleInterval: '2s',
          // When the worker holding a run's workflow state dies, another picks the run up after
          // this (the SDK default is 10 s); replaying our small histories is cheap.
          stickyQueueScheduleToStartTimeout: '3s',
        }),
      ),
    );
    const done = Promise.all(workers.map((w) => w.run())).then(
      () => undefined,
      async (err: unknown) => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        throw err;
      },
    );
    const closed = done.finally(() => connection.close());
    return {
      queues,
      ...(gpus ? { gpus } : {}),
      done: closed,
      async shutdown() {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await closed.catch(() => undefined);
      },
    };
  } catch (err) {
    await connection.close();
    throw err;
  }
}

const quietLogger = {
  log: () => {},
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: (message: string) => console.warn(message),
  error: (message: string) => console.error(message),
};
