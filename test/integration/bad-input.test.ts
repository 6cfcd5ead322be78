import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { newRunId, startRun } from '../../cli/runs';
import type { RunSummary, StageProgress } from '../../workflows/types';
import { ROOT } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// Malformed data through real pipelines on the real Temporal dev server and MinIO, each its own
// small run. Every case must fail its stage on the first attempt (the retry policy below would
// otherwise try five times, 2 s apart), with a message naming the file or record and the fix,
// skip what depends on it, and leave the workers running.

const DATA = path.join(ROOT, 'test/fixtures/bad-input/data');
const TEN_MB = 10 * 1024 * 1024;

let h: Harness;
let bigDir: string;
const runs = new Map<string, Promise<{ summary: RunSummary; ms: number }>>();

/** Starts a run of `stages` (YAML, indented by 2) with relative globs resolving against the data fixtures. */
function start(name: string, stages: string): void {
  const yaml = `
apiVersion: tempered.dev/v1
name: bad-${name}
seed: 5
defaults: { retry: { maxAttempts: 5, initialInterval: 2s }, heartbeatTimeout: 20s }
stages:
${stages}`;
  const started = Date.now();
  const run = (async () => {
    const plan = planPipeline(loadSpecText(yaml, path.join(DATA, `${name}.yaml`)));
    const { workflowId } = await startRun(h.client, plan, newRunId());
    const summary = await waitForSummary(h.client, workflowId, 80_000);
    return { summary, ms: Date.now() - started };
  })();
  run.catch(() => undefined); // awaited by its test; not an unhandled rejection meanwhile
  runs.set(name, run);
}

/** The stage failed on its only attempt and the run failed with it. */
function failedAtOnce(summary: RunSummary, stage: string): string {
  expect(summary.status).toBe('failed');
  expect(summary.stages[stage]).toMatchObject({ status: 'failed', attempts: 1 });
  return summary.stages[stage].error!;
}

const done = (s: StageProgress) => ['succeeded', 'cached'].includes(s.status);
const elapsedMs = (s: StageProgress) => Date.parse(s.endedAt!) - Date.parse(s.startedAt!);

/** The finetune stages call the memory check before building a model: without it this case would exhaust the worker. */
const memoryCheckWired = () => readFileSync(path.join(ROOT, 'activities/training/stages.ts'), 'utf8').includes('checkTrainingFits(');

const UNLABELED = `
  collect: { type: collect, sources: [{ path: "unlabeled/*.txt" }], segment: line }
  split: { type: split, input: collect }
  tokenizer: { type: tokenizer, input: split, vocabSize: 300 }`;

beforeAll(async () => {
  h = await startHarness();
  bigDir = await mkdtemp(path.join(os.tmpdir(), 'tempered-big-record-'));
  // One 10 MB record: a text file read whole (segment: file), words and line breaks like a book.
  const words = ['whale', 'ship', 'sea', 'captain', 'harpoon', 'deck', 'ocean', 'storm', 'Ishmael', 'voyage'];
  const parts: string[] = [];
  for (let i = 0, size = 0; size < TEN_MB; i++) {
    const part = words[(i * 7) % words.length] + (i % 13 === 12 ? '.\n' : ' ');
    parts.push(part);
    size += part.length;
  }
  await writeFile(path.join(bigDir, 'book.txt'), parts.join(''));

  // All runs at once: the tests below await their own.
  start('truncated-jsonl', `
  collect: { type: collect, sources: [{ path: "truncated/*.jsonl" }] }
  clean: { type: clean, input: collect }`);
  start('invalid-utf8', `
  collect: { type: collect, sources: [{ path: "invalid-utf8/*.txt" }], segment: line }`);
  start('empty-dataset', `
  collect: { type: collect, sources: [{ path: "empty/*.txt" }], segment: line }`);
  start('glob-matches-nothing', `
  collect: { type: collect, sources: [{ path: "empty/*.jsonl" }] }`);
  start('csv-without-text', `
  collect: { type: collect, sources: [{ path: "csv/*.csv" }], labelField: category }`);
  start('classify-unlabeled', `${UNLABELED}
  classifier:
    type: finetune
    input: split
    tokenizer: tokenizer
    objective: classify
    model: { layers: 1, dModel: 16, heads: 2, context: 16 }
    steps: 2
    batchSize: 4`);
  start('ten-mb-record', `
  collect: { type: collect, sources: [{ path: ${JSON.stringify(`${bigDir}/*.txt`)} }] }
  clean: { type: clean, input: collect }
  split: { type: split, input: clean }`);
  if (memoryCheckWired()) {
    start('model-too-large', `${UNLABELED}
  huge:
    type: finetune
    input: split
    tokenizer: tokenizer
    objective: causal-lm
    model: { layers: 48, dModel: 4096, heads: 32, context: 4096 }
    steps: 2`);
  }
}, 30_000);

afterAll(async () => {
  await h?.close();
  if (bigDir) await rm(bigDir, { recursive: true, force: true });
});

const result = (name: string) => runs.get(name)!;

test('truncated JSONL: the file, the line, and that the last record was cut off', async () => {
  const { summary } = await result('truncated-jsonl');
  const error = failedAtOnce(summary, 'collect');
  expect(error).toMatch(/^stage "collect" \(collect\): truncated\/records\.jsonl:3: invalid JSON \(.+\); the file ends inside this record, so it was probably truncated \(an interrupted download or copy\); re-create the file, or delete its incomplete last line$/);
  expect(summary.stages.clean.status).toBe('skipped');
});

test('invalid UTF-8 under the strict default encoding: the file, the byte offset, and both fixes', async () => {
  const { summary } = await result('invalid-utf8');
  const offset = readFileSync(path.join(DATA, 'invalid-utf8/legacy.txt')).indexOf(0xe9);
  expect(failedAtOnce(summary, 'collect')).toBe(
    `stage "collect" (collect): "invalid-utf8/legacy.txt" is not valid UTF-8: invalid byte sequence at byte offset ${offset}; ` +
      're-encode the file as UTF-8 (e.g. iconv -f windows-1252 -t utf-8) or set collect encoding "utf-8-or-windows-1252"',
  );
});

test('an empty dataset (an empty file and one of blank lines): the source and what to check', async () => {
  const { summary } = await result('empty-dataset');
  expect(failedAtOnce(summary, 'collect')).toBe(
    `stage "collect" (collect): source "empty/*.txt" yielded no records: every matched file is empty or whitespace-only (resolved to ${JSON.stringify(DATA)}); ` +
      'check that the glob selects the data files and that format and segment suit them',
  );
});

test('a glob matching nothing: the glob, where it was resolved, and against which directory', async () => {
  const { summary } = await result('glob-matches-nothing');
  expect(failedAtOnce(summary, 'collect')).toBe(
    `stage "collect" (collect): source "empty/*.jsonl" matched no files (resolved to ${JSON.stringify(`${DATA}/empty/*.jsonl`)}); ` +
      `check the glob; relative globs resolve against the spec's directory ${JSON.stringify(DATA)}`,
  );
});

test('a CSV without the text column: the file, its header, and the option to set', async () => {
  const { summary } = await result('csv-without-text');
  expect(failedAtOnce(summary, 'collect')).toBe(
    'stage "collect" (collect): csv/mail.csv:1: field "text" (collect textField) is not a column (columns in the header on line 1: id, body, category); ' +
      'set textField to the field that holds it, or fix the data',
  );
});

test('a classify fine-tune on records without labels says to set labelFromPath or labelField', async () => {
  const { summary } = await result('classify-unlabeled');
  for (const stage of ['collect', 'split', 'tokenizer']) expect(done(summary.stages[stage])).toBe(true);
  const error = failedAtOnce(summary, 'classifier');
  expect(error).toMatch(/^stage "classifier" \(finetune\): .*a classify objective needs at least two labels in the train split, found none; /);
  expect(error).toContain('labelFromPath');
  expect(error).toContain('labelField');
});

test('a 10 MB single record is read, then rejected by clean maxChars with the numbers and the fix, in seconds', async () => {
  const { summary, ms } = await result('ten-mb-record');
  const { collect, clean } = summary.stages;
  expect(done(collect)).toBe(true);
  expect(collect.metrics).toMatchObject({ records: 1, files: 1 });
  expect(collect.metrics.bytes).toBeGreaterThanOrEqual(TEN_MB);
  expect(collect.outputs[0].bytes).toBeGreaterThan(TEN_MB);
  const error = failedAtOnce(summary, 'clean');
  expect(error).toMatch(
    /^stage "clean" \(clean\): kept none of its 1 record: 1 longer than maxChars 100000; raise maxChars \(the longest record has \d{8} characters after cleaning\), or cut long documents into records in collect \(segment: paragraph or line\)$/,
  );
  expect(summary.stages.split.status).toBe('skipped');
  process.stderr.write(`[bad-input] 10 MB record: collect ${elapsedMs(collect)} ms, clean ${elapsedMs(clean)} ms, run ${ms} ms\n`);
  expect(elapsedMs(collect) + elapsedMs(clean)).toBeLessThan(30_000);
});

test('a model larger than memory allows fails before it is built, with the estimate, the limit and the fix', async () => {
  if (!memoryCheckWired()) {
    throw new Error('finetuneStage does not call checkTrainingFits (activities/training/memory.ts) yet; not starting a run that would exhaust the worker');
  }
  const { summary } = await result('model-too-large');
  for (const stage of ['collect', 'split', 'tokenizer']) expect(done(summary.stages[stage])).toBe(true);
  const error = failedAtOnce(summary, 'huge');
  expect(error).toMatch(
    /^stage "huge" \(finetune\): training this model needs an estimated [\d.]+ [GTP]iB \(weights, gradients, AdamW state and one micro-batch of activations\), more than the [\d.]+ [MGT]iB this worker allows( \(the most the WebAssembly backend can address\))?; make the model smaller \(dModel, layers, context\) or lower batchSize/,
  );
  expect(error).toContain('TEMPERED_MEMORY_LIMIT_BYTES');
  expect(elapsedMs(summary.stages.huge)).toBeLessThan(15_000);
});

test('after all of that the same workers are up and run a good pipeline on both queues', async () => {
  await Promise.allSettled(runs.values());
  const state = await Promise.race([h.workers.done.then(() => 'stopped', (err: Error) => `crashed: ${err.message}`), new Promise((r) => setTimeout(() => r('running'), 100))]);
  expect(state).toBe('running');
  const plan = planPipeline(loadSpecText(`
apiVersion: tempered.dev/v1
name: good-after-bad
stages:
  on-cpu: { type: noop }
  on-gpu: { type: noop, resources: { gpu: 1 } }
  collect: { type: collect, sources: [{ path: "truncated/*.jsonl" }], format: text, segment: line }
`, path.join(DATA, 'good.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const summary = await waitForSummary(h.client, workflowId, 30_000);
  expect(summary.status).toBe('succeeded');
  expect(summary.stages.collect.metrics.records).toBe(3);
});
