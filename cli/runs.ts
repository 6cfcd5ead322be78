import { randomBytes } from 'node:crypto';
import { WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TASK_QUEUES, taskQueueName, type Plan } from '../pipelines/plan';
import { checkRunArgument } from '../pipelines/run-id';
import { progressQuery, type PipelineWorkflowInput } from '../workflows/pipeline';
import type { RunStatus, RunSummary } from '../workflows/types';
import { runIdFromWorkflowId } from '../workflows/run-id';
import { createProgressView } from './progress-view';

// Client-side operations on runs: start, find, summarize, cancel, list.

export const WORKFLOW_TYPE = 'pipelineWorkflow';

/** A run id: sortable by start time, unique enough to never collide in practice. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/**
 * The task queue prefix of one `run --local` process: its in-process workers poll only these
 * queues, so two local runs on one server (two terminals) never take each other's stages.
 */
export function localQueuePrefix(basePrefix = ''): string {
  return `${basePrefix}local-${randomBytes(4).toString('hex')}-`;
}

/** Workflow id of a run: pipeline name and run id. */
export function workflowIdOf(pipeline: string, runId: string): string {
  return `${pipeline}--${runId}`;
}

/**
 * Starts a run. Starting a run id that is still running attaches to it instead of starting a
 * second one (and the server's conflict policy guarantees it even when two starts race).
 */
export async function startRun(
  client: Client,
  plan: Plan,
  runId: string,
  reuse?: PipelineWorkflowInput['reuse'],
): Promise<{ workflowId: string; attached: boolean }> {
  const workflowId = workflowIdOf(plan.pipeline, runId);
  try {
    const existing = await client.workflow.getHandle(workflowId).describe();
    if (existing.status.name === 'RUNNING') return { workflowId, attached: true };
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  const input: PipelineWorkflowInput = { runId, plan, ...(reuse ? { reuse } : {}) };
  await client.workflow.start(WORKFLOW_TYPE, {
    taskQueue: taskQueueName(TASK_QUEUES.cpu, plan.queuePrefix),
    workflowId,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    memo: { pipeline: plan.pipeline, runId },
  });
  return { workflowId, attached: false };
}

/** Resolves a run id or a workflow id to the workflow id. Throws InvalidRunIdError for one that breaks the run id rule. */
export async function resolveWorkflowId(client: Client, run: string): Promise<string> {
  checkRunArgument(run);
  if (run.includes('--')) return run;
  for await (const execution of client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}'` })) {
    if (execution.workflowId.endsWith(`--${run}`) || runIdFromWorkflowId(execution.workflowId) === run) return execution.workflowId;
  }
  throw new RunNotFoundError(run);
}

/** No run matches what the user typed. */
export class RunNotFoundError extends Error {
  override readonly name = 'RunNotFoundError';
  constructor(readonly run: string) {
    super(`no run "${run}" on this Temporal namespace; "tempered list" shows the runs there are`);
  }
}

const STATUS_BY_WORKFLOW: Record<string, RunStatus> = {
  RUNNING: 'running',
  COMPLETED: 'succeeded',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'cancelled',
  TIMED_OUT: 'failed',
  CONTINUED_AS_NEW: 'running',
};

/**
 * The run's summary now. A running run answers the `progress` query, merged with the server's
 * view of running attempts (attempt number, last heartbeat details); a finished run's summary
 * comes from its result or failure, so no worker is needed to read it.
 */
export async function getRunSummary(client: Client, workflowId: string): Promise<RunSummary> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const status = STATUS_BY_WORKFLOW[description.status.name] ?? 'running';
  if (status === 'succeeded') return (await handle.result()) as RunSummary;
  if (status === 'failed') {
    try {
      await handle.result();
    } catch (err) {
      const details = err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure ? err.cause.details : undefined;
      if (details?.[0]) return { ...(details[0] as RunSummary), status: 'failed' };
    }
  }
  let summary: RunSummary;
  try {
    summary = await handle.query(progressQuery);
  } catch {
    summary = fallbackSummary(workflowId, description);
  }
  if (status !== 'running') return { ...summary, status };
  mergePendingActivities(summary, description);
  return summary;
}

function fallbackSummary(workflowId: string, description: WorkflowExecutionDescription): RunSummary {
  const memo = (description.memo ?? {}) as { pipeline?: string; runId?: string };
  return {
    runId: memo.runId ?? runIdFromWorkflowId(workflowId),
    workflowId,
    pipeline: memo.pipeline ?? '?',
    status: STATUS_BY_WORKFLOW[description.status.name] ?? 'running',
    startedAt: description.startTime.toISOString(),
    endedAt: description.closeTime?.toISOString(),
    stages: {},
  };
}

function mergePendingActivities(summary: RunSummary, description: WorkflowExecutionDescription): void {
  for (const pending of description.raw.pendingActivities ?? []) {
    const stage = pending.activityId ? summary.stages[pending.activityId] : undefined;
    if (!stage) continue;
    stage.attempts = pending.attempt ?? stage.attempts;
    // The workflow marks a stage running when it schedules it; the server knows if a worker took it.
    if (pending.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED && stage.status === 'running') stage.status = 'queued';
    const payload = pending.heartbeatDetails?.payloads?.[0];
    if (payload) stage.heartbeat = defaultPayloadConverter.fromPayload(payload);
    if (pending.lastFailure?.message) stage.error = `last attempt: ${pending.lastFailure.message}`;
  }
}

/** Recent runs, newest first. */
export async function listRuns(client: Client, limit: number): Promise<Array<{ workflowId: string; runId: string; pipeline: string; status: RunStatus; startedAt: string; endedAt?: string }>> {
  const runs = [];
  for await (const execution of client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}'` })) {
    const memo = (execution.memo ?? {}) as { pipeline?: string; runId?: string };
    runs.push({
      workflowId: execution.workflowId,
      runId: memo.runId ?? runIdFromWorkflowId(execution.workflowId),
      pipeline: memo.pipeline ?? '?',
      status: STATUS_BY_WORKFLOW[execution.status.name] ?? 'running',
      startedAt: execution.startTime.toISOString(),
      endedAt: execution.closeTime?.toISOString(),
    });
    if (runs.length >= limit) break;
  }
  return runs;
}

/** Task queues the plan needs that no worker is polling right now. */
export async function queuesWithoutWorkers(client: Client, plan: Plan): Promise<string[]> {
  const needed = new Set<typeof TASK_QUEUES.cpu | typeof TASK_QUEUES.gpu>([TASK_QUEUES.cpu, ...plan.stages.map((s) => s.activity.taskQueue)]);
  const missing: string[] = [];
  for (const queue of needed) {
    // Activity pollers on the queue; the cpu queue's worker also polls workflow tasks.
    const response = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueueName(queue as typeof TASK_QUEUES.cpu, plan.queuePrefix) },
      taskQueueType: 2, // TASK_QUEUE_TYPE_ACTIVITY
    });
    if ((response.pollers ?? []).length === 0) missing.push(taskQueueName(queue, plan.queuePrefix));
  }
  return missing;
}

/** Requests cancellation; the workflow cancels its running stages and ends as cancelled. */
export async function cancelRun(client: Client, workflowId: string): Promise<void> {
  await client.workflow.getHandle(workflowId).cancel();
}

/** The input a run was started with (its plan), from the first event of its history. */
export async function getRunInput(client: Client, workflowId: string): Promise<PipelineWorkflowInput> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`run ${workflowId} has no recorded input`);
  return defaultPayloadConverter.fromPayload(payload) as PipelineWorkflowInput;
}

/** Polls the run until it ends, drawing its stages' progress unless `showProgress` is false. */
export async function waitForRun(client: Client, workflowId: string, showProgress = true): Promise<RunSummary> {
  const view = showProgress ? createProgressView() : undefined;
  try {
    for (;;) {
      const summary = await getRunSummary(client, workflowId);
      view?.update(summary);
      if (summary.status !== 'running') return summary;
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    view?.stop();
  }
}
