// The `command` stage: bring your own trainer. Runs any program (a Python/PyTorch script, a
// binary) with the stage's inputs staged from the store into a fresh work directory and its
// declared outputs staged back, reporting progress and metrics through stdout lines (protocol.ts).
//
//   <work>/inputs/<stage>/<output file>   every upstream output, sha256-verified (a directory output
//                                         as the directory: <stage>/ckpt/<files>)
//   <work>/inputs/manifest.json           what is there: stage, output, path, sha256, bytes, mediaType
//   <work>/outputs/                       where the program writes its declared outputs
//   <work>/log.txt                        stdout + stderr, secret values redacted, uploaded as the `log` output
//
// What keeps the worker's secrets in: the program's environment is scrubbed (environment.ts), it
// runs where possible in its own PID namespace so it cannot read the worker's (isolation.ts), and
// secret values are redacted from everything read from it (redact.ts).
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, realpath, rm, stat } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { optionsOf } from '../stage-options';
import type { ArtifactRef, Metrics } from '../../workflows/types';
import { curveSummary, CURVES_OUTPUT, CurveRecorder, writeCurves } from '../curves';
import type { StageContext, StageImplementation } from '../stage-runner';
import { S3ArtifactStore, type ArtifactStore } from '../store';
import { childEnvironment, expandCommand, parsePassEnv, PASS_ENV_VARIABLE } from './environment';
import { IsolationUnavailableError, MissingOutputError, ProgramFailedError, ReservedNameError, WorkingDirectoryError } from './errors';
import { ISOLATION_VARIABLE, parseIsolationMode, warnUnisolated, workerIsolation, type IsolationMode } from './isolation';
import { findOutputs, uploadOutputFile, type ListedFile } from './outputs';
import type { ProgramMessage } from './protocol';
import { redactSecrets, secretValues } from './redact';
import { runProgram, type ProgramExit } from './run-program';
import { stageInputs } from './stage-inputs';

export * from './environment';
export * from './errors';
export * from './protocol';
export * from './redact';
export { INIT_SOURCE, isolationPrefix, ISOLATION_VARIABLE, parseInitReport, parseIsolationMode, probeIsolation, workerIsolation, type Isolation, type IsolationMode } from './isolation';
export { findOutputs, MAX_OUTPUT_FILES, type FoundOutput } from './outputs';
export { runProgram, type ProgramExit, type RunProgramOptions } from './run-program';
export { inputFileName, stageInputs, type InputManifest, type StagedInput } from './stage-inputs';

/** Name of the output holding the program's stdout and stderr. */
export const LOG_OUTPUT = 'log';
const LOG_FILE = 'log.txt';

/**
 * Output names a program cannot declare (as a file or a directory): the log's name and store key,
 * the curve's, the stage manifest's key (`<outputPrefix>manifest.json`), which the stage runner
 * writes last and would overwrite, and `attempts`, where failed attempts' logs are kept.
 */
export const RESERVED_OUTPUTS: readonly string[] = [LOG_OUTPUT, LOG_FILE, CURVES_OUTPUT, 'curves.jsonl', 'manifest.json', 'attempts'];

/** Program metrics beyond this size (serialized) are dropped: they travel in workflow history. */
const MAX_PROGRAM_METRICS_CHARS = 32 * 1024;

/** Lines of output an error message quotes at most, and characters. */
const ERROR_TAIL_LINES = 30;
const ERROR_TAIL_CHARS = 4000;

/** How a worker runs command stages. Every field is optional. */
export interface CommandStageOptions {
  /** Time a cancelled program has between SIGTERM and SIGKILL. Default 10 s. */
  killGraceMs?: number;
  /** The environment programs inherit (before scrubbing). Default `process.env` when the stage runs. */
  env?: NodeJS.ProcessEnv;
  /** Scrubbed variables programs get anyway. Default: TEMPERED_COMMAND_PASS_ENV of `env`, comma-separated. */
  passEnv?: readonly string[];
  /** Where work directories are created. Default `os.tmpdir()` (TMPDIR): put it on a disk that holds the inputs. */
  workRoot?: string;
  /** Whether programs run in their own PID namespace. Default: TEMPERED_COMMAND_ISOLATION of `env`, else `auto`. */
  isolation?: IsolationMode;
  /** Where the one-time "not isolated" warning goes. Default stderr. */
  warn?: (message: string) => void;
}

/** A command stage implementation with the given worker options. */
export function createCommandStage(options: CommandStageOptions = {}): StageImplementation {
  return async (ctx) => {
    const parentEnv = options.env ?? process.env;
    // Every environment a program might read: this process's as started (/proc/self/environ), as now, and the one given.
    const extra = await storeSecrets(ctx.store);
    const secrets = [...new Set([initialEnvironment(), process.env, parentEnv].flatMap((env) => secretValues(env, { extra })))].sort((a, b) => b.length - a.length);
    try {
      return await runCommandStage(ctx, options, parentEnv, secrets);
    } catch (err) {
      // Whatever the error quotes (a tail of output, a file name, a link's target) is redacted once more here.
      if (err instanceof Error) redactError(err, secrets);
      if (ctx.signal.aborted && !(err instanceof CancelledFailure)) {
        throw new CancelledFailure(`stage "${ctx.input.stage}" cancelled`, [], err instanceof Error ? err : undefined);
      }
      throw err;
    }
  };
}

/** The `command` stage as the worker registers it. */
export const commandStage: StageImplementation = createCommandStage();

async function runCommandStage(ctx: StageContext, options: CommandStageOptions, parentEnv: NodeJS.ProcessEnv, secrets: readonly string[]) {
  const config = optionsOf(ctx.input, 'command');
  const declared = config.outputs ?? [];
  for (const name of declared) {
    if (RESERVED_OUTPUTS.includes(name.replace(/\/$/, ''))) {
      throw new ReservedNameError('output', name, `is reserved (${RESERVED_OUTPUTS.map((r) => JSON.stringify(r)).join(', ')}: the log, the curve, the stage manifest, failed attempts' logs)`, 'give the output another name');
    }
  }
  const cwd = await resolveWorkingDirectory(ctx.input.baseDir, config.cwd);
  const mode = options.isolation ?? parseIsolationMode(parentEnv[ISOLATION_VARIABLE]);
  const isolation = await workerIsolation(mode);
  if (isolation.kind === 'none' && mode === 'required') throw new IsolationUnavailableError(isolation.reason);
  if (isolation.kind === 'none' && mode === 'auto') warnUnisolated(isolation.reason, options.warn);

  // The real path: the outputs directory is later checked to still be this very directory.
  const work = await realpath(await mkdtemp(path.join(options.workRoot ?? os.tmpdir(), 'tempered-command-')));
  try {
    const dirs = { inputs: path.join(work, 'inputs'), outputs: path.join(work, 'outputs') };
    await mkdir(dirs.inputs);
    await mkdir(dirs.outputs);

    ctx.progress({ phase: 'staging inputs' });
    const staged = await stageInputs(ctx.store, ctx.input.inputs, dirs.inputs, {
      signal: ctx.signal,
      onFile: (files, totalFiles) => ctx.progress({ phase: 'staging inputs', files, totalFiles }),
    });

    const env = childEnvironment({
      parent: parentEnv,
      spec: config.env ?? {},
      passEnv: options.passEnv ?? parsePassEnv(parentEnv[PASS_ENV_VARIABLE]),
      tempered: {
        TEMPERED_INPUTS: dirs.inputs,
        TEMPERED_OUTPUTS: dirs.outputs,
        TEMPERED_RUN_ID: ctx.input.runId,
        TEMPERED_STAGE: ctx.input.stage,
        TEMPERED_ATTEMPT: String(ctx.attempt),
        TEMPERED_SEED: String(ctx.input.seed),
      },
      devices: ctx.devices,
    });

    const reported = new ReportedMetrics();
    let lastProgress: Record<string, unknown> | undefined;
    let progressLines = 0;
    const curve = new CurveRecorder();
    if (ctx.signal.aborted) throw new CancelledFailure(`stage "${ctx.input.stage}" cancelled`);
    ctx.progress({ phase: 'running' });
    const exit = await runProgram({
      argv: expandCommand(config.command, dirs),
      cwd,
      env,
      signal: ctx.signal,
      logFile: path.join(work, LOG_FILE),
      killGraceMs: options.killGraceMs ?? 10_000,
      isolationPrefix: isolation.kind === 'pid-namespace' ? isolation.prefix : undefined,
      secrets,
      onMessage(raw) {
        const message = redactMessage(raw, secrets);
        if (!message) return void reported.dropped++;
        if (message.kind === 'progress') {
          progressLines++;
          lastProgress = message.details;
          curve.add(message.details);
          try {
            ctx.progress({ phase: 'running', ...message.details });
          } catch (err) {
            // Cancelled: this runs in a stream callback, where a throw would crash the worker;
            // the signal already stops the program, and the cancelled exit is reported below.
            if (!(err instanceof CancelledFailure)) throw err;
          }
        } else if (message.kind === 'metrics') {
          reported.merge(message.values);
        }
      },
    });
    if (exit.cancelled) throw new CancelledFailure(`stage "${ctx.input.stage}" cancelled; its program was stopped (${exit.signal ?? `exit code ${exit.exitCode}`})`);

    const logFile = { name: LOG_FILE, path: path.join(work, LOG_FILE), id: exit.logFileId };
    if (exit.exitCode !== 0) {
      throw new ProgramFailedError(config.command, exit.exitCode, exit.signal, quotedTail(exit), await saveFailedLog(ctx, logFile));
    }
    const redact = (text: string) => redactSecrets(text, secrets);
    const { found, missing } = await findOutputs(dirs.outputs, path.join(work, 'outputs'), declared, redact);
    if (missing.length > 0) throw new MissingOutputError(missing, (await listProduced(dirs.outputs)).map(redact), await saveFailedLog(ctx, logFile));

    const outputs: Record<string, ArtifactRef> = {};
    let outputBytes = 0;
    for (const output of found) {
      for (const file of output.files) {
        ctx.progress({ phase: 'uploading outputs', output: file.name });
        outputs[file.name] = await uploadOutputFile(ctx.store, ctx.outputKey(file.name), file, mediaTypeOf(file.name));
        outputBytes += outputs[file.name].bytes;
      }
    }
    outputs[LOG_OUTPUT] = await uploadOutputFile(ctx.store, ctx.outputKey(LOG_FILE), logFile, 'text/plain');
    if (curve.points.length > 0) outputs[CURVES_OUTPUT] = await writeCurves(ctx.store, ctx.outputKey('curves.jsonl'), curve.points);

    const metrics: Metrics = {
      ...reported.values,
      exitCode: exit.exitCode,
      commandTimeMs: exit.durationMs,
      inputFiles: staged.length,
      inputBytes: staged.reduce((sum, s) => sum + s.bytes, 0),
      outputBytes,
      outputFiles: found.reduce((sum, o) => sum + o.files.length, 0),
      logBytes: exit.logBytes,
      isolation: isolation.kind,
      progressLines,
      ...(curve.points.length > 0 ? { curve: curveSummary(curve.points) } : {}),
      ...(lastProgress ? { lastProgress } : {}),
      ...(reported.dropped > 0 ? { droppedMetricsLines: reported.dropped } : {}),
    };
    return { outputs, metrics };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `tempered:metrics` values merged line by line, bounded in size. */
class ReportedMetrics {
  values: Record<string, unknown> = {};
  dropped = 0;

  merge(values: Record<string, unknown>): void {
    const merged = { ...this.values, ...values };
    if (JSON.stringify(merged).length > MAX_PROGRAM_METRICS_CHARS) this.dropped++;
    else this.values = merged;
  }
}

async function resolveWorkingDirectory(baseDir: string, cwd: string | undefined): Promise<string> {
  const resolved = path.resolve(baseDir, cwd ?? '.');
  const found = await stat(resolved).catch(() => undefined);
  if (!found) throw new WorkingDirectoryError(cwd ?? '.', resolved, 'does not exist on this worker');
  if (!found.isDirectory()) throw new WorkingDirectoryError(cwd ?? '.', resolved, 'is not a directory');
  return resolved;
}

/** What the program left in its outputs directory (top level, directories with a `/`). */
async function listProduced(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.map((e) => (e.isDirectory() ? `${e.name}/` : e.name)).sort().slice(0, 50);
}

/**
 * Stores a failed attempt's log under `attempts/<n>/` (so a later attempt does not overwrite it)
 * and returns its uri for the error message; a failure to store it must not hide the real error.
 */
async function saveFailedLog(ctx: StageContext, logFile: ListedFile): Promise<string> {
  try {
    const ref = await uploadOutputFile(ctx.store, ctx.outputKey(`attempts/${ctx.attempt}/${LOG_FILE}`), logFile, 'text/plain');
    return ref.uri;
  } catch (err) {
    return `not stored (${(err as Error).message})`;
  }
}

/**
 * The environment this process was started with, as `/proc/self/environ` still shows it (and an
 * unisolated program could read it): variables deleted from `process.env` since are in it.
 */
function initialEnvironment(): NodeJS.ProcessEnv {
  if (process.platform !== 'linux') return {};
  try {
    const env: NodeJS.ProcessEnv = {};
    for (const entry of readFileSync('/proc/self/environ', 'utf8').split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch {
    return {};
  }
}

/** The store's own secrets (an S3 store's secret key and session token, from whatever provider resolved them), to redact too. */
async function storeSecrets(store: ArtifactStore): Promise<string[]> {
  if (!(store instanceof S3ArtifactStore)) return [];
  try {
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5000).unref());
    const credentials = await Promise.race([store.client.config.credentials(), timeout]);
    return credentials ? [credentials.secretAccessKey, credentials.sessionToken].filter((v): v is string => !!v) : [];
  } catch {
    return []; // no credentials: the store's first request says so
  }
}

/** A protocol message with secret values redacted (also JSON-escaped ones); undefined if it no longer parses. */
function redactMessage(message: ProgramMessage, secrets: readonly string[]): ProgramMessage | undefined {
  const json = JSON.stringify(message);
  const redacted = redactSecrets(json, secrets);
  if (redacted === json) return message;
  try {
    return JSON.parse(redacted) as ProgramMessage;
  } catch {
    return undefined;
  }
}

/** Redacts an error's message and stack in place, and its cause's. */
function redactError(err: Error, secrets: readonly string[], depth = 0): void {
  err.message = redactSecrets(err.message, secrets);
  if (err.stack) err.stack = redactSecrets(err.stack, secrets);
  if (err.cause instanceof Error && depth < 5) redactError(err.cause, secrets, depth + 1);
}

/** The output an error message quotes: stderr's last lines, or stdout's when stderr was silent. */
function quotedTail(exit: ProgramExit): string[] {
  const lines = (exit.stderrTail.length > 0 ? exit.stderrTail : exit.stdoutTail).slice(-ERROR_TAIL_LINES);
  let chars = 0;
  let from = lines.length;
  while (from > 0 && chars + lines[from - 1].length + 1 <= ERROR_TAIL_CHARS) chars += lines[--from].length + 1;
  return lines.slice(from);
}

const MEDIA_TYPE_BY_EXTENSION: Record<string, string> = {
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.txt': 'text/plain',
  '.csv': 'text/csv',
  '.md': 'text/markdown',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.zip': 'application/zip',
};

/** Media type of an output file by its extension; `application/octet-stream` for the rest. */
export function mediaTypeOf(fileName: string): string {
  return MEDIA_TYPE_BY_EXTENSION[path.extname(fileName).toLowerCase()] ?? 'application/octet-stream';
}
