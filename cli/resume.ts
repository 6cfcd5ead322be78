import { verifyCommittedResult } from '../activities/stage-cache';
import type { ArtifactStore } from '../activities/store';
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
 * A stage of `next` is reused when it succeeded in the earlier run, its type, config digest and
 * the pipeline seed are unchanged, and everything it depends on is reused too; otherwise it runs,
 * with the reason. What the store still holds is checked by verifyResume.
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
    } else if (previous.plan.seed !== next.seed) {
      run(`the pipeline seed changed (${previous.plan.seed} -> ${next.seed})`);
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

/**
 * Checks every result `resume` would reuse the way the run will (the stage cache's verification:
 * the manifest and every output read back against its sha256). A result that fails — an artifact
 * deleted, a byte flipped — and everything downstream of it are recomputed instead, with the
 * reason, so what `--dry-run` prints is what the run does.
 */
export async function verifyResume(store: ArtifactStore, resume: ResumePlan, next: Plan): Promise<ResumePlan> {
  const dependsOn = new Map(next.stages.map((s) => [s.name, s.dependsOn]));
  const recomputed = new Set<string>();
  const reuse: ResumePlan['reuse'] = {};
  const decisions: ResumeDecision[] = [];
  // Decisions are in the plan's topological order: upstream first.
  for (const decision of resume.decisions) {
    const upstream = (dependsOn.get(decision.stage) ?? []).filter((d) => recomputed.has(d));
    const chosen = resume.reuse[decision.stage];
    if (decision.action !== 'reuse' || !chosen) {
      decisions.push(decision);
      if (decision.action === 'run') recomputed.add(decision.stage);
      continue;
    }
    let reason: string | undefined;
    if (upstream.length > 0) {
      reason = `recompute (upstream ${upstream.join(', ')} will run again)`;
    } else {
      try {
        await verifyCommittedResult(store, chosen.manifest);
      } catch (err) {
        reason = `recompute (its result from run ${chosen.runId} no longer verifies: ${(err as Error).message})`;
      }
    }
    if (reason === undefined) {
      decisions.push(decision);
      reuse[decision.stage] = chosen;
    } else {
      decisions.push({ stage: decision.stage, action: 'run', reason });
      recomputed.add(decision.stage);
    }
  }
  return { decisions, reuse };
}
