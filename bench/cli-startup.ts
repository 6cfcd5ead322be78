import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

// CLI start-up: wall time of `tempered --help` and `tempered validate <demo spec>` against a bare
// `node -e 0` and against loading the modules the CLI used to load eagerly (Temporal client and
// worker, the AWS SDK, tfjs), interleaved in one run on one machine; with Node's compile cache
// warm and cold. Usage: npm run build && node dist/bench/cli-startup.js [repeats=15]

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/cli/main.js');
const DEMO = path.join(ROOT, 'pipelines/examples/demo.yaml');
const EAGER = ['@temporalio/client', '@temporalio/worker', '@aws-sdk/client-s3', '@tensorflow/tfjs'].map((m) => `require(${JSON.stringify(m)})`).join(';');

const cases: Array<{ name: string; args: string[]; env?: NodeJS.ProcessEnv }> = [
  { name: 'node -e 0 (baseline)', args: ['-e', '0'] },
  { name: 'tempered --help', args: [MAIN, '--help'] },
  { name: 'tempered validate demo.yaml', args: [MAIN, 'validate', DEMO] },
  { name: 'tempered --help, compile cache off', args: [MAIN, '--help'], env: { NODE_DISABLE_COMPILE_CACHE: '1' } },
  { name: 'tempered validate, compile cache off', args: [MAIN, 'validate', DEMO], env: { NODE_DISABLE_COMPILE_CACHE: '1' } },
  { name: 'eager imports of before (Temporal, AWS SDK, tfjs)', args: ['-e', EAGER] },
];

function timeOnce(args: string[], env?: NodeJS.ProcessEnv): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return performance.now() - started;
}

function main(): void {
  const repeats = Number(process.argv[2] ?? 15);
  const times = cases.map(() => [] as number[]);
  for (const c of cases) timeOnce(c.args, c.env); // warm the OS file cache and Node's compile cache
  for (let r = 0; r < repeats; r++) cases.forEach((c, i) => times[i].push(timeOnce(c.args, c.env)));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const baseline = median(times[0]);
  console.log(`node ${process.versions.node}, ${repeats} interleaved runs each, median wall time`);
  for (const [i, c] of cases.entries()) {
    const m = median(times[i]);
    console.log(`${c.name.padEnd(52)} ${m.toFixed(0).padStart(5)} ms  ${(m / baseline).toFixed(2)}x baseline`);
  }
}

main();
