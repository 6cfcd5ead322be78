import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import {
  createCommandStage,
  MissingOutputError,
  ProgramFailedError,
  ProgramNotExecutableError,
  ProgramNotFoundError,
  ReservedNameError,
  WorkingDirectoryError,
} from '../../../activities/command';
import type { StageContext } from '../../../activities/stage-runner';
import { FileArtifactStore } from '../../../activities/store';
import { CommandOptionsSchema } from '../../../pipelines/stage-types';
import type { StageResult } from '../../../workflows/types';

// The command stage against a file store, with a fake StageContext; the programs are small Node
// scripts, so these tests need nothing but the Node that runs them.

const NODE = process.execPath;
const PREFIX = 'runs/p/run-1/train/';

let root: string;
let store: FileArtifactStore;
let specDir: string;
let workRoot: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tempered-command-test-')));
  store = new FileArtifactStore(path.join(root, 'store'));
  specDir = path.join(root, 'spec');
  workRoot = path.join(root, 'work');
  await mkdir(path.join(specDir, 'scripts'), { recursive: true });
  await mkdir(workRoot);
});
afterEach(async () => {
  // A failed cancellation test must not leave its programs running.
  for (const pid of startedPids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await rm(root, { recursive: true, force: true });
});
const startedPids: number[] = [];

/** The stage as a worker with credentials in its environment would run it; work dirs under `workRoot`. */
const stage = (ctx: StageContext) =>
  createCommandStage({ workRoot, killGraceMs: 500, env: { ...process.env, AWS_SECRET_ACCESS_KEY: 'worker-secret', TEMPERED_STORE: 's3://b' } })(ctx);

/** A fake context; `abort()` cancels the attempt the way a cancelled activity would. */
function context(config: Record<string, unknown>, options: { inputs?: Record<string, StageResult>; attempt?: number } = {}) {
  const controller = new AbortController();
  const progress: Array<Record<string, unknown>> = [];
  const ctx: StageContext = {
    input: {
      runId: 'run-1',
      pipeline: 'p',
      stage: 'train',
      type: 'command',
      config: CommandOptionsSchema.parse(config),
      inputs: options.inputs ?? {},
      dataInputs: Object.keys(options.inputs ?? {}),
      outputPrefix: PREFIX,
      baseDir: specDir,
      seed: 7,
      cacheKey: 'k',
      cache: false,
    },
    store,
    signal: controller.signal,
    attempt: options.attempt ?? 1,
    progress: (details) => progress.push(details),
    outputKey: (name) => `${PREFIX}${name}`,
  };
  return { ctx, progress, abort: () => controller.abort() };
}

async function script(name: string, source: string): Promise<string> {
  await writeFile(path.join(specDir, 'scripts', name), source);
  return name;
}

async function splitInput(): Promise<Record<string, StageResult>> {
  const train = await store.put('runs/p/run-1/split/train.jsonl', '{"id":"a","text":"hello","label":"ham"}\n{"id":"b","text":"win","label":"spam"}\n', 'application/jsonl');
  return { split: { outputs: { train }, metrics: {}, manifest: train } };
}

async function expectWorkDirsRemoved(): Promise<void> {
  expect(await readdir(workRoot)).toEqual([]);
}

describe('a program that succeeds', () => {
  const trainer = `
    const fs = require('fs'), path = require('path');
    const manifest = JSON.parse(fs.readFileSync(path.join(process.env.TEMPERED_INPUTS, 'manifest.json'), 'utf8'));
    const train = manifest.inputs.find((i) => i.output === 'train');
    const examples = fs.readFileSync(train.path, 'utf8').trim().split('\\n').length;
    console.log('loaded ' + examples + ' examples');
    for (let step = 1; step <= 3; step++) console.log(JSON.stringify({ tempered: 'progress', step, totalSteps: 3, loss: 1 / step }));
    console.error('a warning on stderr');
    fs.writeFileSync(path.join(process.argv[2], 'model.json'), JSON.stringify({ examples }));
    fs.writeFileSync(path.join(process.env.TEMPERED_OUTPUTS, 'seen.json'), JSON.stringify({ cwd: process.cwd(), argv: process.argv.slice(2), env: process.env, manifest }));
    fs.writeFileSync(path.join(process.env.TEMPERED_OUTPUTS, 'undeclared.bin'), 'ignored');
    console.log(JSON.stringify({ tempered: 'metrics', accuracy: 0.5, exitCode: 99 }));
    console.log(JSON.stringify({ tempered: 'metrics', accuracy: 0.9, f1: 0.8 }));
  `;

  test('gets its inputs, environment and arguments; its outputs, metrics and log are stored', async () => {
    await script('trainer.js', trainer);
    const inputs = await splitInput();
    const { ctx, progress } = context(
      {
        command: [NODE, 'trainer.js', '{outputs}', '--data={inputs}/split/train.jsonl'],
        cwd: 'scripts',
        outputs: ['model.json', 'seen.json'],
        env: { LEARNING_RATE: '0.1' },
      },
      { inputs, attempt: 2 },
    );
    const { outputs, metrics } = await stage(ctx);

    expect(Object.keys(outputs).sort()).toEqual(['log', 'model.json', 'seen.json']);
    const model = await store.readBuffer(outputs['model.json']);
    expect(JSON.parse(model.toString())).toEqual({ examples: 2 });
    expect(outputs['model.json']).toMatchObject({
      uri: store.uriFor(`${PREFIX}model.json`),
      sha256: createHash('sha256').update(model).digest('hex'),
      bytes: model.length,
      mediaType: 'application/json',
    });

    const seen = JSON.parse((await store.readBuffer(outputs['seen.json'])).toString()) as {
      cwd: string;
      argv: string[];
      env: Record<string, string>;
      manifest: { inputs: Array<Record<string, unknown>> };
    };
    expect(seen.cwd).toBe(path.join(specDir, 'scripts'));
    const inputsDir = seen.env.TEMPERED_INPUTS;
    expect(path.dirname(path.dirname(inputsDir))).toBe(workRoot);
    expect(seen.argv).toEqual([seen.env.TEMPERED_OUTPUTS, `--data=${inputsDir}/split/train.jsonl`]);
    expect(seen.env).toMatchObject({ TEMPERED_RUN_ID: 'run-1', TEMPERED_STAGE: 'train', TEMPERED_ATTEMPT: '2', TEMPERED_SEED: '7', LEARNING_RATE: '0.1', PYTHONUNBUFFERED: '1' });
    expect(seen.env).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
    expect(seen.env).not.toHaveProperty('TEMPERED_STORE');
    expect(seen.manifest.inputs).toEqual([
      expect.objectContaining({ stage: 'split', output: 'train', path: `${inputsDir}/split/train.jsonl`, sha256: inputs.split.outputs.train.sha256 }),
    ]);

    expect(metrics).toMatchObject({
      accuracy: 0.9,
      f1: 0.8,
      exitCode: 0, // Tempered's own metrics win over a program's
      inputFiles: 1,
      progressLines: 3,
      lastProgress: { step: 3, totalSteps: 3, loss: 1 / 3 },
    });
    expect(metrics.commandTimeMs).toEqual(expect.any(Number));
    expect(progress).toContainEqual({ phase: 'running', step: 3, totalSteps: 3, loss: 1 / 3 });
    expect(progress.findIndex((p) => p.phase === 'staging inputs')).toBeLessThan(progress.findIndex((p) => p.phase === 'running'));

    const log = (await store.readBuffer(outputs.log)).toString();
    expect(outputs.log.uri).toBe(store.uriFor(`${PREFIX}log.txt`));
    expect(log).toContain('loaded 2 examples\n');
    expect(log).toContain('a warning on stderr\n');
    expect(log).toContain('{"tempered":"progress","step":1,"totalSteps":3,"loss":1}\n');
    expect(metrics.logBytes).toBe(outputs.log.bytes);
    await expectWorkDirsRemoved();
  });

  test('output much larger than memory limits of a tail streams through to the log', async () => {
    await script('chatty.js', `for (let i = 0; i < 20000; i++) console.log('line ' + i + ' ' + 'x'.repeat(100));`);
    const { ctx } = context({ command: [NODE, 'scripts/chatty.js'] });
    const { outputs } = await stage(ctx);
    const log = (await store.readBuffer(outputs.log)).toString().split('\n');
    expect(log).toHaveLength(20001);
    expect(log[19999]).toMatch(/^line 19999 x+$/);
  });
});

describe('a program that fails', () => {
  test('a non-zero exit is retryable and quotes the exit code and the end of stderr', async () => {
    await script('crash.js', `
      console.log('training...');
      for (let i = 0; i < 100; i++) console.error('noise ' + i);
      console.error('Traceback (most recent call last):');
      console.error('ValueError: learning rate must be positive');
      process.exit(3);
    `);
    const { ctx } = context({ command: [NODE, 'crash.js'], cwd: 'scripts', outputs: ['model.json'] }, { attempt: 2 });
    const err = (await stage(ctx).catch((e: unknown) => e)) as ProgramFailedError;
    expect(err).toBeInstanceOf(ProgramFailedError);
    expect(err.nonRetryable).toBe(false);
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/exited with code 3/);
    expect(err.message).toMatch(/Traceback \(most recent call last\):\nValueError: learning rate must be positive\n/);
    expect(err.message).not.toMatch(/noise 50\n/); // a bounded tail, not the whole output
    // the attempt's full log is stored where a later attempt does not overwrite it
    const logKey = `${PREFIX}attempts/2/log.txt`;
    expect(err.message).toContain(store.uriFor(logKey));
    expect(readFileSync(path.join(store.dir, logKey), 'utf8')).toMatch(/^training\.\.\.\nnoise 0\n/);
    await expectWorkDirsRemoved();
  });

  test('a program killed by a signal is retryable', async () => {
    await script('killed.js', `process.kill(process.pid, 'SIGKILL');`);
    const { ctx } = context({ command: [NODE, 'scripts/killed.js'] });
    const err = (await stage(ctx).catch((e: unknown) => e)) as ProgramFailedError;
    expect(err).toBeInstanceOf(ProgramFailedError);
    expect(err.signal).toBe('SIGKILL');
    expect(err.message).toMatch(/was killed by SIGKILL without output/);
    expect(err.nonRetryable).toBe(false);
  });

  test('exit 0 without a declared output is non-retryable, naming it and what was written', async () => {
    await script('forgetful.js', `
      const fs = require('fs'), path = require('path');
      fs.writeFileSync(path.join(process.env.TEMPERED_OUTPUTS, 'modle.json'), '{}');
      fs.mkdirSync(path.join(process.env.TEMPERED_OUTPUTS, 'checkpoints'));
    `);
    const { ctx } = context({ command: [NODE, 'scripts/forgetful.js'], outputs: ['model.json', 'modle.json'] });
    const err = (await stage(ctx).catch((e: unknown) => e)) as MissingOutputError;
    expect(err).toBeInstanceOf(MissingOutputError);
    expect(err.nonRetryable).toBe(true);
    expect(err.missing).toEqual(['model.json']);
    expect(err.message).toMatch(/did not write declared output "model.json" .* it wrote "checkpoints\/", "modle.json"/);
    expect(await store.list(PREFIX)).toEqual([`${PREFIX}attempts/1/log.txt`]); // no partial outputs
    await expectWorkDirsRemoved();
  });
});

describe('a program that cannot start', () => {
  test('a missing program is non-retryable', async () => {
    const { ctx } = context({ command: ['tempered-no-such-program', '--help'] });
    const err = (await stage(ctx).catch((e: unknown) => e)) as ProgramNotFoundError;
    expect(err).toBeInstanceOf(ProgramNotFoundError);
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/"tempered-no-such-program" was not found on this worker/);
    await expectWorkDirsRemoved();
  });

  test('a script without execute permission is non-retryable and says how to run it', async () => {
    await script('train.sh', '#!/bin/sh\necho hi\n');
    await chmod(path.join(specDir, 'scripts', 'train.sh'), 0o644);
    const { ctx } = context({ command: ['./train.sh'], cwd: 'scripts' });
    const err = (await stage(ctx).catch((e: unknown) => e)) as ProgramNotExecutableError;
    expect(err).toBeInstanceOf(ProgramNotExecutableError);
    expect(err.nonRetryable).toBe(true);
  });

  test('a missing cwd is non-retryable and names the resolved directory', async () => {
    const { ctx } = context({ command: [NODE, '-e', ''], cwd: 'no-such-dir' });
    const err = (await stage(ctx).catch((e: unknown) => e)) as WorkingDirectoryError;
    expect(err).toBeInstanceOf(WorkingDirectoryError);
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(path.join(specDir, 'no-such-dir'));
  });

  test.each(['log', 'log.txt', 'manifest.json'])('declaring the reserved output %s is non-retryable', async (name) => {
    const { ctx } = context({ command: [NODE, '-e', ''], outputs: [name] });
    await expect(stage(ctx)).rejects.toThrow(ReservedNameError);
  });
});

describe('cancellation', () => {
  /** Starts a child of its own (as data-loader workers are), records both pids, then waits. */
  const sleeper = (ignoreTerm: boolean) => `
    const { spawn } = require('child_process'), fs = require('fs'), path = require('path');
    ${ignoreTerm ? "process.on('SIGTERM', () => console.log('ignoring SIGTERM'));" : ''}
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    fs.writeFileSync(path.join(process.env.PID_DIR, 'pids'), JSON.stringify([process.pid, child.pid]));
    console.log(JSON.stringify({ tempered: 'progress', step: 1, totalSteps: 1000 }));
    setInterval(() => {}, 1000);
  `;

  async function startAndCancel(ignoreTerm: boolean) {
    await script('sleeper.js', sleeper(ignoreTerm));
    const { ctx, abort, progress } = context({ command: [NODE, 'scripts/sleeper.js'], env: { PID_DIR: root } });
    const running = stage(ctx);
    const pids = await waitFor(async () => JSON.parse(await readFile(path.join(root, 'pids'), 'utf8')) as number[]);
    startedPids.push(...pids);
    await waitFor(async () => progress.some((p) => p.step === 1) || undefined);
    expect(pids.every(isAlive)).toBe(true);
    const cancelledAt = Date.now();
    abort();
    const err = await Promise.race([running.catch((e: unknown) => e), timeout(5000, 'the stage did not end after cancellation')]);
    return { err, pids, elapsedMs: Date.now() - cancelledAt };
  }

  test('stops the program and the processes it started; the stage fails as cancelled', async () => {
    const { err, pids, elapsedMs } = await startAndCancel(false);
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(elapsedMs).toBeLessThan(500); // SIGTERM was enough, no waiting for the grace period
    await waitFor(async () => pids.every((pid) => !isAlive(pid)) || undefined);
    await expectWorkDirsRemoved();
  });

  test('a program that ignores SIGTERM is killed after the grace period', async () => {
    const { err, pids, elapsedMs } = await startAndCancel(true);
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(elapsedMs).toBeGreaterThanOrEqual(450);
    await waitFor(async () => pids.every((pid) => !isAlive(pid)) || undefined);
  });

  test('a stage cancelled before its program starts does not start it', async () => {
    const { ctx, abort } = context({ command: [NODE, '-e', 'require("fs").writeFileSync(process.env.MARK, "ran")'], env: { MARK: path.join(root, 'mark') } });
    abort();
    await expect(stage(ctx)).rejects.toBeInstanceOf(CancelledFailure);
    await expect(readFile(path.join(root, 'mark'))).rejects.toThrow(/ENOENT/);
  });
});

/** Alive and not a zombie (an orphan's zombie may linger where PID 1 does not reap). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return process.platform !== 'linux';
  }
}

function timeout(ms: number, message: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}
