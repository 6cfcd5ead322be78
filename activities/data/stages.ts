import { setTimeout as sleep } from 'node:timers/promises';
import { optionsOf } from '../stage-options';
import type { StageInput, StageResult } from '../../workflows/types';
import { previousWatermark } from '../continual/state';
import { readDataset } from '../datasets';
import type { StageImplementation } from '../stage-runner';
import { writeJsonl } from '../store';
import { augmentRecords } from './augment';
import { cleanRecords } from './clean';
import { collectRecords } from './collect';
import { createS3SourceReader } from './s3-source';
import { splitRecords } from './split';
import { identityTranslator, type Translator } from './translator';
import { encodeWatermark } from './watermark';
import { loadWordNetSynonyms } from './wordnet';

// The data stages: thin adapters from the stage protocol (store, progress) to the pure functions
// beside this file.

// An incremental collect reads only what is new since the last completed cycle's watermark and
// outputs the advanced watermark (the promote stage commits it); nothing new ends the run early.
export const collectStage: StageImplementation = async (ctx) => {
  const { input, store } = ctx;
  const options = optionsOf(input, 'collect');
  const previous = options.incremental ? await previousWatermark(store, input.pipeline) : undefined;
  const { records, metrics, watermark } = await collectRecords(options, {
    baseDir: input.baseDir,
    seed: input.seed,
    s3: createS3SourceReader({}),
    onProgress: (files) => ctx.progress({ phase: 'reading', files }),
    since: previous?.watermark,
  });
  const outputs = { records: await writeJsonl(store, ctx.outputKey('records.jsonl'), records) };
  if (!watermark || !previous) return { outputs, metrics };
  const watermarkRef = await store.put(ctx.outputKey('watermark.json.gz'), encodeWatermark(watermark), 'application/gzip');
  // `afterCycle` lets promote refuse to commit a cycle that another one overtook (it read the same data).
  const cycleMetrics = { ...metrics, afterCycle: previous.completedCycles };
  return { outputs: { ...outputs, watermark: watermarkRef }, metrics: metrics.nothingNew ? { ...cycleMetrics, endRun: 'nothing new since the last completed cycle' } : cycleMetrics };
};

export const cleanStage: StageImplementation = async (ctx) => {
  const records = await readDataset(ctx, singleInput(ctx.input).outputs.records, 'its dataset');
  ctx.progress({ phase: 'cleaning', records: records.length });
  const { records: cleaned, metrics } = await cleanRecords(records, optionsOf(ctx.input, 'clean'), {
    onProgress: ({ phase, done, total }) => ctx.progress({ phase: `cleaning: ${phase}`, done, total, records: records.length }),
  });
  return { outputs: { records: await writeJsonl(ctx.store, ctx.outputKey('records.jsonl'), cleaned) }, metrics };
};

export const splitStage: StageImplementation = async (ctx) => {
  const records = await readDataset(ctx, singleInput(ctx.input).outputs.records, 'its dataset');
  ctx.progress({ phase: 'splitting', records: records.length });
  const { splits, metrics } = await splitRecords(records, optionsOf(ctx.input, 'split'), {
    seed: ctx.input.seed,
    onProgress: ({ phase, done, total }) => ctx.progress({ phase: `splitting: ${phase}`, done, total, records: records.length }),
  });
  const outputs = {
    train: await writeJsonl(ctx.store, ctx.outputKey('train.jsonl'), splits.train),
    validation: await writeJsonl(ctx.store, ctx.outputKey('validation.jsonl'), splits.validation),
    test: await writeJsonl(ctx.store, ctx.outputKey('test.jsonl'), splits.test),
  };
  return { outputs, metrics };
};

/**
 * Augments the train split only; validation and test pass through as the same artifacts, so no
 * augmented copy of a training record can leak into evaluation. `translators` add back-translation
 * services to the built-in `identity`.
 */
export function augmentStage(translators: Record<string, Translator> = {}): StageImplementation {
  const allTranslators = { identity: identityTranslator, ...translators };
  return async (ctx) => {
    const split = singleInput(ctx.input).outputs;
    const train = await readDataset(ctx, split.train, 'the train split');
    ctx.progress({ phase: 'augmenting', records: train.length });
    const { records, metrics } = await augmentRecords(train, optionsOf(ctx.input, 'augment'), {
      seed: ctx.input.seed,
      synonyms: loadWordNetSynonyms(),
      translators: allTranslators,
      onProgress: ({ phase, done, total }) => ctx.progress({ phase, done, total, records: train.length }),
    });
    const outputs = { train: await writeJsonl(ctx.store, ctx.outputKey('train.jsonl'), records), validation: split.validation, test: split.test };
    return { outputs, metrics };
  };
}

export const noopStage: StageImplementation = async (ctx) => {
  const { sleepMs, failAttempts } = optionsOf(ctx.input, 'noop');
  if (ctx.attempt <= failAttempts) {
    throw new Error(`injected transient failure on attempt ${ctx.attempt} (failAttempts: ${failAttempts})`);
  }
  if (sleepMs > 0) await sleep(sleepMs, undefined, { signal: ctx.signal }).catch(() => undefined);
  return { outputs: {}, metrics: { sleptMs: sleepMs } };
};

function singleInput(input: StageInput): StageResult {
  const first = input.dataInputs[0] === undefined ? undefined : input.inputs[input.dataInputs[0]];
  if (!first) throw new Error(`stage "${input.stage}" received no input; the plan should have given it one`);
  return first;
}
