import { createReadStream } from 'node:fs';
import * as path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import type { ArtifactRef } from '../../workflows/types';
import { CurveRecorder, readCurves, writeCurves, type CurvePoint } from '../curves';
import type { StageContext } from '../stage-runner';
import { downloadFiles, listFiles, runTorch } from './common';

// What every torch training stage (finetune, distill) shares around its Python process: heartbeats
// from its progress lines, its checkpoints uploaded to the store while it trains (a pointer written
// last), and on a retried attempt the latest whole checkpoint downloaded to resume from.

/** A checkpoint of an earlier attempt, downloaded (verified), with the curve up to its step. */
export interface Resume {
  step: number;
  dir: string;
  curve: CurvePoint[];
}

/** What the Python process reported: its final metrics, and the whole curve (resumed points first). */
export interface TrainingRun {
  metrics: Record<string, unknown>;
  curve: CurvePoint[];
}

/**
 * Runs `tempered_torch.<module>` on `jobFile` as a training process: progress lines become
 * heartbeats and curve points; each checkpoint it announces is uploaded in order while training
 * goes on, and the heartbeat names it once it is whole in the store.
 */
export async function runTraining(ctx: StageContext, python: string, module: string, jobFile: string, work: string, resume: Resume | undefined, processes = 1): Promise<TrainingRun> {
  // A resumed attempt's curve starts with the points its checkpoint kept: each step once.
  const curve = new CurveRecorder();
  curve.points.push(...(resume?.curve ?? []));
  let metrics: Record<string, unknown> = {};
  let last: Record<string, unknown> = {};
  let uploads: Promise<void> = Promise.resolve();
  let uploadError: unknown;
  const report = (details: Record<string, unknown>) => {
    try {
      ctx.progress(details);
    } catch (err) {
      // Cancelled: this runs in a stream callback; the signal already stops the program.
      if (!(err instanceof CancelledFailure)) throw err;
    }
  };
  try {
    await runTorch(ctx, python, module, jobFile, work, (message) => {
      if (message.kind === 'progress') {
        curve.add(message.details);
        last = { ...last, ...message.details };
        report({ phase: 'training', engine: 'torch', ...last });
      } else if (message.kind === 'metrics') {
        metrics = { ...metrics, ...message.values };
      } else {
        const { step, dir } = message.details as { step: number; dir: string };
        uploads = uploads.then(async () => {
          try {
            const pointer = await storeCheckpoint(ctx, step, dir, curve.points.filter((p) => p.step <= step));
            last = { ...last, checkpointStep: step, checkpoint: pointer };
            report({ phase: 'training', engine: 'torch', ...last });
          } catch (err) {
            uploadError ??= err;
          }
        });
      }
    }, processes);
  } finally {
    await uploads;
  }
  if (uploadError) throw uploadError;
  return { metrics, curve: curve.points };
}

/**
 * Uploads a checkpoint directory under its own step, then the pointer to it (written last: a pointer
 * names a whole checkpoint), then deletes the checkpoint it replaced. A worker lost at any moment
 * leaves a pointer to a whole checkpoint.
 */
async function storeCheckpoint(ctx: StageContext, step: number, dir: string, curve: CurvePoint[]): Promise<ArtifactRef> {
  const prefix = ctx.outputKey(`checkpoints/torch/step-${String(step).padStart(8, '0')}/`);
  const files: Record<string, ArtifactRef> = {};
  for (const name of await listFiles(dir)) files[name] = await ctx.store.put(`${prefix}${name}`, createReadStream(path.join(dir, name)), 'application/octet-stream');
  const curveRef = await writeCurves(ctx.store, `${prefix}${CURVE_FILE}`, curve);
  const pointer = await ctx.store.put(ctx.outputKey(CHECKPOINT_POINTER), JSON.stringify({ step, files, curve: curveRef }), 'application/json');
  for (const key of await ctx.store.list(ctx.outputKey('checkpoints/torch/'))) if (!key.startsWith(prefix)) await ctx.store.delete(key);
  return pointer;
}

/** The curve up to a checkpoint's step, stored beside it (not a file of the checkpoint directory). */
const CURVE_FILE = 'tempered-curve.jsonl';

/** Where the latest whole checkpoint of a torch stage is named. */
const CHECKPOINT_POINTER = 'checkpoints/torch-latest.json';

/** The latest whole checkpoint of an earlier attempt, downloaded (verified) into `dir`. */
export async function latestCheckpoint(ctx: StageContext, dir: string): Promise<Resume | undefined> {
  const found = await ctx.store.readKey(ctx.outputKey(CHECKPOINT_POINTER), 'application/json');
  if (!found) return undefined;
  const pointer = JSON.parse(found.body.toString('utf8')) as { step: number; files: Record<string, ArtifactRef>; curve?: ArtifactRef };
  let curve: CurvePoint[] = [];
  try {
    await downloadFiles(ctx.store, pointer.files, '', dir);
    if (pointer.curve) curve = await readCurves(ctx.store, pointer.curve);
  } catch {
    // Overwritten by a later checkpoint mid-download (the files no longer match): start over.
    return undefined;
  }
  ctx.progress({ phase: 'resuming', fromStep: pointer.step });
  return { step: pointer.step, dir, curve };
}
