import type { Plan } from '../pipelines/plan';
import type { RunStatus, RunSummary, StageOutcome, StageProgress } from './types';

/** The state machine of one run: every stage's status, kept beside the workflow that drives it. */
export class PipelineRun {
  private readonly stages: Record<string, StageProgress>;
  private readonly results = new Map<string, StageOutcome>();
  private status: RunStatus = 'running';
  private readonly startedAt = new Date().toISOString();
  private endedAt?: string;
  /** Set when a stage ended the run early (e.g. an incremental collect found nothing new). */
  endedEarly?: { stage: string; reason: string };
  cancelled = false;

  constructor(
    private readonly runId: string,
    private readonly workflowId: string,
    private readonly plan: Plan,
  ) {
    this.stages = Object.fromEntries(
      plan.stages.map((s) => [
        s.name,
        { status: 'pending', type: s.type, taskQueue: s.activity.taskQueue, attempts: 0, cached: false, outputs: [], metrics: {}, config: s.config },
      ]),
    );
  }

  start(name: string): void {
    Object.assign(this.stages[name], { status: 'running', startedAt: new Date().toISOString() });
  }

  succeed(name: string, outcome: StageOutcome): void {
    this.results.set(name, outcome);
    Object.assign(this.stages[name], {
      status: outcome.cachedFrom ? 'cached' : 'succeeded',
      attempts: outcome.attempt,
      cached: outcome.cachedFrom !== undefined,
      cachedFrom: outcome.cachedFrom,
      endedAt: new Date().toISOString(),
      outputs: Object.entries(outcome.outputs).map(([outputName, ref]) => ({ name: outputName, uri: ref.uri, sha256: ref.sha256, bytes: ref.bytes })),
      metrics: outcome.metrics,
      manifest: outcome.manifest,
    });
  }

  fail(name: string, error: string, attempts: number): void {
    Object.assign(this.stages[name], { status: 'failed', error, attempts, endedAt: new Date().toISOString() });
  }

  cancel(name: string): void {
    this.cancelled = true;
    Object.assign(this.stages[name], { status: 'cancelled', endedAt: new Date().toISOString() });
  }

  skip(name: string): void {
    this.stages[name].status = this.cancelled ? 'cancelled' : 'skipped';
    if (this.endedEarly && !this.cancelled) this.stages[name].note = `not needed: ${this.endedEarly.reason} (stage "${this.endedEarly.stage}")`;
  }

  /** A stage's result says the rest of the run has nothing to do; stages not started are skipped. */
  endEarly(stage: string, reason: string): void {
    this.endedEarly ??= { stage, reason };
  }

  result(name: string): StageOutcome | undefined {
    return this.results.get(name);
  }

  /** Marks the run cancelled, and every stage that never finished with it. */
  markCancelled(): void {
    this.cancelled = true;
    for (const stage of Object.values(this.stages)) {
      if (stage.status === 'pending' || stage.status === 'running' || stage.status === 'skipped') stage.status = 'cancelled';
    }
    this.status = 'cancelled';
    this.endedAt = new Date().toISOString();
  }

  /** Settles the run's status from its stages' and returns the summary. */
  finish(): RunSummary {
    const failed = Object.values(this.stages).some((s) => s.status === 'failed' || (s.status === 'skipped' && !this.endedEarly));
    this.status = failed ? 'failed' : 'succeeded';
    this.endedAt = new Date().toISOString();
    return this.summary();
  }

  /** One line for the Temporal UI: how many stages are done, and which run, failed or wait. */
  currentDetails(): string {
    const names = (wanted: (s: StageProgress) => boolean) => Object.entries(this.stages).filter(([, s]) => wanted(s)).map(([n]) => n);
    const done = names((s) => s.status === 'succeeded' || s.status === 'cached');
    const total = Object.keys(this.stages).length;
    const parts = [`${this.status === 'running' ? '' : `${this.status}: `}${done.length}/${total} stages done`];
    const running = names((s) => s.status === 'running');
    if (running.length > 0) parts.push(`running ${running.join(', ')}`);
    const failed = names((s) => s.status === 'failed');
    if (failed.length > 0) parts.push(`failed ${failed.join(', ')}`);
    const cached = names((s) => s.status === 'cached');
    if (cached.length > 0) parts.push(`${cached.length} from cache`);
    if (this.endedEarly) parts.push(`ended early: ${this.endedEarly.reason}`);
    return parts.join(' · ');
  }

  summary(): RunSummary {
    return {
      runId: this.runId,
      workflowId: this.workflowId,
      pipeline: this.plan.pipeline,
      status: this.status,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      ...(this.endedEarly ? { endedEarly: this.endedEarly } : {}),
      ...(this.plan.comparisons ? { comparisons: this.plan.comparisons } : {}),
      stages: JSON.parse(JSON.stringify(this.stages)) as Record<string, StageProgress>,
    };
  }
}
