import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunSummary } from '../../workflows/types';
import { ROOT, spawnTempered, tempered } from '../support/cli';

// What the CLI writes where: with --json, stdout is one whole JSON document, however large and
// however read (a pipe takes 64 KiB at a time); everything else goes to stderr. And a local run
// stopped by a signal is cancelled, not left RUNNING without its workers.

let dir: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-cli-output-'));
  env = { TEMPERED_STORE: `s3://cli-out-${randomBytes(4).toString('hex')}` };
});

test('a JSON document of more than 1 MB reaches a pipe whole', async () => {
  // 400 stages with long descriptions: the plan `validate --json` prints is ~1.5 MB.
  const description = 'x'.repeat(3000);
  const stages = Array.from({ length: 400 }, (_, i) => `  s${i}: { type: noop, description: "${description}" }`);
  const specFile = path.join(dir, 'big.yaml');
  await writeFile(specFile, ['apiVersion: tempered.dev/v1', 'name: big-plan', 'stages:', ...stages].join('\n'));
  const result = await tempered(['validate', specFile, '--json']);
  expect(result.code).toBe(0);
  expect(result.stdout.length).toBeGreaterThan(1_000_000);
  const plan = JSON.parse(result.stdout) as { stages: unknown[] };
  expect(plan.stages).toHaveLength(400);
}, 120_000);

test('with --json, console output of anyone in the process goes to stderr and stdout holds only the document', async () => {
  // The real routing functions, in a real process with piped stdout: our code, a library or a
  // worker thread printing with console.log or process.stdout.write.
  const script = `
    const { keepStdoutForJson, printJson, exitAfterFlush } = require(${JSON.stringify(path.join(ROOT, 'cli/output.ts'))});
    const { Worker } = require('node:worker_threads');
    keepStdoutForJson();
    console.log('a log line');
    console.info('an info line');
    process.stdout.write('a raw write\\n');
    const thread = new Worker("console.log('from a thread')", { eval: true, stdout: true });
    thread.stdout.on('data', (chunk) => process.stdout.write(chunk));
    thread.on('exit', () => { printJson({ big: 'y'.repeat(300000) }); void exitAfterFlush(0); });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise((resolve) => child.on('close', resolve));
  expect(code).toBe(0);
  expect(JSON.parse(stdout)).toEqual({ big: 'y'.repeat(300000) });
  for (const line of ['a log line', 'an info line', 'a raw write', 'from a thread']) expect(stderr).toContain(line);
});

test('run --local --json, status --json and list --json print exactly one JSON document each', async () => {
  await writeFile(path.join(dir, 'a.txt'), 'Enough words in this first document to survive cleaning.');
  const specFile = path.join(dir, 'json.yaml');
  await writeFile(specFile, `apiVersion: tempered.dev/v1
name: cli-json
stages:
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  clean: { type: clean, input: collect }
`);
  const run = await tempered(['run', specFile, '--local', '--json'], env);
  expect(run.code).toBe(0);
  const summary = JSON.parse(run.stdout) as RunSummary;
  expect(summary.status).toBe('succeeded');
  expect(run.stderr).toMatch(/started run/);
  const status = await tempered(['status', summary.runId, '--json'], env);
  expect(JSON.parse(status.stdout)).toEqual(summary);
  const list = await tempered(['list', '--json'], env);
  expect(Array.isArray(JSON.parse(list.stdout))).toBe(true);
}, 180_000);

test('SIGTERM during run --local cancels the run and exits', async () => {
  const specFile = path.join(dir, 'slow.yaml');
  await writeFile(specFile, `apiVersion: tempered.dev/v1
name: cli-signal
stages:
  wait: { type: noop, sleepMs: 600000, heartbeatTimeout: 5s }
`);
  const runId = `sig-${randomBytes(4).toString('hex')}`;
  const child = spawnTempered(['run', specFile, '--local', '--run-id', runId], env);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  // Wait until the stage runs.
  for (let i = 0; i < 200; i++) {
    const status = await tempered(['status', runId, '--json'], env);
    if (status.code === 0 && (JSON.parse(status.stdout) as RunSummary).stages.wait?.status === 'running') break;
    await new Promise((r) => setTimeout(r, 300));
  }
  const signalled = Date.now();
  child.kill('SIGTERM');
  const code = await exited;
  expect(Date.now() - signalled).toBeLessThan(30_000);
  expect(code).toBe(143);
  expect(stderr).toMatch(new RegExp(`SIGTERM: cancelling run ${runId}`));
  const after = JSON.parse((await tempered(['status', runId, '--json'], env)).stdout) as RunSummary;
  expect(after.status).toBe('cancelled');
  // the stage saw the cancellation (the CLI's last progress line) rather than losing its worker
  expect(stderr).toMatch(/wait: cancelled/);
}, 180_000);
