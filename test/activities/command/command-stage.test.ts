import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import {
  createCommandStage,
  EmptyOutputDirectoryError,
  OutputEscapesError,
  OutputNameError,
  OutputSymlinkError,
  OutputTypeError,
  probeIsolation,
  type CommandStageOptions,
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
const WORKER_SECRET = 'worker-secret-Zq81x';
const stage = (ctx: StageContext, options: CommandStageOptions = {}) =>
  createCommandStage({ workRoot, killGraceMs: 500, env: { ...process.env, AWS_SECRET_ACCESS_KEY: WORKER_SECRET, TEMPERED_STORE: 's3://b' }, ...options })(ctx);

/** A fake context; `abort()` cancels the attempt the way a cancelled activity would. */
function context(config: Record<string, unknown>, options: { inputs?: Record<string, StageResult>; attempt?: number; unvalidated?: boolean } = {}) {
  const controller = new AbortController();
  const progress: Array<Record<string, unknown>> = [];
  const ctx: StageContext = {
    input: {
      runId: 'run-1',
      pipeline: 'p',
      stage: 'train',
      type: 'command',
      // `unvalidated`: what a spec that bypassed validation would bring, to test the stage's own guards.
      config: options.unvalidated ? { env: {}, outputs: [], ...config } : CommandOptionsSchema.parse(config),
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

    expect(Object.keys(outputs).sort()).toEqual(['curves', 'log', 'model.json', 'seen.json']);
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

  test.each(['log', 'log.txt', 'manifest.json', 'curves/', 'attempts/'])('declaring the reserved output %s is non-retryable', async (name) => {
    const { ctx } = context({ command: [NODE, '-e', ''], outputs: [name] }, { unvalidated: true });
    await expect(stage(ctx)).rejects.toThrow(ReservedNameError);
  });
});

describe.each(['auto', 'off'] as const)('cancellation (isolation %s)', (isolation) => {
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
    const running = stage(ctx, { isolation });
    // The pids the program wrote are its own namespace's; this process finds them by their environment.
    const inner = await waitFor(async () => JSON.parse(await readFile(path.join(root, 'pids'), 'utf8')) as number[]);
    const pids = processesWithEnv(`PID_DIR=${root}`);
    expect(pids.length).toBeGreaterThanOrEqual(inner.length);
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

describe("the worker's secrets", () => {
  // The program is handed the worker's secret (as TEMPERED_COMMAND_PASS_ENV would) and prints it
  // every way it can; none of it may reach what Tempered keeps.
  const leaker = `
    const fs = require('fs'), path = require('path');
    const s = process.env.AWS_SECRET_ACCESS_KEY;
    const escaped = [...s].map((c) => '\\\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('');
    console.log('env says ' + s);
    console.error('stderr says ' + s);
    console.log(JSON.stringify({ tempered: 'progress', step: 1, totalSteps: 2, note: s, loss: 1 }));
    console.log('{"tempered":"metrics","leak":"' + escaped + '","accuracy":0.5}');
    fs.writeFileSync(path.join(process.env.TEMPERED_OUTPUTS, 'model.json'), '{}');
    process.stdout.write('split across writes: ' + s.slice(0, 7));
    setTimeout(() => {
      process.stdout.write(s.slice(7) + ' end\\n');
      if (process.argv[2] === 'crash') { console.error('Traceback: bad key ' + s); process.exit(2); }
    }, 100);
  `;

  test('are redacted from the log, progress, metrics and curve', async () => {
    await script('leaker.js', leaker);
    const { ctx, progress } = context({ command: [NODE, 'scripts/leaker.js'], outputs: ['model.json'] });
    const { outputs, metrics } = await stage(ctx, { passEnv: ['AWS_SECRET_ACCESS_KEY'] });
    const log = (await store.readBuffer(outputs.log)).toString();
    expect(log).toContain('env says [redacted]\n');
    expect(log).toContain('stderr says [redacted]\n');
    expect(log).toContain('split across writes: [redacted] end\n');
    expect(progress).toContainEqual(expect.objectContaining({ step: 1, note: '[redacted]' }));
    expect(metrics).toMatchObject({ leak: '[redacted]', accuracy: 0.5, lastProgress: { note: '[redacted]' } });
    const kept = [log, JSON.stringify(progress), JSON.stringify(metrics), (await store.readBuffer(outputs.curves)).toString()].join('\n');
    expect(kept).not.toContain(WORKER_SECRET);
  });

  test("are redacted from a failure's message and its stored log", async () => {
    await script('leaker.js', leaker);
    const { ctx } = context({ command: [NODE, 'scripts/leaker.js', 'crash'] });
    const err = (await stage(ctx, { passEnv: ['AWS_SECRET_ACCESS_KEY'] }).catch((e: unknown) => e)) as ProgramFailedError;
    expect(err).toBeInstanceOf(ProgramFailedError);
    expect(err.message).toContain('Traceback: bad key [redacted]');
    expect(`${err.message}${err.stack}${err.tail.join('\n')}`).not.toContain(WORKER_SECRET);
    const stored = readFileSync(path.join(store.dir, `${PREFIX}attempts/1/log.txt`), 'utf8');
    expect(stored).toContain('stderr says [redacted]');
    expect(stored).not.toContain(WORKER_SECRET);
  });

  test('are redacted from file names an error lists, and refused in output names', async () => {
    await script('names.js', `
      const fs = require('fs'), path = require('path'), out = process.env.TEMPERED_OUTPUTS;
      fs.mkdirSync(path.join(out, 'ckpt'));
      fs.writeFileSync(path.join(out, 'ckpt', 'key-' + process.env.AWS_SECRET_ACCESS_KEY), 'x');
      fs.writeFileSync(path.join(out, process.env.AWS_SECRET_ACCESS_KEY + '.txt'), 'x');
    `);
    const missing = context({ command: [NODE, 'scripts/names.js'], outputs: ['model.json'] });
    const err = (await stage(missing.ctx, { passEnv: ['AWS_SECRET_ACCESS_KEY'] }).catch((e: unknown) => e)) as MissingOutputError;
    expect(err).toBeInstanceOf(MissingOutputError);
    expect(err.message).toContain('"[redacted].txt"');
    expect(err.message).not.toContain(WORKER_SECRET);

    const named = context({ command: [NODE, 'scripts/names.js'], outputs: ['ckpt/'] });
    const refused = (await stage(named.ctx, { passEnv: ['AWS_SECRET_ACCESS_KEY'] }).catch((e: unknown) => e)) as OutputNameError;
    expect(refused).toBeInstanceOf(OutputNameError);
    expect(refused.message).toMatch(/output "ckpt\/key-\[redacted\]" has a secret value of the worker in its name/);
    expect(await store.list(`${PREFIX}ckpt`)).toEqual([]);
  });
});

describe("the program's view of the worker", () => {
  // What a program sees of its parent: in a PID namespace, INIT (with the program's own scrubbed
  // environment); without one, the worker itself, whose /proc/<pid>/environ holds every secret.
  const peek = `
    const fs = require('fs'), { spawnSync } = require('child_process');
    let parentEnv;
    try { parentEnv = fs.readFileSync('/proc/' + process.ppid + '/environ', 'utf8'); } catch (e) { parentEnv = e.code; }
    const cmdlines = fs.readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).map((p) => { try { return fs.readFileSync('/proc/' + p + '/cmdline', 'utf8'); } catch { return ''; } });
    const umount = spawnSync('umount', ['/proc']).status;
    fs.writeFileSync(process.env.TEMPERED_OUTPUTS + '/seen.json', JSON.stringify({ ppid: process.ppid, parentEnv, cmdlines, umount }));
  `;
  type Seen = { ppid: number; parentEnv: string; cmdlines: string[]; umount: number | null };

  async function peekFrom(isolation: 'auto' | 'off') {
    await script('peek.js', peek);
    const { ctx } = context({ command: [NODE, 'scripts/peek.js'], outputs: ['seen.json'] });
    const { outputs, metrics } = await stage(ctx, { isolation });
    return { seen: JSON.parse((await store.readBuffer(outputs['seen.json'])).toString()) as Seen, metrics };
  }
  const myEnviron = () => readFileSync('/proc/self/environ', 'utf8');
  const myCmdline = () => readFileSync('/proc/self/cmdline', 'utf8');

  test('isolated, the worker is not in its /proc and it cannot uncover it', async () => {
    const isolation = await probeIsolation();
    if (isolation.kind === 'none') {
      console.warn(`skipped: this machine cannot isolate programs (${isolation.reason})`);
      return;
    }
    const { seen, metrics } = await peekFrom('auto');
    expect(metrics.isolation).toBe('pid-namespace');
    expect(seen.ppid).toBe(1);
    expect(seen.parentEnv.split('\0')).toContain('TEMPERED_STAGE=train'); // INIT's: the program's own
    expect(seen.parentEnv).not.toContain(WORKER_SECRET);
    expect(seen.parentEnv).not.toBe(myEnviron());
    expect(seen.cmdlines).not.toContain(myCmdline());
    expect(seen.umount).not.toBe(0); // no capabilities: the worker's /proc stays covered
  });

  test('unisolated (isolation off), its parent is the worker: what the namespace prevents', async () => {
    const { seen, metrics } = await peekFrom('off');
    expect(metrics.isolation).toBe('none');
    expect(seen.ppid).toBe(process.pid);
    expect(seen.parentEnv).toBe(myEnviron());
  });
});

describe('directory outputs', () => {
  const checkpointer = `
    const fs = require('fs'), path = require('path'), out = process.env.TEMPERED_OUTPUTS;
    fs.mkdirSync(path.join(out, 'ckpt', 'step-10'), { recursive: true });
    fs.writeFileSync(path.join(out, 'ckpt', 'config.json'), '{"layers":2}');
    fs.writeFileSync(path.join(out, 'ckpt', 'step-10', 'weights.bin'), Buffer.from([0, 1, 2, 255]));
    fs.writeFileSync(path.join(out, 'model.json'), '{}');
  `;

  test('are uploaded file by file, sha256 each, and staged as the directory for a downstream command stage', async () => {
    await script('ckpt.js', checkpointer);
    const { ctx } = context({ command: [NODE, 'scripts/ckpt.js'], outputs: ['ckpt/', 'model.json'] });
    const { outputs, metrics } = await stage(ctx);
    expect(Object.keys(outputs).sort()).toEqual(['ckpt/config.json', 'ckpt/step-10/weights.bin', 'log', 'model.json']);
    const weights = outputs['ckpt/step-10/weights.bin'];
    expect(weights).toMatchObject({ uri: store.uriFor(`${PREFIX}ckpt/step-10/weights.bin`), bytes: 4, sha256: createHash('sha256').update(Buffer.from([0, 1, 2, 255])).digest('hex') });
    expect(metrics).toMatchObject({ outputFiles: 3, outputBytes: 12 + 4 + 2 });

    // Downstream, the directory is back where a program expects it.
    await script('resume.js', `
      const fs = require('fs'), path = require('path');
      const ckpt = path.join(process.env.TEMPERED_INPUTS, 'train', 'ckpt');
      const manifest = JSON.parse(fs.readFileSync(path.join(process.env.TEMPERED_INPUTS, 'manifest.json'), 'utf8'));
      fs.writeFileSync(path.join(process.env.TEMPERED_OUTPUTS, 'seen.json'), JSON.stringify({
        files: fs.readdirSync(ckpt, { recursive: true }).sort(),
        weights: [...fs.readFileSync(path.join(ckpt, 'step-10', 'weights.bin'))],
        directories: manifest.inputs.map((i) => i.directory ?? null),
      }));
    `);
    const downstream = context({ command: [NODE, 'scripts/resume.js'], outputs: ['seen.json'] }, { inputs: { train: { outputs, metrics, manifest: outputs.log } } });
    const result = await stage(downstream.ctx);
    const seen = JSON.parse((await store.readBuffer(result.outputs['seen.json'])).toString()) as { files: string[]; weights: number[]; directories: Array<string | null> };
    expect(seen.files).toEqual(['config.json', 'step-10', path.join('step-10', 'weights.bin')]);
    expect(seen.weights).toEqual([0, 1, 2, 255]);
    expect(seen.directories.filter((d) => d !== null)).toHaveLength(2);
  });

  test('a declared directory that is missing fails, naming it', async () => {
    const { ctx } = context({ command: [NODE, '-e', 'require("fs").writeFileSync(process.env.TEMPERED_OUTPUTS + "/model.json", "{}")'], outputs: ['ckpt/', 'model.json'] });
    const err = (await stage(ctx).catch((e: unknown) => e)) as MissingOutputError;
    expect(err).toBeInstanceOf(MissingOutputError);
    expect(err.missing).toEqual(['ckpt/']);
    expect(err.message).toMatch(/did not write declared output "ckpt\/"/);
  });

  test('an empty declared directory fails rather than vanishing', async () => {
    const { ctx } = context({ command: [NODE, '-e', 'require("fs").mkdirSync(process.env.TEMPERED_OUTPUTS + "/ckpt/empty", { recursive: true })'], outputs: ['ckpt/'] });
    const err = (await stage(ctx).catch((e: unknown) => e)) as EmptyOutputDirectoryError;
    expect(err).toBeInstanceOf(EmptyOutputDirectoryError);
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/"ckpt\/" holds no file/);
  });

  test('a directory declared as a file, or a file declared as a directory, fails saying how to declare it', async () => {
    await script('ckpt.js', checkpointer);
    const asFile = context({ command: [NODE, 'scripts/ckpt.js'], outputs: ['ckpt'] });
    await expect(stage(asFile.ctx)).rejects.toThrow(/declared output "ckpt" is a directory; declare it as "ckpt\/"/);
    const asDir = context({ command: [NODE, 'scripts/ckpt.js'], outputs: ['model.json/'] });
    await expect(stage(asDir.ctx)).rejects.toThrow(OutputTypeError);
    expect(await store.list(`${PREFIX}ckpt`)).toEqual([]);
  });
});

describe('links in outputs', () => {
  /** A file outside the work dir the program must not get into the store. */
  async function privateFile(): Promise<string> {
    const file = path.join(root, 'servers.json');
    await writeFile(file, '{"secretAccessKey":"local-minio-secret"}', { mode: 0o600 });
    return file;
  }
  const linker = (body: string) => `
    const fs = require('fs'), path = require('path'), out = process.env.TEMPERED_OUTPUTS, target = process.env.TARGET;
    ${body}
  `;
  async function failure(body: string, outputs: string[]) {
    await script('linker.js', linker(body));
    const { ctx } = context({ command: [NODE, 'scripts/linker.js'], outputs, env: { TARGET: await privateFile() } });
    const err = (await stage(ctx).catch((e: unknown) => e)) as Error & { nonRetryable?: boolean };
    // Nothing of the linked file reached the store.
    for (const key of await store.list('')) expect(readFileSync(path.join(store.dir, key), 'utf8')).not.toContain('local-minio-secret');
    await expectWorkDirsRemoved();
    return err;
  }

  test('a declared output that is a link is refused, naming where it points', async () => {
    const err = await failure(`fs.symlinkSync(target, path.join(out, 'model.json'));`, ['model.json']);
    expect(err).toBeInstanceOf(OutputSymlinkError);
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(`declared output "model.json" is a symbolic link to "${path.join(root, 'servers.json')}"`);
  });

  test('a link inside a declared directory is refused, to a file or to a directory', async () => {
    const toFile = await failure(`fs.mkdirSync(path.join(out, 'ckpt')); fs.writeFileSync(path.join(out, 'ckpt', 'a.bin'), 'a'); fs.symlinkSync('/etc/passwd', path.join(out, 'ckpt', 'latest'));`, ['ckpt/']);
    expect(toFile).toBeInstanceOf(OutputSymlinkError);
    expect(toFile.message).toMatch(/"ckpt\/" \("ckpt\/latest" inside it\) is a symbolic link to "\/etc\/passwd"/);
    const toDir = await failure(`fs.mkdirSync(path.join(out, 'ckpt')); fs.symlinkSync(path.dirname(target), path.join(out, 'ckpt', 'sub'));`, ['ckpt/']);
    expect(toDir).toBeInstanceOf(OutputSymlinkError);
  });

  test('an outputs directory replaced by a link to elsewhere is refused', async () => {
    const err = await failure(
      `const elsewhere = path.join(path.dirname(target), 'elsewhere'); fs.mkdirSync(elsewhere); fs.copyFileSync(target, path.join(elsewhere, 'model.json'));
       fs.rmSync(out, { recursive: true }); fs.symlinkSync(elsewhere, out);`,
      ['model.json'],
    );
    expect(err).toBeInstanceOf(OutputSymlinkError);
    expect(err.message).toMatch(/"\(the outputs directory\)".* is a symbolic link to/);
  });

  test("a log replaced by a link is not followed", async () => {
    const err = await failure(
      `const log = path.join(path.dirname(out), 'log.txt'); fs.unlinkSync(log); fs.symlinkSync(target, log); fs.writeFileSync(path.join(out, 'model.json'), '{}');`,
      ['model.json'],
    );
    expect(err).toBeInstanceOf(OutputSymlinkError);
    expect(err.message).toMatch(/"log.txt" is a symbolic link/);
  });

  test('a log replaced by another file is not uploaded', async () => {
    const err = await failure(
      `const log = path.join(path.dirname(out), 'log.txt'); fs.unlinkSync(log); fs.copyFileSync(target, log); fs.writeFileSync(path.join(out, 'model.json'), '{}');`,
      ['model.json'],
    );
    expect(err).toBeInstanceOf(OutputEscapesError);
  });
});

/** Processes (outside pids) whose environment holds `entry` (`NAME=value`). */
function processesWithEnv(entry: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(entry)) found.push(Number(name));
    } catch {
      // gone, or not ours
    }
  }
  return found;
}

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
