import type { PromoteOptions } from '../../pipelines/stage-types';
import { optionsOf } from '../stage-options';
import type { ArtifactRef, Metrics, StageResult } from '../../workflows/types';
import { createRandom, seedFrom, type DataRecord } from '../data';
import { readDataset } from '../datasets';
import { initBackend } from '../ml/backend';
import { classificationReport } from '../ml/metrics';
import { getAliases, getVersion, listVersions, promote, registerVersion, type ModelVersion } from '../registry/model-registry';
import type { StageContext, StageImplementation } from '../stage-runner';
import { writeJsonl } from '../store';
import { classifyExamples, sample } from '../training/examples';
import { loadModelArtifacts } from '../training/model-artifacts';
import { badInput, datasetOf, inputOf, predictClasses, round } from '../training/stages';
import { decodeReservoir, encodeReservoir, sampleWithoutReplacement, updateReservoir } from './reservoir';
import { commitContinualState, readContinualState, type ContinualState, type CycleRecord, type SplitEvaluation } from './state';

// The stages of a continual retrain cycle besides collect: replay mixes earlier data in, champion
// hands the current champion to the trainer, and promote evaluates, gates, registers and — last —
// advances the pipeline's continual state (watermark, reservoir, cycle record) in one write.

/** Another cycle completed between this one's collect and its promote: committing would count data twice. */
export class CycleOvertakenError extends Error {
  override readonly name = 'CycleOvertaken';
  readonly nonRetryable = true;
}


/** replay: the new train split plus a sample of the reservoir; the next reservoir as an output. */
export const replayStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'replay');
  const split = datasetOf(ctx).outputs;
  const train = await readDataset(ctx, split.train, 'the train split');
  const state = await readContinualState(ctx.store, ctx.input.pipeline);
  const cycle = nextCycle(state);
  const previous = state.reservoir ? decodeReservoir(await ctx.store.readBuffer(state.reservoir.ref), state.reservoir.ref.uri) : [];
  ctx.progress({ phase: 'replaying', reservoir: previous.length, train: train.length });

  const random = createRandom(seedFrom(ctx.input.seed, `replay:${cycle}`));
  const replayed = sampleWithoutReplacement(previous, Math.round(options.mix * train.length), random).map((r) => ({ ...r, meta: { ...r.meta, replayedFrom: 'reservoir' } }));
  const next = updateReservoir(previous, state.reservoir?.seen ?? 0, train, options.size, random);
  const encoded = encodeReservoir(next.records);
  const rawBytes = next.records.reduce((n, r) => n + Buffer.byteLength(JSON.stringify(r)) + 1, 0);
  const outputs = {
    train: await writeJsonl(ctx.store, ctx.outputKey('train.jsonl'), [...train, ...replayed]),
    validation: split.validation,
    test: split.test,
    reservoir: await ctx.store.put(ctx.outputKey('reservoir.jsonl.gz'), encoded, 'application/gzip'),
  };
  return {
    outputs,
    metrics: {
      cycle,
      newTrain: train.length,
      replayed: replayed.length,
      train: train.length + replayed.length,
      reservoir: { before: previous.length, records: next.records.length, size: options.size, seen: next.seen, bytes: encoded.length, rawBytes, compression: round(rawBytes / Math.max(1, encoded.length)) },
    },
  };
};

/** champion: the registry's current champion, or the `initial` model before there is one. */
export const championStage: StageImplementation = async (ctx) => {
  const { registry, initial } = optionsOf(ctx.input, 'champion');
  // A cycle that recorded a promotion but stopped before moving the alias: finish that first.
  const { cycles } = await readContinualState(ctx.store, ctx.input.pipeline);
  const last = cycles[cycles.length - 1];
  if (last?.promoted && last.registry === registry) await ensurePromoted(ctx, registry, last);
  const aliases = await getAliases(ctx.store, registry);
  if (aliases.champion !== undefined) {
    const champion = await getVersion(ctx.store, registry, aliases.champion);
    return { outputs: champion.outputs, metrics: { registry, version: champion.version, source: 'registry', lineage: champion.lineage } };
  }
  if (initial === undefined) {
    throw badInput(`stage "${ctx.input.stage}": model "${registry}" has no champion yet; set "initial: <model stage>" to start the first cycle from, or promote a version with \`tempered models promote ${registry} <version>\``);
  }
  return { outputs: inputOf(ctx, initial, 'initial model').outputs, metrics: { registry, version: null, source: 'initial', initial } };
};

/**
 * promote: evaluates the candidate and the champion on this cycle's test split and on every
 * earlier cycle's, gates, registers the candidate, records the cycle, then moves the champion
 * alias if the gate passed. The state write is the commit point: the watermark, the reservoir and
 * the decision advance together, and only with a completed cycle; the alias follows it. A cycle is
 * known by the watermark its collect produced — which a retry and `tempered resume` both reuse —
 * so every step finds what an earlier attempt or run already did and finishes it, never twice.
 */
export const promoteStage: StageImplementation = async (ctx) => {
  const options = optionsOf(ctx.input, 'promote');
  const { runId, pipeline } = ctx.input;
  const candidate = inputOf(ctx, options.candidate, 'candidate model');
  const champion = inputOf(ctx, options.champion, 'champion');
  const collect = inputOf(ctx, options.collect, 'collect');
  const replay = options.replay === undefined ? undefined : inputOf(ctx, options.replay, 'replay');
  const registry = champion.metrics.registry as string;
  const championVersion = typeof champion.metrics.version === 'number' ? champion.metrics.version : undefined;
  const watermark = collect.outputs.watermark;
  if (!watermark) throw badInput(`stage "${ctx.input.stage}": collect stage "${options.collect}" has no watermark; give it "incremental: { by: mtime | lastModified | id }"`);

  const state = await readContinualState(ctx.store, pipeline);
  const recorded = state.cycles.find((c) => c.watermark.sha256 === watermark.sha256);
  if (recorded) {
    if (recorded.promoted) await ensurePromoted(ctx, registry, recorded);
    return { outputs: {}, metrics: promoteMetrics(registry, options, recorded, state) };
  }

  assertNotOvertaken(ctx, collect, state);
  const cycle = nextCycle(state);
  const newTest = datasetOf(ctx).outputs.test;
  if (!newTest) throw badInput(`stage "${ctx.input.stage}": its input has no test split; set "input: <split stage>"`);
  const splits = [...state.cycles.map((c) => ({ cycle: c.cycle, ref: c.testSplit })), { cycle, ref: newTest }];
  const evaluations = await evaluateOnSplits(ctx, options, candidate, championVersion === undefined ? undefined : champion, splits);
  let verdict = judge(options, evaluations, cycle);

  // Evaluation takes a while: look again before committing anything.
  assertNotOvertaken(ctx, collect, await readContinualState(ctx.store, pipeline));
  const currentChampion = (await getAliases(ctx.store, registry)).champion;
  if (verdict.promoted && currentChampion !== championVersion) {
    verdict = { ...verdict, promoted: false, reason: `kept the champion: it changed during the cycle (v${championVersion ?? '-'} → v${currentChampion ?? '-'}, a promotion or rollback), so the comparison no longer holds; the next cycle compares with v${currentChampion ?? '-'}` };
  }
  if (ctx.signal.aborted) throw new Error('cancelled before committing the cycle');

  const version = await registerOnce(ctx, registry, state.cycles[state.cycles.length - 1]?.candidateVersion ?? 0, candidate, {
    runId,
    pipeline,
    stage: options.candidate,
    specDigest: ctx.input.specDigest,
    parentVersion: championVersion,
    dataWatermark: watermark,
  }, { cycle, metric: options.metric, evaluations, gain: verdict.gain, forgetting: verdict.forgetting, promoted: verdict.promoted, reason: verdict.reason });

  const record: CycleRecord = {
    cycle,
    runId,
    completedAt: new Date().toISOString(),
    newRecords: Number(collect.metrics.records ?? 0),
    testSplit: newTest,
    metric: options.metric,
    registry,
    candidateVersion: version.version,
    ...(championVersion !== undefined ? { championVersion } : {}),
    promoted: verdict.promoted,
    reason: verdict.reason,
    evaluations,
    ...(verdict.gain !== undefined ? { gain: verdict.gain } : {}),
    ...(verdict.forgetting ? { forgetting: verdict.forgetting } : {}),
    watermark,
    ...(replay ? { reservoir: reservoirOf(replay) } : {}),
  };
  const next: ContinualState = {
    ...state,
    watermark,
    ...(replay ? { reservoir: record.reservoir } : {}),
    cycles: [...state.cycles, record],
  };
  if (!(await commitContinualState(ctx.store, next))) {
    // Cycle n exists: an earlier attempt of this very cycle (same watermark) committed it, or
    // another cycle that read the same data won the race.
    const committed = await readContinualState(ctx.store, pipeline);
    const mine = committed.cycles.find((c) => c.watermark.sha256 === watermark.sha256);
    if (!mine) {
      assertNotOvertaken(ctx, collect, committed);
      throw new CycleOvertakenError(`stage "${ctx.input.stage}": cycle ${cycle} was committed by another run meanwhile; nothing was advanced. Start a new cycle`);
    }
    if (mine?.promoted) await ensurePromoted(ctx, registry, mine);
    return { outputs: {}, metrics: promoteMetrics(registry, options, mine ?? record, committed) };
  }
  if (record.promoted) await ensurePromoted(ctx, registry, record);
  return { outputs: {}, metrics: promoteMetrics(registry, options, record, next) };
};

/** Moves the champion alias to a recorded cycle's candidate unless that promotion already happened (once: a later rollback stays). */
async function ensurePromoted(ctx: StageContext, registry: string, record: CycleRecord): Promise<void> {
  const { history } = await getAliases(ctx.store, registry);
  if (history.some((h) => h.action === 'promote' && h.champion === record.candidateVersion)) return;
  await promote(ctx.store, registry, record.candidateVersion, `cycle ${record.cycle} (run ${record.runId}): ${record.reason}`);
}

/**
 * Refuses to commit a cycle when another completed after this one's collect read the watermark:
 * both read the same data, and committing would count it twice. (The schedule's overlap policy
 * keeps cycles from overlapping; this catches a manual run beside a scheduled one.)
 */
function assertNotOvertaken(ctx: StageContext, collect: StageResult, state: ContinualState): void {
  const afterCycle = collect.metrics.afterCycle;
  if (typeof afterCycle !== 'number' || afterCycle === state.cycles.length) return;
  const overtaking = state.cycles.slice(afterCycle).map((c) => `cycle ${c.cycle} (run ${c.runId})`).join(', ');
  throw new CycleOvertakenError(
    `stage "${ctx.input.stage}": this cycle read its data after ${afterCycle} completed cycle(s), but ${overtaking} completed meanwhile and consumed the same data; nothing was registered or advanced. Start a new cycle (tempered schedule trigger, or tempered run); the schedule's overlap policy (skip or buffer-one) keeps cycles from overlapping`,
  );
}

function nextCycle(state: ContinualState): number {
  return (state.cycles[state.cycles.length - 1]?.cycle ?? 0) + 1;
}

function reservoirOf(replay: StageResult): CycleRecord['reservoir'] {
  const r = replay.metrics.reservoir as { records: number; seen: number; size: number };
  return { ref: replay.outputs.reservoir, records: r.records, seen: r.seen, size: r.size };
}

/** The metric of the candidate (and the champion, if any) on each split. */
async function evaluateOnSplits(
  ctx: StageContext,
  options: PromoteOptions,
  candidate: StageResult,
  champion: StageResult | undefined,
  splits: Array<{ cycle: number; ref: ArtifactRef }>,
): Promise<SplitEvaluation[]> {
  const sets = new Map<number, DataRecord[]>();
  for (const split of splits) {
    const records = sample(await readDataset(ctx, split.ref, `the test split of cycle ${split.cycle}`), options.maxExamples, ctx.input.seed, `promote:${split.cycle}`);
    if (records.length === 0) continue; // an empty split says nothing about either model
    const unlabeled = records.find((r) => r.label === undefined);
    if (unlabeled) throw badInput(`record "${unlabeled.id}" in the test split of cycle ${split.cycle} has no label; promote needs labelled test splits`);
    sets.set(split.cycle, records);
  }
  const models = [{ role: 'candidate', name: options.candidate, result: candidate }, ...(champion ? [{ role: 'champion', name: options.champion, result: champion }] : [])];
  const scores: Array<Map<number, number>> = [];
  for (const model of models) {
    ctx.progress({ phase: 'evaluating', model: model.role, splits: sets.size });
    const { labels, predicted } = await predictLabels(ctx, model, sets);
    scores.push(new Map([...sets].map(([cycle, records]) => [cycle, scoreOn(labels, predicted.get(cycle)!, records, options.metric)])));
  }
  return [...sets].map(([cycle, records]) => ({ cycle, candidate: scores[0].get(cycle)!, ...(scores[1] ? { champion: scores[1].get(cycle)! } : {}), examples: records.length }));
}

/** A classifier's labels and its predictions on each cycle's records, on the engine that made it. */
async function predictLabels(ctx: StageContext, model: { role: string; name: string; result: StageResult }, sets: Map<number, DataRecord[]>): Promise<{ labels: string[]; predicted: Map<number, string[]> }> {
  const notClassifier = (objective: string) => badInput(`promote compares classifiers; the ${model.role} is a ${objective} model (is "candidate" a classify finetune?)`);
  if (model.result.outputs['torch-model.json']) {
    const { torchPredictions } = require('../torch/predictions') as typeof import('../torch/predictions');
    const { descriptor, rows } = await torchPredictions(ctx, model.name, Object.fromEntries([...sets].map(([cycle, records]) => [`cycle-${cycle}`, records])));
    if (descriptor.objective !== 'classify' || !descriptor.labels) throw notClassifier(descriptor.objective);
    return { labels: descriptor.labels, predicted: new Map([...sets.keys()].map((cycle) => [cycle, rows[`cycle-${cycle}`].map((r) => r.predicted ?? '')])) };
  }
  await initBackend('auto');
  const loaded = await loadModelArtifacts(ctx.store, model.result.outputs, { name: `${ctx.input.stage.replace(/-/g, '_')}_${model.role}_a${ctx.attempt}`, merge: true });
  try {
    const labels = loaded.labels;
    if (loaded.descriptor.objective !== 'classify' || !labels) throw notClassifier(loaded.descriptor.objective);
    const predicted = new Map<number, string[]>();
    for (const [cycle, records] of sets) {
      const examples = classifyExamples(records.map((r) => ({ ...r, label: labels[0] })), loaded.tokenizer, loaded.gpt.config.context, labels, `cycle ${cycle} test`);
      predicted.set(cycle, predictClasses(loaded.gpt, examples).map((p) => labels[p]));
    }
    return { labels, predicted };
  } finally {
    loaded.gpt.dispose();
  }
}

/**
 * A model's metric on labelled records. A record whose label the model does not know (a class
 * that arrived after it was trained, or one a rolled-back champion never saw) counts as a wrong
 * prediction, and its label joins macro-F1 with zero recall: an old model is judged on new classes,
 * not excused from them.
 */
function scoreOn(labels: readonly string[], predicted: readonly string[], records: DataRecord[], metric: PromoteOptions['metric']): number {
  const truth = records.map((r) => r.label!);
  const classes = [...labels, ...[...new Set(truth)].filter((l) => !labels.includes(l)).sort()];
  const report = classificationReport(truth, [...predicted], classes);
  return round(metric === 'accuracy' ? report.accuracy : report.macroF1);
}

/** The gate's verdict: promote or keep, and why, in words. */
export function judge(
  options: Pick<PromoteOptions, 'gate' | 'metric'>,
  evaluations: SplitEvaluation[],
  cycle: number,
): { promoted: boolean; reason: string; gain?: number; forgetting?: { mean: number; max: number } } {
  const { gate, metric } = options;
  const current = evaluations.find((e) => e.cycle === cycle);
  if (!current) {
    const kept = evaluations.some((e) => e.champion !== undefined) ? 'kept the champion' : 'kept out';
    return { promoted: false, reason: `${kept}: this cycle's test split is empty, so the candidate cannot be judged on new data; collect more new data per cycle or raise the split's test ratio` };
  }
  const failures: string[] = [];
  const passes: string[] = [];
  if (gate.min !== undefined) (current.candidate >= gate.min ? passes : failures).push(`${metric} ${current.candidate} ${current.candidate >= gate.min ? '≥' : '<'} min ${gate.min}`);
  if (current.champion === undefined) {
    const promoted = failures.length === 0;
    return { promoted, reason: promoted ? `first champion: no earlier champion to compare with${passes.length ? `; ${passes.join('; ')}` : ''}` : `kept out: ${failures.join('; ')}` };
  }
  const gain = round(current.candidate - current.champion);
  (gain >= gate.minGain ? passes : failures).push(`gain ${signed(short(gain))} ${gain >= gate.minGain ? '≥' : '<'} minGain ${gate.minGain} on the new split`);
  const earlier = evaluations.filter((e) => e.cycle !== cycle && e.champion !== undefined);
  let forgetting: { mean: number; max: number } | undefined;
  if (earlier.length > 0) {
    const drops = earlier.map((e) => e.champion! - e.candidate);
    forgetting = { mean: round(drops.reduce((a, b) => a + b, 0) / drops.length), max: round(Math.max(...drops)) };
    (forgetting.mean <= gate.maxForgetting ? passes : failures).push(
      `forgetting ${short(forgetting.mean)} ${forgetting.mean <= gate.maxForgetting ? '≤' : '>'} maxForgetting ${gate.maxForgetting} on ${earlier.length} earlier split(s)`,
    );
  }
  const promoted = failures.length === 0;
  return { promoted, reason: promoted ? passes.join('; ') : `kept the champion: ${failures.join('; ')}`, gain, forgetting };
}

const signed = (x: number) => (x >= 0 ? `+${x}` : `${x}`);
/** Four decimals are plenty for a reason sentence; the metrics keep the full value. */
const short = (x: number) => Number(x.toFixed(4));

/**
 * Registers the candidate unless an earlier attempt or run of this cycle did: a version trained on
 * the same data (its watermark) with the same weights is this candidate. Only versions newer than
 * the last committed cycle's candidate can be one, so only those are read.
 */
async function registerOnce(
  ctx: StageContext,
  registry: string,
  lastCommitted: number,
  candidate: StageResult,
  lineage: ModelVersion['lineage'],
  metrics: Metrics,
): Promise<ModelVersion> {
  const watermark = (lineage.dataWatermark as ArtifactRef).sha256;
  const sameModel = (v: ModelVersion) => ['model', 'weights', 'adapter'].every((k) => v.outputs[k]?.sha256 === candidate.outputs[k]?.sha256);
  for (const v of (await listVersions(ctx.store, registry)).filter((n) => n > lastCommitted).reverse()) {
    const existing = await getVersion(ctx.store, registry, v);
    if ((existing.lineage.dataWatermark as ArtifactRef | undefined)?.sha256 === watermark && sameModel(existing)) return existing;
  }
  return registerVersion(ctx.store, registry, { outputs: candidate.outputs, metrics, lineage });
}

function promoteMetrics(registry: string, options: PromoteOptions, record: CycleRecord, state: ContinualState): Metrics {
  return {
    registry,
    metric: options.metric,
    cycle: record.cycle,
    candidateVersion: record.candidateVersion,
    championVersion: record.championVersion,
    promoted: record.promoted,
    reason: record.reason,
    gain: record.gain,
    forgetting: record.forgetting,
    gate: options.gate,
    evaluations: record.evaluations,
    history: state.cycles
      .filter((c) => c.cycle <= record.cycle)
      .map(({ cycle, runId, promoted, reason, candidateVersion, championVersion, gain, forgetting, evaluations }) => ({ cycle, runId, promoted, reason, candidateVersion, championVersion, gain, forgetting, evaluations })),
  };
}
