import { randomBytes } from 'node:crypto';
import { WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, type SearchAttributePair } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { NOT_ENOUGH_GPUS } from '../activities/gpu-slots';
import { TASK_QUEUES, taskQueueName, type Plan } from '../pipelines/plan';
import { checkRunArgument } from '../pipelines/run-id';
import { progressQuery, type PipelineWorkflowInput } from '../workflows/pipeline';
import { PIPELINE_ATTRIBUTE, RUN_ID_ATTRIBUTE, SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
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
    ...(await runSearchAttributes(client, plan.pipeline, runId)),
    ...runDescription(plan, runId, reuse),
  });
  return { workflowId, attached: false };
}

/** What the Temporal UI shows at the top of a run: pipeline and run id, then the spec digest and stages. */
export function runDescription(plan: Plan, runId: string | undefined, reuse?: PipelineWorkflowInput['reuse']): { staticSummary: string; staticDetails: string } {
  const reused = Object.keys(reuse ?? {});
  return {
    staticSummary: `${plan.pipeline}${runId ? ` run ${runId}` : ''} (${plan.stages.length} stages)`,
    staticDetails: [
      `**pipeline** ${plan.pipeline}`,
      ...(runId ? [`**run** ${runId}`] : []),
      `**spec digest** \`${plan.specDigest}\``,
      `**seed** ${plan.seed}`,
      `**stages** ${plan.stages.map((s) => `${s.name} (${s.type}${s.activity.taskQueue === TASK_QUEUES.gpu ? ', gpu' : ''})`).join(', ')}`,
      ...(reused.length > 0 ? [`**resumed** reusing ${reused.join(', ')}`] : []),
    ].join('\n\n'),
  };
}

/**
 * The search attributes of a new run, registering them on the namespace first if needed (once per
 * client). A server that refuses to register them (e.g. a cloud namespace where the operator API
 * is not allowed; register TemperedPipeline and TemperedRunId as Keyword there) still runs
 * pipelines, without the attributes.
 */
export async function runSearchAttributes(client: Client, pipeline: string, runId?: string): Promise<{ typedSearchAttributes?: SearchAttributePair[] }> {
  if (!(await ensureSearchAttributes(client))) return {};
  return {
    typedSearchAttributes: [
      { key: PIPELINE_ATTRIBUTE, value: pipeline },
      ...(runId ? [{ key: RUN_ID_ATTRIBUTE, value: runId }] : []),
    ],
  };
}

const registered = new WeakMap<Client, Promise<boolean>>();

/** True when the namespace has Tempered's search attributes, adding any that are missing. */
export function ensureSearchAttributes(client: Client): Promise<boolean> {
  let known = registered.get(client);
  if (!known) {
    known = registerSearchAttributes(client);
    registered.set(client, known);
  }
  return known;
}

async function registerSearchAttributes(client: Client): Promise<boolean> {
  const { namespace } = client.options;
  const keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  try {
    const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
    const missing = SEARCH_ATTRIBUTES.filter((key) => !(key.name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return true;
    await client.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((key) => [key.name, keyword])) });
    return true;
  } catch {
    return false;
  }
}

/** Resolves a run id or a workflow id to the workflow id. Throws InvalidRunIdError for one that breaks the run id rule. */
export async function resolveWorkflowId(client: Client, run: string): Promise<string> {
  checkRunArgument(run);
  if (run.includes('--')) return run;
  if (await ensureSearchAttributes(client)) {
    for await (const execution of client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}' AND ${RUN_ID_ATTRIBUTE.name} = '${run}'` })) return execution.workflowId;
  }
  // Runs started before the attribute existed, and scheduled runs' ids given by their suffix.
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
  // A query waits for a worker to answer it: without one polling the run's queue, ask nothing and
  // say so, rather than hang until the query times out.
  const answerable = await hasPollers(client, description.taskQueue, 'workflow');
  let summary: RunSummary | undefined;
  // The server lists a worker as polling for a while after it stopped: a query it never answers
  // ends at the deadline.
  if (answerable) summary = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(progressQuery)).catch(() => undefined);
  summary ??= await unansweredSummary(client, workflowId, description);
  // The server's status wins: the query may answer after the workflow finished its stages but before
  // it closed, and the run is not over (nor its result readable) until it has.
  if (status !== 'running' || summary.status !== 'running') return { ...summary, status };
  mergePendingActivities(summary, description);
  await explainWaiting(client, summary, description, answerable);
  return summary;
}

/** How long `status` waits for a worker to answer the progress query (it replays the run's history first when the run is not cached on it). */
const QUERY_DEADLINE_MS = 5000;

/** Whether any worker polls `queue` for workflow or activity tasks; true when the server cannot say. */
async function hasPollers(client: Client, queue: string, type: 'workflow' | 'activity'): Promise<boolean> {
  try {
    const response = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: queue },
      taskQueueType: type === 'workflow' ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    return (response.pollers ?? []).length > 0;
  } catch {
    return true;
  }
}

/** A summary without the workflow's answer: its stages from the plan it was started with, as pending. */
async function unansweredSummary(client: Client, workflowId: string, description: WorkflowExecutionDescription): Promise<RunSummary> {
  const summary = fallbackSummary(workflowId, description);
  const input = await getRunInput(client, workflowId).catch(() => undefined);
  for (const stage of input?.plan.stages ?? []) {
    summary.stages[stage.name] = { status: 'pending', type: stage.type, taskQueue: stage.activity.taskQueue, attempts: 0, cached: false, outputs: [], metrics: {} };
  }
  return summary;
}

/**
 * Why a running run does not move: no worker polls the queue its workflow tasks or its queued
 * stages wait on. Sets the run's `waiting` and the queued stages' notes.
 */
async function explainWaiting(client: Client, summary: RunSummary, description: WorkflowExecutionDescription, workflowPolled: boolean): Promise<void> {
  const workflowQueue = description.taskQueue;
  const prefix = workflowQueue.endsWith(TASK_QUEUES.cpu) ? workflowQueue.slice(0, -TASK_QUEUES.cpu.length) : '';
  if (!workflowPolled) {
    const pendingTask = description.raw.pendingWorkflowTask;
    const since = timestampOf(pendingTask?.originalScheduledTime ?? pendingTask?.scheduledTime) ?? description.startTime;
    summary.waiting = `no worker polls task queue "${workflowQueue}" (the run's workflow tasks wait since ${formatSince(since)}); ${startWorkerAdvice(prefix, TASK_QUEUES.cpu)}`;
  }
  for (const pending of description.raw.pendingActivities ?? []) {
    const stage = pending.activityId ? summary.stages[pending.activityId] : undefined;
    if (!stage || stage.status !== 'queued') continue;
    // Workers poll the queue, but the last one to try had too few GPUs: the stage waits for a bigger one.
    if (pending.lastFailure?.applicationFailureInfo?.type === NOT_ENOUGH_GPUS) {
      summary.waiting ??= `stage "${pending.activityId}" waits for a gpu worker with enough GPUs; the last attempt's worker had too few: ${pending.lastFailure.message}`;
      continue;
    }
    const queue = taskQueueName(stage.taskQueue as typeof TASK_QUEUES.cpu, prefix);
    if (await hasPollers(client, queue, 'activity')) continue;
    const since = timestampOf(pending.scheduledTime) ?? description.startTime;
    stage.note = `no worker polls task queue "${queue}" since it was scheduled ${formatSince(since)}; ${startWorkerAdvice(prefix, stage.taskQueue)}`;
    summary.waiting ??= `stage "${pending.activityId}" waits for a worker on task queue "${queue}"`;
  }
}

/** What to do about a queue nobody polls. `run --local` queues belong to the process that started the run. */
function startWorkerAdvice(prefix: string, pool: string): string {
  if (/(^|-)local-[0-9a-f]{8}-$/.test(prefix)) {
    return 'the "tempered run --local" process that started this run has ended, and only it polls these queues: "tempered terminate <run>" ends the run, "tempered resume <run>" reruns what is left';
  }
  return `start one with "tempered worker --queue ${pool}"${prefix ? ` and TEMPERED_TASK_QUEUE_PREFIX=${prefix}` : ''}, or end the run with "tempered terminate <run>"`;
}

function timestampOf(t: { seconds?: unknown; nanos?: number | null } | null | undefined): Date | undefined {
  if (!t || t.seconds === undefined || t.seconds === null) return undefined;
  return new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6));
}

/** `2026-12-03 14:03:11 UTC, 6 min ago` */
export function formatSince(at: Date, now = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000));
  const ago = seconds < 60 ? `${seconds} s` : seconds < 3600 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
  return `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC, ${ago} ago`;
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

/** Fills running stages' attempt count, queued state, last heartbeat and last failure from the server's pending activities. */
export function mergePendingActivities(summary: RunSummary, description: Pick<WorkflowExecutionDescription, 'raw'>): void {
  for (const pending of description.raw.pendingActivities ?? []) {
    const stage = pending.activityId ? summary.stages[pending.activityId] : undefined;
    // The description was taken before the query: a stage the workflow has since seen end keeps its
    // final state, without the ended attempt's last heartbeat.
    if (!stage || (stage.status !== 'running' && stage.status !== 'queued')) continue;
    stage.attempts = pending.attempt ?? stage.attempts;
    // The workflow marks a stage running when it schedules it; the server knows if a worker took it.
    if (pending.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED && stage.status === 'running') stage.status = 'queued';
    const payload = pending.heartbeatDetails?.payloads?.[0];
    if (payload) stage.heartbeat = defaultPayloadConverter.fromPayload(payload);
    if (pending.lastFailure?.message) stage.error = `last attempt: ${pending.lastFailure.message}`;
  }
}

/** A run as `tempered list` shows it. */
export interface RunListing {
  workflowId: string;
  runId: string;
  pipeline: string;
  status: RunStatus;
  startedAt: string;
  endedAt?: string;
}

/** `tempered list` filters. */
export interface RunFilter {
  pipeline?: string;
  status?: RunStatus;
}

/** Temporal's execution statuses that make each run status (a terminated run was cancelled by force). */
const WORKFLOW_STATUSES: Record<RunStatus, string[]> = {
  running: ['Running', 'ContinuedAsNew'],
  succeeded: ['Completed'],
  failed: ['Failed', 'TimedOut'],
  cancelled: ['Canceled', 'Terminated'],
};

/** The visibility query of `list`: filters are served by the server's index, not by reading every run. */
export function listQuery(filter: RunFilter = {}): string {
  const terms = [`WorkflowType = '${WORKFLOW_TYPE}'`];
  if (filter.pipeline !== undefined) terms.push(`${PIPELINE_ATTRIBUTE.name} = '${filter.pipeline.replace(/'/g, "\\'")}'`);
  if (filter.status !== undefined) terms.push(`(${WORKFLOW_STATUSES[filter.status].map((s) => `ExecutionStatus = '${s}'`).join(' OR ')})`);
  return terms.join(' AND ');
}

/** The namespace cannot filter by pipeline: Tempered's search attribute is not registered and could not be. */
export class SearchAttributeMissingError extends Error {
  override readonly name = 'SearchAttributeMissingError';
  constructor(namespace: string) {
    super(
      `namespace "${namespace}" has no ${PIPELINE_ATTRIBUTE.name} search attribute and this client may not add it; ` +
        `register it once (temporal operator search-attribute create --namespace ${namespace} --name ${PIPELINE_ATTRIBUTE.name} --type Keyword, and the same for ${RUN_ID_ATTRIBUTE.name}), or list without --pipeline`,
    );
  }
}

/** Recent runs, newest first, matching `filter`. */
export async function listRuns(client: Client, limit: number, filter: RunFilter = {}): Promise<RunListing[]> {
  if (filter.pipeline !== undefined && !(await ensureSearchAttributes(client))) throw new SearchAttributeMissingError(client.options.namespace);
  const runs: RunListing[] = [];
  for await (const execution of client.workflow.list({ query: listQuery(filter), pageSize: Math.min(limit, 1000) })) {
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

/**
 * Requests cancellation and waits up to `waitMs` for the run to end: the workflow cancels its
 * running stages (their processes are stopped) and ends as cancelled. That takes a worker on the
 * run's queue; without one the run stays running, and the result says why.
 */
export async function cancelRun(client: Client, workflowId: string, waitMs = 10_000): Promise<{ ended: boolean; summary: RunSummary }> {
  const handle = client.workflow.getHandle(workflowId);
  const before = await getRunSummary(client, workflowId);
  if (before.status !== 'running') return { ended: true, summary: before };
  await handle.cancel();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const summary = await getRunSummary(client, workflowId);
    if (summary.status !== 'running' || Date.now() >= deadline) return { ended: summary.status !== 'running', summary };
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Ends a run at once, without its workflow's cooperation: running stages' attempts are abandoned. */
export async function terminateRun(client: Client, workflowId: string, reason: string): Promise<RunStatus> {
  const handle = client.workflow.getHandle(workflowId);
  const { status } = await handle.describe();
  if (status.name !== 'RUNNING') return STATUS_BY_WORKFLOW[status.name] ?? 'running';
  await handle.terminate(reason);
  return 'cancelled';
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
