import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readContinualState, type ContinualState } from '../../activities/continual/state';
import { decodeWatermark } from '../../activities/data/watermark';
import { getAliases, getVersion, listVersions, registerVersion } from '../../activities/registry/model-registry';
import { writeRunReport } from '../../cli/report';
import { planResume } from '../../cli/resume';
import { getRunInput, getRunSummary, newRunId, startRun } from '../../cli/runs';
import { createSchedule, describeSchedule, triggerAndFindRun, triggerSchedule } from '../../cli/schedules';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary } from '../../workflows/types';
import { tempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// Continual retrain cycles on real Temporal + MinIO: a schedule's ticks run cycles over an inbox
// that receives new files between them. The tests form one story, in order; each starts from
// the state the previous one left (that state is what is under test).

let h: Harness;
let dir: string;
let env: NodeJS.ProcessEnv;
const name = `cont-${randomBytes(3).toString('hex')}`;
const RESERVOIR_SIZE = 30;
let clock = Math.floor(Date.now() / 1000) * 1000 - 3_600_000; // file mtimes (whole seconds, exact on every filesystem): an hour ago, then a minute later per batch

beforeAll(async () => {
  h = await startHarness();
  env = { TEMPERED_STORE: `s3://${h.bucket}` };
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-continual-'));
  await mkdir(path.join(dir, 'general'));
  for (let i = 0; i < 30; i++) await writeFile(path.join(dir, 'general', `${i}.txt`), sentence(i, [...HAM, ...SPAM]));
  await release('batch-1', 24);
});
afterAll(async () => {
  await h?.close();
});

const HAM = ['meeting', 'agenda', 'project', 'report', 'schedule', 'lunch', 'review', 'draft', 'team', 'notes'];
const SPAM = ['winner', 'prize', 'casino', 'cheap', 'viagra', 'lottery', 'bonus', 'claim', 'free', 'offer'];

function sentence(seed: number, words: string[]): string {
  return Array.from({ length: 12 }, (_, k) => words[(seed * 7 + k * 3) % words.length]).join(' ') + ` item ${seed}.`;
}

/** Writes `count` ham and `count` spam mails into inbox/<label>-<batch>/ with a fresh mtime. */
async function release(batch: string, count: number, offset = 0): Promise<void> {
  clock += 60_000;
  for (const [label, words] of [['ham', HAM], ['spam', SPAM]] as const) {
    const folder = path.join(dir, 'inbox', `${label}-${batch.replace(/\D/g, '')}`);
    await mkdir(folder, { recursive: true });
    for (let i = 0; i < count; i++) {
      const file = path.join(folder, `${batch}-${i}.txt`);
      await writeFile(file, sentence(offset + i, words));
      await utimes(file, new Date(clock), new Date(clock));
    }
  }
}

const spec = ({ gate = '{ minGain: -1, maxForgetting: 1 }', trainExtra = '', promoteAfter = [] as string[], extraStages = '' } = {}) => `
apiVersion: tempered.dev/v1
name: ${name}
seed: 3
schedule: { every: 1d, overlap: skip }
stages:
  general: { type: collect, sources: [{ path: "general/*.txt" }] }
  general-split: { type: split, input: general, groupNearDuplicates: false }
  tokenizer: { type: tokenizer, input: [general-split], vocabSize: 300 }
  base: { type: finetune, input: general-split, tokenizer: tokenizer, objective: causal-lm, model: { layers: 1, dModel: 16, heads: 2, context: 24 }, steps: 4, batchSize: 4, validationBatches: 1 }
  collect: { type: collect, sources: [{ path: "inbox/*/*.txt" }], incremental: { by: mtime }, labelFromPath: "(?<label>ham|spam)-\\\\d+/" }
  clean: { type: clean, input: collect, nearDedup: false }
  split: { type: split, input: clean, groupNearDuplicates: false, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  replay: { type: replay, input: split, size: ${RESERVOIR_SIZE}, mix: 1 }
  champion: { type: champion, registry: ${name}, initial: base }
  train: { type: finetune, input: replay, from: champion, objective: classify, steps: 12, batchSize: 8, validateEvery: 6, validationBatches: 1, optimizer: { lr: 3e-3 }${trainExtra} }
${extraStages}
  promote: { type: promote, input: split, candidate: train, champion: champion, collect: collect, replay: replay, gate: ${gate}, after: [${promoteAfter.join(', ')}] }
`;

const planOf = (yaml: string) => planPipeline(loadSpecText(yaml, path.join(dir, 'spec.yaml')));
const state = (): Promise<ContinualState> => readContinualState(h.store, name);
const stateBytes = async () => JSON.stringify(await state());

async function tick(): Promise<RunSummary> {
  const workflowId = await triggerAndFindRun(h.client, name);
  expect(workflowId).toBeDefined();
  return waitForSummary(h.client, workflowId!, 180_000);
}

let lastCycleRun: RunSummary | undefined;

// The schedule's cycles hold 3 s before promoting, so a second tick surely finds one running.
const scheduled = spec({ extraStages: '  hold: { type: noop, after: [collect], sleepMs: 3000, cache: false }', promoteAfter: ['hold'] });

test('a schedule tick runs the first cycle: reads every file, promotes the first champion, records watermark and reservoir', async () => {
  await createSchedule(h.client, planOf(scheduled), { paused: true }, loadSpecText(scheduled, path.join(dir, 'spec.yaml')).spec.schedule);
  const summary = await tick();
  expect(summary.status).toBe('succeeded');
  expect(summary.stages.collect.metrics).toMatchObject({ records: 48, nothingNew: false });
  expect(summary.stages.champion.metrics).toMatchObject({ source: 'initial', version: null });
  expect(summary.stages.promote.metrics).toMatchObject({ cycle: 1, candidateVersion: 1, promoted: true });
  expect(summary.stages.promote.metrics.reason).toMatch(/first champion/);

  const s = await state();
  expect(s.cycles).toHaveLength(1);
  expect(s.cycles[0]).toMatchObject({ cycle: 1, runId: summary.runId, newRecords: 48, candidateVersion: 1, promoted: true });
  const watermark = decodeWatermark(await h.store.readBuffer(s.watermark!), 'state');
  expect(watermark).toMatchObject({ by: 'mtime', at: clock });
  expect(Object.keys(watermark.files!)).toHaveLength(48);
  expect(s.reservoir).toMatchObject({ records: Math.min(RESERVOIR_SIZE, s.reservoir!.seen), size: RESERVOIR_SIZE });
  expect((await getAliases(h.store, name)).champion).toBe(1);
  expect((await getVersion(h.store, name, 1)).lineage).toMatchObject({ runId: summary.runId, pipeline: name, stage: 'train' });
  lastCycleRun = summary;
});

test('a tick with nothing new ends the run early, succeeded, and changes nothing', async () => {
  const before = await stateBytes();
  const summary = await tick();
  expect(summary.status).toBe('succeeded');
  expect(summary.endedEarly).toEqual({ stage: 'collect', reason: 'nothing new since the last completed cycle' });
  expect(summary.stages.collect.metrics).toMatchObject({ records: 0, nothingNew: true });
  for (const stage of ['clean', 'split', 'replay', 'train', 'promote']) {
    expect(summary.stages[stage].status).toBe('skipped');
    expect(summary.stages[stage].note).toMatch(/not needed: nothing new/);
  }
  expect(await stateBytes()).toBe(before);
  expect(await listVersions(h.store, name)).toEqual([1]);
});

test('a failed cycle advances neither watermark nor reservoir; resume completes it and then they advance', async () => {
  await release('batch-2', 20, 100);
  const before = await stateBytes();
  const failing = spec({ extraStages: '  gatekeeper: { type: noop, after: [train], failAttempts: 5, retry: { maxAttempts: 2, initialInterval: 100ms } }', promoteAfter: ['gatekeeper'] });
  const plan = planOf(failing);
  const runId = newRunId();
  const { workflowId } = await startRun(h.client, plan, runId);
  const failed = await waitForSummary(h.client, workflowId, 180_000);
  expect(failed.status).toBe('failed');
  expect(failed.stages.collect.metrics).toMatchObject({ records: 40 });
  expect(failed.stages.train.status).toBe('succeeded');
  expect(failed.stages.promote.status).toBe('skipped');
  expect(await stateBytes()).toBe(before);
  expect(await listVersions(h.store, name)).toEqual([1]);

  // As if an earlier promote had registered this candidate and then crashed before recording the
  // cycle: the resumed promote must find that version (same data, same weights), not add another.
  const refOf = (stage: string, output: string) => ({ ...failed.stages[stage].outputs.find((o) => o.name === output)!, mediaType: 'application/octet-stream' });
  await registerVersion(h.store, name, {
    outputs: Object.fromEntries(failed.stages.train.outputs.map((o) => [o.name, refOf('train', o.name)])),
    metrics: { note: 'registered by a promote attempt that crashed' },
    lineage: { runId, pipeline: name, stage: 'train', parentVersion: 1, dataWatermark: refOf('collect', 'watermark') },
  });

  const fixed = planOf(spec());
  const { reuse } = planResume({ plan: (await getRunInput(h.client, workflowId)).plan, summary: await getRunSummary(h.client, workflowId) }, fixed);
  expect(Object.keys(reuse ?? {})).toEqual(expect.arrayContaining(['collect', 'split', 'replay', 'train']));
  const resumedId = newRunId();
  const started = await startRun(h.client, fixed, resumedId, reuse);
  const resumed = await waitForSummary(h.client, started.workflowId, 180_000);
  expect(resumed.status).toBe('succeeded');
  expect(resumed.stages.train).toMatchObject({ status: 'cached', cachedFrom: runId });
  expect(resumed.stages.promote.metrics).toMatchObject({ cycle: 2, candidateVersion: 2, championVersion: 1 });
  expect(await listVersions(h.store, name)).toEqual([1, 2]); // the crashed attempt's version, reused
  expect((await getVersion(h.store, name, 2)).lineage).toMatchObject({ runId, pipeline: name, stage: 'train', parentVersion: 1, dataWatermark: { uri: expect.stringContaining('/collect/watermark.json.gz') } });
  expect((await getAliases(h.store, name)).champion).toBe(2);

  const s = await state();
  expect(s.cycles.map((c) => c.runId)).toEqual([lastCycleRun!.runId, resumedId]);
  expect(s.cycles[1].newRecords).toBe(40);
  expect(decodeWatermark(await h.store.readBuffer(s.watermark!), 'state').at).toBe(clock);
  // the reservoir: bounded, gzip in the store, and it has seen every train record of both cycles
  const trainNew = (r: RunSummary) => r.stages.replay.metrics.newTrain as number;
  expect(s.reservoir).toMatchObject({ records: RESERVOIR_SIZE, size: RESERVOIR_SIZE, seen: trainNew(lastCycleRun!) + trainNew(failed) });
  const lines = gunzipSync(await h.store.readBuffer(s.reservoir!.ref)).toString('utf8').split('\n');
  expect(lines).toHaveLength(RESERVOIR_SIZE);
  expect(new Set(lines.map((l) => JSON.parse(l).id)).size).toBe(RESERVOIR_SIZE);
  expect(resumed.stages.replay.metrics).toMatchObject({ replayed: Math.min(trainNew(failed), s.cycles[0].reservoir!.records) });
  // cycle 2 was evaluated on both test splits, the candidate and the champion alike
  expect(s.cycles[1].evaluations.map((e) => e.cycle)).toEqual([1, 2]);
  for (const e of s.cycles[1].evaluations) expect(e.champion).toEqual(expect.any(Number));
  lastCycleRun = resumed;
});

test('the gate refuses a candidate: the champion stays, the candidate is registered, and the reason is recorded', async () => {
  await release('batch-3', 10, 200);
  const aliases = await getAliases(h.store, name);
  const yaml = spec({ gate: '{ minGain: 1, maxForgetting: 1 }' }); // a gain of 1.0 is impossible against a working champion
  const runId = newRunId();
  const summary = await waitForSummary(h.client, (await startRun(h.client, planOf(yaml), runId)).workflowId, 180_000);
  expect(summary.status).toBe('succeeded');
  expect(summary.stages.promote.metrics).toMatchObject({ cycle: 3, candidateVersion: 3, promoted: false });
  expect(summary.stages.promote.metrics.reason).toMatch(/kept the champion: gain [-+]?[\d.]+ < minGain 1 on the new split/);
  expect(await getAliases(h.store, name)).toEqual(aliases);
  expect(await listVersions(h.store, name)).toEqual([1, 2, 3]);
  expect((await getVersion(h.store, name, 3)).metrics).toMatchObject({ promoted: false, cycle: 3 });
  const s = await state();
  expect(s.cycles[2]).toMatchObject({ cycle: 3, promoted: false, championVersion: aliases.champion });
  expect(s.cycles[2].evaluations.map((e) => e.cycle)).toEqual([1, 2, 3]);

  // the report's continual view: a heat map of every cycle's model on every cycle's test split
  const out = await mkdtemp(path.join(os.tmpdir(), 'tempered-continual-report-'));
  const report = await writeRunReport(summary, out);
  const html = await import('node:fs/promises').then((fs) => fs.readFile(report.htmlPath, 'utf8'));
  expect(html).toMatch(/Continual learning/);
  expect(html).toMatch(/forgetting-promote/);
});

test('rollback restores the previous champion, and a second rollback undoes it', async () => {
  const before = await getAliases(h.store, name);
  expect(before).toMatchObject({ champion: 2, previous: 1 });
  const result = await tempered(['models', 'rollback', name, '--reason', 'cycle 2 misbehaves in production'], env);
  expect(result.code).toBe(0);
  expect(await getAliases(h.store, name)).toMatchObject({ champion: 1, previous: 2 });
  // the next cycle trains from the restored champion
  await tempered(['models', 'rollback', name], env);
  expect(await getAliases(h.store, name)).toMatchObject({ champion: 2, previous: 1 });
  expect((await getAliases(h.store, name)).history.map((x) => x.action)).toEqual(['promote', 'promote', 'rollback', 'rollback']);
  const cycles = JSON.parse((await tempered(['cycles', name, '--json'], env)).stdout) as ContinualState;
  expect(cycles.cycles.map((c) => c.promoted)).toEqual([true, true, false]);
});

test('two overlapping ticks follow the overlap policy: skip drops the second; buffer-one runs it after, finding nothing new', async () => {
  await release('batch-4', 10, 300);
  const actionsBefore = (await describeSchedule(h.client, name)).actionsTaken ?? 0;
  const first = await triggerAndFindRun(h.client, name);
  expect(first).toBeDefined();
  expect(await triggerAndFindRun(h.client, name, 2_000)).toBeUndefined(); // skip: dropped while the first runs
  const cycle = await waitForSummary(h.client, first!, 180_000);
  expect(cycle.status).toBe('succeeded');
  expect(cycle.stages.promote.metrics).toMatchObject({ cycle: 4 });
  const described = await describeSchedule(h.client, name);
  expect(described.actionsTaken).toBe(actionsBefore + 1);
  expect(described.skippedOverlap).toBeGreaterThanOrEqual(1);

  // A paused schedule holds buffered ticks until unpaused: unpause (its next own tick is a day away).
  await h.client.schedule.getHandle(name).unpause('overlap test');
  await release('batch-5', 10, 400);
  const second = await triggerAndFindRun(h.client, name);
  expect(second).toBeDefined();
  const known = new Set((await describeSchedule(h.client, name)).recentRuns?.map((r) => r.workflowId));
  await triggerSchedule(h.client, name, 'buffer-one'); // buffered behind the running cycle
  const fifth = await waitForSummary(h.client, second!, 180_000);
  expect(fifth.stages.promote.metrics).toMatchObject({ cycle: 5 });
  let buffered: string | undefined;
  for (let i = 0; i < 300 && !buffered; i++) {
    buffered = (await describeSchedule(h.client, name)).recentRuns?.find((r) => !known.has(r.workflowId))?.workflowId;
    if (!buffered) await new Promise((r) => setTimeout(r, 200));
  }
  expect(buffered).toBeDefined();
  const late = await waitForSummary(h.client, buffered!, 180_000);
  expect(late.status).toBe('succeeded');
  expect(late.endedEarly?.reason).toMatch(/nothing new/);
  expect((await state()).cycles.map((c) => c.cycle)).toEqual([1, 2, 3, 4, 5]);
  await h.client.schedule.getHandle(name).delete();
});

test('two cycles run side by side on the same data: the data is committed once, as one cycle and one version', async () => {
  await release('batch-7', 10, 600);
  const plan = planOf(spec());
  const versionsBefore = await listVersions(h.store, name);
  const runs = await Promise.all([newRunId(), newRunId()].map(async (runId, i) => (await startRun(h.client, plan, `${runId}-${i}`)).workflowId));
  const summaries = await Promise.all(runs.map((workflowId) => waitForSummary(h.client, workflowId, 180_000)));
  expect(summaries.map((s) => s.stages.collect.metrics.records)).toEqual([20, 20]); // both read the same new mail
  const s = await state();
  expect(s.cycles.map((c) => c.cycle)).toEqual([1, 2, 3, 4, 5, 6]);
  expect(await listVersions(h.store, name)).toEqual([...versionsBefore, versionsBefore.at(-1)! + 1]);
  const committer = summaries.find((x) => x.runId === s.cycles[5].runId)!;
  expect(committer.status).toBe('succeeded');
  const other = summaries.find((x) => x !== committer)!;
  // The other run either lost the race (its promote refuses, committing nothing), or reached
  // promote after the commit and recognised the same cycle by its watermark (same data, same model).
  if (other.status === 'failed') {
    expect(other.stages.promote).toMatchObject({ status: 'failed', attempts: 1 });
    expect(other.stages.promote.error).toMatch(new RegExp(`after 5 completed cycle\\(s\\), but cycle 6 \\(run ${committer.runId}\\) completed meanwhile and consumed the same data`));
  } else {
    expect(other.stages.promote.metrics).toMatchObject({ cycle: 6, candidateVersion: s.cycles[5].candidateVersion });
    expect(other.stages.train.outputs).toEqual(committer.stages.train.outputs.map((o) => expect.objectContaining({ name: o.name, sha256: o.sha256 })));
  }
});

test('parameter isolation: with lora each cycle trains a new adapter on the merged champion, stored apart from its base', async () => {
  const lora = `${name}-lora`;
  const yaml = spec({ trainExtra: ', lora: { rank: 2, alpha: 4 }' }).replaceAll(name, lora);
  const first = await waitForSummary(h.client, (await startRun(h.client, planOf(yaml), newRunId())).workflowId, 180_000);
  expect(first.status).toBe('succeeded');
  await release('batch-6', 10, 500);
  const second = await waitForSummary(h.client, (await startRun(h.client, planOf(yaml), newRunId())).workflowId, 180_000);
  expect(second.status).toBe('succeeded');
  expect(second.stages.champion.metrics).toMatchObject({ source: 'registry', version: 1 });

  const v1 = await getVersion(h.store, lora, 1);
  const v2 = await getVersion(h.store, lora, 2);
  // cycle 1: an adapter on the phase-1 model, whose weights artifact it shares
  expect(v1.outputs.weights.uri).toBe(first.stages.base.outputs.find((o) => o.name === 'weights')!.uri);
  // cycle 2: a new adapter on cycle 1's model with its adapter merged in, stored once as this stage's base
  expect(v2.outputs.adapter.uri).not.toBe(v1.outputs.adapter.uri);
  expect(v2.outputs.weights.uri).toMatch(/\/train\/base-weights\.bin$/);
  expect(v2.outputs.adapter.bytes).toBeLessThan(v2.outputs.weights.bytes / 4);
  expect(second.stages.train.metrics.trainableFraction as number).toBeLessThan(0.5);
  expect(second.stages.promote.metrics.evaluations).toHaveLength(2);
});

test('a new class arrives: the champion is scored on it (zero recall), the candidate learns it with the old head kept', async () => {
  clock += 60_000;
  const folder = path.join(dir, 'inbox', 'phish-8');
  await mkdir(folder, { recursive: true });
  for (let i = 0; i < 12; i++) {
    const file = path.join(folder, `batch-8-${i}.txt`);
    await writeFile(file, sentence(700 + i, ['password', 'verify', 'account', 'login', 'urgent', 'bank', 'suspended', 'click']));
    await utimes(file, new Date(clock), new Date(clock));
  }
  await release('batch-8', 6, 700);
  const yaml = spec().replace('"(?<label>ham|spam)-\\\\d+/"', '"(?<label>ham|spam|phish)-\\\\d+/"');
  expect(yaml).toContain('phish');
  const summary = await waitForSummary(h.client, (await startRun(h.client, planOf(yaml), newRunId())).workflowId, 180_000);
  expect(summary.status).toBe('succeeded');
  expect(summary.stages.train.metrics.labels).toEqual(['ham', 'spam', 'phish']); // old indices kept, new class appended
  const m = summary.stages.promote.metrics as { cycle: number; evaluations: Array<{ cycle: number; candidate: number; champion?: number }> };
  const current = m.evaluations.find((e) => e.cycle === m.cycle)!;
  expect(current.champion).toBeLessThan(1); // the champion cannot name phish: those count as errors
  expect(current.candidate).toEqual(expect.any(Number));
});
