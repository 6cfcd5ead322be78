import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ensurePythonEnv, pythonRunEnv } from '../../infra/python-env';
import { newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary } from '../../workflows/types';
import { startHarness, waitForSummary, type Harness } from '../support/harness';
import { makeTinyBase, writeTinyMails } from '../support/torch-fixtures';

// distill and quantize of torch models on real Temporal + MinIO and the real Python packages: a
// fine-tuned tiny BERT (built from a config in the test) teaches a 1-layer student, which loads
// with plain transformers; the teacher is quantized to dynamic int8, smaller and scored against
// its float original; and the int8 model and the student are evaluated like any model. That a
// resumed distillation ends with identical weights, and that kd loss and the int8 format round-trip,
// python/tests/test_distill_quantize.py proves (run by python-env.test.ts).

const run = promisify(execFile);
let h: Harness;
let python: string;
let dir: string;
const baseId = `tiny-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  python = (await ensurePythonEnv()).python;
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-compress-'));
  await makeTinyBase(python, path.join(dir, 'tiny-base'));
  await writeTinyMails(dir, 60);
  // The teacher's base is a checkpoint directory in S3 (MinIO), copied once into a local cache.
  process.env.TEMPERED_BASES_DIR = path.join(dir, 'bases-cache');
  for (const name of await readdir(path.join(dir, 'tiny-base'))) {
    await h.store.put(`bases/${baseId}/${name}`, await readFile(path.join(dir, 'tiny-base', name)), 'application/octet-stream');
  }
}, 1_800_000);

afterAll(async () => {
  delete process.env.TEMPERED_BASES_DIR;
  await h?.close();
});

const spec = () => `
apiVersion: tempered.dev/v1
name: torch-compress
seed: 3
stages:
  collect: { type: collect, sources: [{ path: "mail/*/*.txt" }], labelFromPath: "(?<label>ham|spam)/" }
  split: { type: split, input: collect, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  teacher: { type: finetune, input: split, base: "s3://${h.bucket}/bases/${baseId}/", objective: classify, steps: 8, batchSize: 8, maxLength: 16, optimizer: { lr: 0.003 } }
  student:
    type: distill
    input: split
    teacher: teacher
    model: { layers: 1 }
    optimizer: { lr: 0.001 }
    steps: 6
    batchSize: 8
    checkpointEvery: 3
  int8: { type: quantize, input: split, model: teacher }
  evaluate-student: { type: evaluate, input: split, model: student, robustness: false }
  evaluate-int8: { type: evaluate, input: split, model: int8, robustness: false }
  evaluate-teacher: { type: evaluate, input: split, model: teacher, robustness: false }
`;

test('a torch teacher is distilled into a smaller student and quantized to int8; both evaluate like any model', async () => {
  const plan = planPipeline(loadSpecText(spec(), path.join(dir, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const summary: RunSummary = await waitForSummary(h.client, workflowId, 600_000);
  expect(Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded').map(([n, s]) => `${n}: ${s.error}`)).toEqual([]);

  // The S3 base was copied once, and its files' sha256 are the lineage like any base's.
  expect(summary.stages.teacher.metrics.base).toBe(`s3://${h.bucket}/bases/${baseId}/`);
  expect(await readdir(path.join(dir, 'bases-cache'))).toHaveLength(1);

  const student = summary.stages.student.metrics as Record<string, any>;
  expect(student).toMatchObject({ engine: 'torch', objective: 'classify', teacherLayers: 2, studentLayers: 1, layersKept: [0], metric: 'valF1', steps: 6, curve: { points: 6 } });
  expect(student.studentParameters).toBeLessThan(student.teacherParameters);
  expect(student.compression).toBeCloseTo(student.teacherParameters / student.studentParameters, 4);
  expect(student.initialisedFromTeacher).toBeGreaterThan(0.9);
  expect(student.teacherMetric).toBeGreaterThanOrEqual(0);
  expect(student.speedup).toBeGreaterThan(0);

  // The student is a Hugging Face checkpoint that plain transformers loads, with the teacher's labels.
  const local = path.join(dir, 'student');
  await mkdir(local, { recursive: true });
  for (const output of summary.stages.student.outputs.filter((o) => o.name.startsWith('hf/'))) {
    await writeFile(path.join(local, output.name.slice(3)), await h.store.readBuffer({ ...output, mediaType: 'application/octet-stream' }));
  }
  const { stdout } = await run(python, ['-c', 'import sys, json; from transformers import AutoModelForSequenceClassification as M; m = M.from_pretrained(sys.argv[1]); print(json.dumps({"layers": m.config.num_hidden_layers, "labels": m.config.id2label}))', local], { env: pythonRunEnv() });
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ layers: 1, labels: { '0': 'ham', '1': 'spam' } });

  // int8: smaller, measured against the float model on the same test records.
  const int8 = summary.stages.int8.metrics as Record<string, any>;
  expect(int8).toMatchObject({ engine: 'torch', scheme: 'int8', metric: 'macroF1' });
  expect(int8.bytesAfter).toBeLessThan(int8.bytesBefore * 0.5);
  expect(int8.predictionAgreement).toBeGreaterThanOrEqual(0.9);
  expect(int8.latencyBeforeMs).toBeGreaterThan(0);
  expect(int8.latencyAfterMs).toBeGreaterThan(0);
  expect(summary.stages.int8.outputs.map((o) => o.name)).toEqual(expect.arrayContaining(['hf/model.int8.safetensors', 'hf/tempered-quantization.json', 'hf/config.json', 'torch-model.json']));

  // The int8 model evaluates on the same test records as its float original and mostly agrees.
  const [teacherEval, int8Eval] = [summary.stages['evaluate-teacher'].metrics, summary.stages['evaluate-int8'].metrics] as Array<Record<string, any>>;
  expect(int8Eval).toMatchObject({ engine: 'torch', objective: 'classify', examples: teacherEval.examples });
  expect(Math.abs(int8Eval.accuracy - teacherEval.accuracy)).toBeLessThanOrEqual(0.1);
  expect(summary.stages['evaluate-student'].metrics).toMatchObject({ engine: 'torch', examples: teacherEval.examples });
}, 900_000);
