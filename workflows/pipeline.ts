import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { activityOptionIssues, retryPolicyOf, type ActivityOptionIssue } from '../pipelines/activity-options';
import type { Plan, PlannedStage } from '../pipelines/plan';
import { PipelineRun } from './pipeline-run';
import { runIdFromWorkflowId } from './run-id';
import { PIPELINE_ATTRIBUTE, RUN_ID_ATTRIBUTE } from './search-attributes';
import type { ArtifactRef, RunSummary, StageActivity, StageOutcome, StageResult } from './types';

/** Input of one pipeline run: a validated plan. */
export interface PipelineWorkflowInput {
  /** Run id; a scheduled run has none and takes its workflow id's suffix (the tick's time). */
  runId?: string;
  plan: Plan;
  /** Stages to take from earlier runs instead of computing (`tempered resume`). */
  reuse?: Record<string, { runId: string; manifest: ArtifactRef }>;
}

/** Current state of every stage. */
export const progressQuery = defineQuery<RunSummary>('progress');

/**
 * Marks runs that refuse to schedule a stage with invalid activity options. Only consulted for such a
 * stage, so valid runs' histories are unchanged; a run already past one (e.g. heartbeatTimeout 0,
 * which the server accepts) replays as it ran.
 */
export const ACTIVITY_OPTIONS_GUARD_PATCH = 'activity-options-guard';

/** Errors that no retry can fix; activities throw them as non-retryable ApplicationFailures too. */
/**
 * Marks runs that record their run id as a search attribute when their starter could not (a
 * schedule's tick: the id derives from the workflow id the server gives it).
 */
export const RUN_ID_ATTRIBUTE_PATCH = 'run-id-search-attribute';

export const NON_RETRYABLE_ERROR_TYPES = ['BadInput', 'IntegrityError', 'GateFailed'];

/**
 * Runs a plan as a DAG: each stage starts when everything it depends on has succeeded, so
 * independent branches run in parallel. When a stage fails, its dependents are skipped but
 * independent branches finish, so a later resume has as much finished work as possible.
 */
export async function pipelineWorkflow(input: PipelineWorkflowInput): Promise<RunSummary> {
  const { plan, reuse = {} } = input;
  const { workflowId } = workflowInfo();
  const runId = input.runId ?? runIdFromWorkflowId(workflowId);
  const run = new PipelineRun(runId, workflowId, plan);
  setHandler(progressQuery, () => run.summary());
  recordRunId(runId);
  // What the Temporal UI shows as the run's current details; the SDK sends it with each workflow task.
  const showProgress = () => setCurrentDetails(run.currentDetails());
  showProgress();

  const results = new Map<string, Promise<StageResult | undefined>>();
  const runStage = async (stage: PlannedStage): Promise<StageResult | undefined> => {
    const upstream = await Promise.all(stage.dependsOn.map((name) => results.get(name)!));
    if (upstream.some((r) => r === undefined) || run.cancelled || run.endedEarly) {
      run.skip(stage.name);
      return undefined;
    }
    run.start(stage.name);
    showProgress();
    // A plan that skipped validation: the server would refuse the activity and the workflow task
    // would fail again and again, or a safety (heartbeats, bounded retries) would be off.
    const invalid = activityOptionIssues(stage.activity);
    if (invalid.length > 0 && patched(ACTIVITY_OPTIONS_GUARD_PATCH)) {
      run.fail(stage.name, invalidOptionsMessage(stage.name, invalid), 0);
      return undefined;
    }
    try {
      const outcome = await stageActivity(stage, plan.queuePrefix)({
        runId,
        pipeline: plan.pipeline,
        stage: stage.name,
        type: stage.type,
        config: stage.config,
        inputs: Object.fromEntries(stage.inputs.map((name) => [name, stripOutcome(run.result(name)!)])),
        dataInputs: stage.dataInputs,
        outputPrefix: `runs/${plan.pipeline}/${runId}/${stage.name}/`,
        baseDir: plan.baseDir,
        seed: plan.seed,
        cacheKey: stage.configDigest,
        cache: stage.cache,
        reuse: reuse[stage.name],
        specDigest: plan.specDigest,
        ...(stage.activity.gpus ? { gpus: stage.activity.gpus } : {}),
      });
      run.succeed(stage.name, outcome);
      if (typeof outcome.metrics.endRun === 'string') run.endEarly(stage.name, outcome.metrics.endRun);
      return outcome;
    } catch (err) {
      if (isCancellation(err)) run.cancel(stage.name);
      else run.fail(stage.name, describeFailure(err), attemptsOf(err, stage));
      return undefined;
    } finally {
      showProgress();
    }
  };
  for (const stage of plan.stages) results.set(stage.name, runStage(stage));

  try {
    await Promise.all(results.values());
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  if (CancellationScope.current().consideredCancelled) {
    run.markCancelled();
    showProgress();
    throw new CancelledFailure(`run ${runId} was cancelled`);
  }
  const summary = run.finish();
  showProgress();
  if (summary.status === 'failed') {
    const failed = Object.entries(summary.stages).filter(([, s]) => s.status === 'failed');
    throw ApplicationFailure.create({
      type: 'PipelineFailed',
      message: failed.map(([name, s]) => `stage "${name}" failed after ${s.attempts} attempt(s): ${s.error}`).join('; '),
      nonRetryable: true,
      details: [summary],
    });
  }
  return summary;
}

function stageActivity(stage: PlannedStage, queuePrefix: string): StageActivity {
  const { activity } = stage;
  const activities = proxyActivities<Record<string, StageActivity>>({
    taskQueue: `${queuePrefix}${activity.taskQueue}`,
    activityId: stage.name,
    // The Temporal UI labels each activity with this instead of its type (`finetune`, `evaluate`).
    summary: `${stage.name} (${stage.type})`,
    startToCloseTimeout: activity.startToCloseTimeoutMs,
    heartbeatTimeout: activity.heartbeatTimeoutMs,
    retry: { ...retryPolicyOf(activity.retry), nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
  });
  return activities[stage.type];
}

/** A scheduled run has the pipeline attribute from its schedule but not its run id: add it. */
function recordRunId(runId: string): void {
  const attributes = workflowInfo().typedSearchAttributes;
  if (attributes.get(PIPELINE_ATTRIBUTE) === undefined || attributes.get(RUN_ID_ATTRIBUTE) !== undefined) return;
  if (patched(RUN_ID_ATTRIBUTE_PATCH)) upsertSearchAttributes([{ key: RUN_ID_ATTRIBUTE, value: runId }]);
}

function invalidOptionsMessage(stage: string, issues: ActivityOptionIssue[]): string {
  const listed = issues.map((i) => `${i.key} ${i.message}`).join('; ');
  return `stage "${stage}" was not scheduled, its activity options are invalid (the plan did not come from "tempered validate"): ${listed}`;
}

function stripOutcome({ outputs, metrics, manifest }: StageOutcome | StageResult): StageResult {
  return { outputs, metrics, manifest };
}

function describeFailure(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Attempts a failed stage made: activities attach their attempt number to the errors they throw. */
function attemptsOf(err: unknown, stage: PlannedStage): number {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
    const detail = err.cause.details?.[0] as { attempt?: number } | undefined;
    if (typeof detail?.attempt === 'number') return detail.attempt;
  }
  return stage.activity.retry.maximumAttempts;
}
