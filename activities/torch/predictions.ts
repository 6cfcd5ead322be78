import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensurePythonEnv } from '../../infra/python-env';
import type { DataRecord } from '../data';
import type { StageContext } from '../stage-runner';
import { runTorch, writeJsonlFile, type TorchModelDescriptor } from './common';
import { fetchModel } from './model';

// Predictions of a stored torch model on named sets of records, in one Python process: what stages
// that judge models without being an evaluate stage (promote) score with Tempered's own metrics.

/** One record's prediction: a classifier's label, or a language model's summed NLL and token count. */
export interface TorchPrediction {
  id?: string;
  predicted?: string;
  nll?: number;
  tokens?: number;
}

export async function torchPredictions(ctx: StageContext, model: string, sets: Record<string, readonly DataRecord[]>): Promise<{ descriptor: TorchModelDescriptor; rows: Record<string, TorchPrediction[]> }> {
  const env = await ensurePythonEnv({ log: (line) => ctx.progress({ phase: 'preparing the Python environment', detail: line }) });
  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-torch-predict-'));
  try {
    const fetched = await fetchModel(ctx, model, path.join(work, 'model'), env.python);
    const files: Record<string, string> = {};
    for (const [name, records] of Object.entries(sets)) {
      if (records.length === 0) continue;
      files[name] = path.join(work, `${name}.jsonl`);
      await writeJsonlFile(files[name], records);
    }
    const rows: Record<string, TorchPrediction[]> = Object.fromEntries(Object.keys(sets).map((name) => [name, []]));
    if (Object.keys(files).length === 0) return { descriptor: fetched.descriptor, rows };
    const job = { ...fetched.job, records: files, out_dir: path.join(work, 'predictions'), batch_size: 16 };
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job));
    await runTorch(ctx, env.python, 'predict', jobFile, work, (message) => {
      if (message.kind === 'progress') ctx.progress({ phase: 'predicting', engine: 'torch', model, ...message.details });
    });
    for (const name of Object.keys(files)) {
      rows[name] = (await readFile(path.join(job.out_dir, `${name}.jsonl`), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as TorchPrediction);
    }
    return { descriptor: fetched.descriptor, rows };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
