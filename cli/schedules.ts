import { isGrpcServiceError, ScheduleAlreadyRunning, ScheduleNotFoundError, type Client, type ScheduleDescription, type ScheduleHandle, type ScheduleOverlapPolicy } from '@temporalio/client';
import { formatDuration, parseDuration } from '../pipelines/duration';
import { TASK_QUEUES, taskQueueName, type Plan } from '../pipelines/plan';
import type { ScheduleBlock } from '../pipelines/schema';
import type { PipelineWorkflowInput } from '../workflows/pipeline';
import { runDescription, runSearchAttributes, WORKFLOW_TYPE } from './runs';

// Recurring runs on Temporal Schedules: each tick starts one pipeline run.

/** Spec spelling -> Temporal's. */
export const OVERLAP_POLICY_NAMES: Record<ScheduleBlock['overlap'], ScheduleOverlapPolicy> = {
  skip: 'SKIP',
  'buffer-one': 'BUFFER_ONE',
  'buffer-all': 'BUFFER_ALL',
  'cancel-other': 'CANCEL_OTHER',
  'terminate-other': 'TERMINATE_OTHER',
  'allow-all': 'ALLOW_ALL',
};

/** What a schedule shows in `list` and `describe`. */
export interface ScheduleView {
  scheduleId: string;
  pipeline: string;
  spec: string;
  overlap: string;
  paused: boolean;
  note?: string;
  actionsTaken?: number;
  skippedOverlap?: number;
  recentRuns?: Array<{ workflowId: string; scheduledAt: string; startedAt: string }>;
  runningRuns?: string[];
  nextRuns?: string[];
}

/** Creates a schedule that runs `plan`: `cron` or `every` from the options, else the spec's `schedule:` block. */
export async function createSchedule(
  client: Client,
  plan: Plan,
  options: { scheduleId?: string; cron?: string; every?: string; overlap?: ScheduleBlock['overlap']; paused?: boolean },
  block?: ScheduleBlock,
): Promise<string> {
  const cron = options.cron ?? (options.every ? undefined : block?.cron);
  const everyMs = options.every !== undefined ? parseDuration(options.every) : options.cron ? undefined : block?.every;
  if (options.every !== undefined && everyMs === undefined) throw new ScheduleInputError(`--every ${JSON.stringify(options.every)} is not a duration; use e.g. 30m, 6h, 1d`);
  if (options.every !== undefined && everyMs !== undefined && (everyMs < 1000 || everyMs > 366 * 86_400_000)) {
    throw new ScheduleInputError(`--every ${JSON.stringify(options.every)} must be from 1s to 366d: Temporal refuses a zero interval; use e.g. 30m, 6h, 1d`);
  }
  if (cron === undefined && everyMs === undefined) {
    throw new ScheduleInputError('no schedule: pass --cron "<expr>" or --every <duration>, or add a schedule: block (cron or every) to the spec');
  }
  const scheduleId = options.scheduleId ?? plan.pipeline;
  const input: PipelineWorkflowInput = { plan };
  try {
    await createOn(client, scheduleId, plan, input, cron, everyMs, options, block);
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) {
      throw new ScheduleInputError(`a schedule "${scheduleId}" exists already; delete it first ("tempered schedule delete ${scheduleId}") or give another --id`);
    }
    // The server checks the cron expression; the SDK turns its "Invalid schedule spec"
    // INVALID_ARGUMENT into a TypeError. Either way it is the user's input, not an outage.
    const cause = (err as { cause?: unknown }).cause;
    const refusal = err instanceof TypeError ? err.message : isGrpcServiceError(cause) && cause.code === 3 ? cause.details : undefined;
    if (refusal !== undefined) {
      const what = cron !== undefined ? `cron expression ${JSON.stringify(cron)}` : 'schedule';
      throw new ScheduleInputError(`the server refused the ${what}: ${refusal}. Use five fields "minute hour day-of-month month day-of-week" in UTC, e.g. "0 3 * * *" (03:00 daily), or --every 6h`);
    }
    throw err;
  }
  return scheduleId;
}

async function createOn(
  client: Client,
  scheduleId: string,
  plan: Plan,
  input: PipelineWorkflowInput,
  cron: string | undefined,
  everyMs: number | undefined,
  options: { overlap?: ScheduleBlock['overlap']; paused?: boolean },
  block?: ScheduleBlock,
): Promise<void> {
  await client.schedule.create({
    scheduleId,
    spec: cron !== undefined ? { cronExpressions: [cron] } : { intervals: [{ every: everyMs! }] },
    action: {
      type: 'startWorkflow',
      workflowType: WORKFLOW_TYPE,
      // The server appends each tick's time to this id; the run id is derived from it.
      workflowId: `${plan.pipeline}--${scheduleId}`,
      taskQueue: taskQueueName(TASK_QUEUES.cpu, plan.queuePrefix),
      args: [input],
      memo: { pipeline: plan.pipeline, scheduleId },
      // Each tick's run adds its run id itself (it only knows it once started).
      ...(await runSearchAttributes(client, plan.pipeline)),
      ...runDescription(plan, undefined),
    },
    policies: { overlap: OVERLAP_POLICY_NAMES[options.overlap ?? block?.overlap ?? 'skip'], catchupWindow: '1 day' },
    state: { paused: options.paused ?? block?.paused ?? false, note: `tempered: ${plan.pipeline}` },
    // The server keeps cron expressions only in parsed form: remember what the user wrote.
    memo: { pipeline: plan.pipeline, spec: cron !== undefined ? `cron ${cron}` : `every ${formatDuration(everyMs!)}` },
  });
}

/** The handle of an existing schedule; an unknown id is the user's input error, naming the known ones. */
export async function scheduleHandle(client: Client, scheduleId: string): Promise<ScheduleHandle> {
  await describeOrExplain(client, scheduleId);
  return client.schedule.getHandle(scheduleId);
}

async function describeOrExplain(client: Client, scheduleId: string): Promise<ScheduleDescription> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    const known = (await listSchedules(client).catch(() => [])).map((v) => v.scheduleId);
    throw new ScheduleInputError(
      `no schedule "${scheduleId}"; ${known.length > 0 ? `schedules: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''}` : 'none exist yet ("tempered schedule create <spec> --every 1d" makes one)'}`,
    );
  }
}

/** Every schedule of this namespace that runs a Tempered pipeline. */
export async function listSchedules(client: Client): Promise<ScheduleView[]> {
  const views: ScheduleView[] = [];
  for await (const summary of client.schedule.list()) {
    const memo = (summary.memo ?? {}) as { pipeline?: string; spec?: string };
    if (!memo.pipeline) continue;
    views.push({
      scheduleId: summary.scheduleId,
      pipeline: memo.pipeline,
      spec: memo.spec ?? '?',
      overlap: '',
      paused: summary.state.paused,
      note: summary.state.note,
      nextRuns: summary.info?.nextActionTimes?.slice(0, 3).map((d) => d.toISOString()),
    });
  }
  for (const view of views) {
    const description = await client.schedule.getHandle(view.scheduleId).describe();
    view.overlap = description.policies.overlap ?? 'SKIP';
  }
  return views.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

/** Recent and upcoming runs, counts and state of one schedule. */
export async function describeSchedule(client: Client, scheduleId: string): Promise<ScheduleView> {
  const d = await describeOrExplain(client, scheduleId);
  const memo = (d.memo ?? {}) as { pipeline?: string; spec?: string };
  return {
    scheduleId,
    pipeline: memo.pipeline ?? '?',
    spec: memo.spec ?? '?',
    overlap: d.policies.overlap ?? 'SKIP',
    paused: d.state.paused,
    note: d.state.note,
    actionsTaken: d.info.numActionsTaken,
    skippedOverlap: d.info.numActionsSkippedOverlap,
    recentRuns: d.info.recentActions.map((a) => ({ workflowId: a.action.workflow.workflowId, scheduledAt: a.scheduledAt.toISOString(), startedAt: a.takenAt.toISOString() })),
    runningRuns: d.info.runningActions.map((a) => a.workflow.workflowId),
    nextRuns: d.info.nextActionTimes.slice(0, 5).map((t) => t.toISOString()),
  };
}

/**
 * Takes an action now. Unlike the SDK's default (allow-all), a manual tick follows the schedule's
 * own overlap policy unless `overlap` overrides it: "tick now" should behave like a tick.
 */
export async function triggerSchedule(client: Client, scheduleId: string, overlap?: ScheduleBlock['overlap']): Promise<void> {
  const handle = client.schedule.getHandle(scheduleId);
  const description = await describeOrExplain(client, scheduleId);
  // The server names a tick's workflow after its time to the second, so two ticks in one second
  // would share a workflow id — and the second, a run id. Give each manual tick its own second.
  const last = description.info.recentActions.at(-1)?.scheduledAt.getTime();
  const wait = last === undefined ? 0 : last + 1100 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 1100)));
  await handle.trigger(overlap ? OVERLAP_POLICY_NAMES[overlap] : (description.policies.overlap ?? 'SKIP'));
}

/** Wrong schedule arguments: exit 2 with the message. */
export class ScheduleInputError extends Error {
  override readonly name = 'ScheduleInputError';
}

/**
 * Triggers the schedule and returns the workflow id of the run the tick started, or undefined if
 * the overlap policy dropped it (no new run within `waitMs`).
 */
export async function triggerAndFindRun(client: Client, scheduleId: string, waitMs = 10_000): Promise<string | undefined> {
  const before = new Set((await describeSchedule(client, scheduleId)).recentRuns?.map((r) => r.workflowId));
  await triggerSchedule(client, scheduleId);
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const started = (await describeSchedule(client, scheduleId)).recentRuns?.find((r) => !before.has(r.workflowId));
    if (started) return started.workflowId;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return undefined;
}
