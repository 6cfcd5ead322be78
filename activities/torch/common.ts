import { createWriteStream } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CancelledFailure } from '@temporalio/common';
import { ensurePythonEnv, pythonRunEnv, type PythonEnv } from '../../infra/python-env';
import { deviceEnvironment } from '../gpu-slots';
import type { ArtifactRef } from '../../workflows/types';
import type { ProgramMessage } from '../command/protocol';
import { runProgram, type ProgramExit } from '../command/run-program';
import type { StageContext } from '../stage-runner';
import type { ArtifactStore } from '../store';

// What the torch stages share: running a tempered_torch module as the stage's process, and moving
// Hugging Face directories between the store and a work folder.

/** Output names of a torch model's files: `hf/<path in the checkpoint directory>`. */
export const HF_PREFIX = 'hf/';

/** The output that says what a torch model is. */
export const DESCRIPTOR = 'torch-model.json';

/** What a torch model stage stores beside its files. */
export interface TorchModelDescriptor {
  engine: 'torch';
  objective: 'classify' | 'causal-lm' | 'mlm' | 'sft';
  /** sft: the templates its conversations were built with, so evaluation renders the same prompts and references. */
  sft?: { prompt: string; response: string; system?: string };
  labels?: string[];
  /** Tokens per example it was trained with: what evaluation truncates to. */
  maxLength?: number;
  /** Only adapters were saved (PEFT); `base` holds the model they apply to. */
  adapter: boolean;
  /** Lineage: the pretrained checkpoint, by reference and by each file's sha256; or the stage it continued. */
  base?: { reference: string; ggufFile?: string; files: Array<{ name: string; sha256: string; bytes: number }> };
  from?: string;
  /** Stored as dynamic int8 (tempered_torch.quantize): rebuilt by the engine, runs on CPU. */
  quantized?: { scheme: 'dynamic-int8' };
  /** Trained on overlapping windows of long records: evaluation scores whole records the same way. */
  windows?: { overlap: number };
  /** A distilled student: the teacher stage it learned from. */
  distilledFrom?: string;
}

/** Tempered's Python environment for a torch stage, built on first use with its progress as the stage's. */
export function torchEnv(ctx: StageContext): Promise<PythonEnv> {
  ctx.progress({ phase: 'preparing the Python environment' });
  return ensurePythonEnv({ log: (line) => ctx.progress({ phase: 'preparing the Python environment', detail: line }) });
}

/** Exit code of tempered_torch for input no retry can fix. */
const EXIT_BAD_INPUT = 3;

/** The torch program failed: retryable unless it said the input is bad. Carries the end of its stderr. */
export class TorchProgramError extends Error {
  override readonly name = 'TorchProgramError';
  constructor(
    message: string,
    readonly nonRetryable: boolean,
  ) {
    super(message);
  }
}

/**
 * Runs `python -m tempered_torch.<module> <job>` in `work` — with `processes` above 1, as that many
 * data-parallel processes through `tempered_torch.launch` (torchrun) — stopped when the stage is
 * cancelled; throws on failure.
 */
export async function runTorch(ctx: StageContext, python: string, module: string, jobFile: string, work: string, onMessage: (message: ProgramMessage) => void, processes = 1): Promise<void> {
  const exit = await runProgram({
    argv: processes > 1 ? [python, '-m', 'tempered_torch.launch', String(processes), module, jobFile] : [python, '-m', `tempered_torch.${module}`, jobFile],
    cwd: work,
    env: { ...pythonRunEnv(), ...deviceEnvironment(ctx.devices) },
    signal: ctx.signal,
    logFile: path.join(work, `${module}.log`),
    killGraceMs: 10_000,
    onMessage,
  });
  if (exit.cancelled) throw new CancelledFailure(`stage "${ctx.input.stage}" cancelled; its torch process was stopped`);
  if (exit.exitCode !== 0) throw failure(module, exit);
}

function failure(module: string, exit: ProgramExit): TorchProgramError {
  const tail = exit.stderrTail.slice(-20).join('\n');
  const how = exit.signal ? `was killed by ${exit.signal}${exit.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exited with code ${exit.exitCode}`;
  return new TorchProgramError(`tempered_torch.${module} ${how}${tail ? `:\n${tail}` : ''}`, exit.exitCode === EXIT_BAD_INPUT);
}

/** Downloads (verified) the artifacts whose names start with `prefix` into `dir`, without the prefix. */
export async function downloadFiles(store: ArtifactStore, refs: Record<string, ArtifactRef>, prefix: string, dir: string): Promise<void> {
  for (const [name, ref] of Object.entries(refs)) {
    if (!name.startsWith(prefix)) continue;
    const relative = name.slice(prefix.length);
    if (relative.split('/').some((part) => part === '..' || part === '')) throw new TorchProgramError(`artifact name ${JSON.stringify(name)} leaves its directory`, true);
    const target = path.join(dir, relative);
    await mkdir(path.dirname(target), { recursive: true });
    await pipeline(store.openRead(ref), createWriteStream(target));
  }
}

export async function writeJsonlFile(file: string, records: readonly unknown[]): Promise<void> {
  await writeFile(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

export async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) names.push(...(await listFiles(dir, name)));
    else if (entry.isFile()) names.push(name);
  }
  return names.sort();
}

export function mediaTypeOf(name: string): string {
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.txt') || name.endsWith('.jinja')) return 'text/plain';
  return 'application/octet-stream';
}
