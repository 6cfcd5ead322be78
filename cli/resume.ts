import type { Plan } from '../pipelines/plan';
import type { ArtifactRef, RunSummary } from '../workflows/types';

// What `tempered resume` reuses and what it runs again.

export interface ResumeDecision {
  stage: string;
  action: 'reuse' | 'run';
  reason: string;
}

export interface ResumePlan {
  decisions: ResumeDecision[];
  /** For the workflow input: stages to take from the earlier run. */
  reuse: Record<string, { runId: string; manifest: ArtifactRef }>;
}

/**
 * A stage of `next` is reused when it succeeded in the earlier run, its type and config digest
 * are unchanged, and everything it depends on is reused too; otherwise it runs, with the reason.
 */
export function planResume(previous: { plan: Plan; summary: RunSummary }, next: Plan): ResumePlan {
  const before = new Map(previous.plan.stages.map((s) => [s.name, s]));
  const reused = new Set<string>();
  const decisions: ResumeDecision[] = [];
  const reuse: ResumePlan['reuse'] = {};
  for (const stage of next.stages) {
    const old = before.get(stage.name);
    const progress = previous.summary.stages[stage.name];
    const run = (reason: string) => decisions.push({ stage: stage.name, action: 'run', reason });
    if (!old || !progress) {
      run('new in this spec');
    } else if (old.type !== stage.type || old.configDigest !== stage.configDigest) {
      run('its spec changed');
    } else if (stage.dependsOn.some((d) => !reused.has(d))) {
      const upstream = stage.dependsOn.filter((d) => !reused.has(d));
      run(`upstream ${upstream.join(', ')} will run again`);
    } else if ((progress.status === 'succeeded' || progress.status === 'cached') && progress.manifest) {
      const runId = progress.cachedFrom ?? previous.summary.runId;
      reused.add(stage.name);
      reuse[stage.name] = { runId, manifest: progress.manifest };
      decisions.push({ stage: stage.name, action: 'reuse', reason: `succeeded in run ${runId}` });
    } else {
      run(`it ${progress.status === 'failed' ? `failed${progress.error ? `: ${progress.error}` : ''}` : `was ${progress.status}`}`);
    }
  }
  return { decisions, reuse };
}
