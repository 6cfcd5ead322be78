// Training throughput of the built-in trainer, and how much of this machine's matmul peak it uses.
//
//   node dist/bench/training.js            (or: npx tsx bench/training.ts)
//
// For each (backend, model) pair a child process trains with `trainModel` on synthetic full-length
// sequences (a child per pair because the wasm thread count is fixed per process) and reports the
// median step time over the timed steps. Achieved FLOP/s counts matmul FLOPs only, forward +
// backward = 3 × forward, the convention of nanoGPT's MFU estimate:
//   per token  6·N + 12·L·T·C,   N = L·(4 + 2·mlpRatio)·C² + V·C   (block projections + tied LM head)
// where 12·L·T·C is attention's QKᵀ and A·V (the full T×T products are computed, mask or not).
// Embedding lookups, biases, LayerNorm, softmax and the optimizer are not counted.
// The peak is numpy's float32 1024×1024 matmul in the same run, on 1 and on 2 threads (best of
// several); a run is compared with the peak for its own thread count.
//
// The same models train in PyTorch too (`torch-2t`: python/bench/gpt_step.py, the GPT-2 architecture
// with the same shape, parameter count, batch and optimizer, in Tempered's Python environment), so
// the torch engine's speed on the tfjs engine's own models is measured in the same run.
//
// Optional: TEMPERED_BENCH_CPU_STEPS (timed steps on the cpu backend, default 2),
// TEMPERED_BENCH_STEPS (timed steps on wasm, default 6), TEMPERED_BENCH_ONLY (comma list of
// case names to run, e.g. `wasm-1t/small`).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../infra/python-env';
import { initBackend, type BackendPreference } from '../activities/ml/backend';
import { Gpt, type ModelConfig } from '../activities/ml/model';
import { Rng } from '../activities/ml/rng';
import { trainModel } from '../activities/ml/train';

interface ModelCase {
  name: string;
  config: ModelConfig;
  batchSize: number;
}

const MODELS: ModelCase[] = [
  { name: 'base', config: { vocabSize: 2000, context: 128, layers: 2, dModel: 128, heads: 4 }, batchSize: 16 },
  { name: 'small', config: { vocabSize: 1000, context: 64, layers: 2, dModel: 64, heads: 2 }, batchSize: 16 },
];

interface BackendCase {
  name: string;
  backend: Exclude<BackendPreference, 'auto'> | 'torch';
  threads: number;
}

const BACKENDS: BackendCase[] = [
  { name: 'wasm-1t', backend: 'wasm', threads: 1 },
  { name: 'wasm-2t', backend: 'wasm', threads: 2 },
  { name: 'cpu', backend: 'cpu', threads: 1 },
  { name: 'torch-2t', backend: 'torch', threads: 2 },
];

export interface CaseResult {
  case: string;
  backend: string;
  threads: number;
  model: string;
  params: number;
  tokensPerStep: number;
  timedSteps: number;
  secondsPerStep: number;
  tokensPerSec: number;
  gflopPerStep: number;
  gflopPerSec: number;
  /** gflopPerSec / numpy peak at the same thread count. */
  fractionOfPeak: number;
}

export interface TrainingBenchReport {
  numpyPeakGflops: { threads1: number; threads2: number };
  results: CaseResult[];
}

/** Matmul FLOPs of one training step (forward + backward), as described at the top. */
export function trainingFlopsPerStep(config: ModelConfig, batchSize: number): number {
  const { vocabSize: V, context: T, layers: L, dModel: C, mlpRatio = 4 } = config;
  const n = L * (4 + 2 * mlpRatio) * C * C + V * C;
  return batchSize * T * (6 * n + 12 * L * T * C);
}

/** numpy float32 1024×1024 matmul, best of 10 after warmup, in GFLOP/s (numpy of Tempered's Python environment). */
function numpyPeak(python: string, threads: number): number {
  const code = [
    'import numpy as np, time',
    'a = np.random.rand(1024, 1024).astype(np.float32); b = np.random.rand(1024, 1024).astype(np.float32)',
    'for _ in range(3): a @ b',
    'best = 1e9',
    'for _ in range(10):',
    '    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)',
    'print(2 * 1024**3 / best / 1e9)',
  ].join('\n');
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const out = spawnSync(python, ['-c', code], { env: { ...pythonRunEnv(), ...env }, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`numpy peak measurement failed: ${out.stderr}`);
  return Number(out.stdout.trim());
}

/** Runs in the child: trains `steps` steps and prints one JSON line. */
async function runCase(backendCase: BackendCase, model: ModelCase, warmup: number, timed: number): Promise<void> {
  if (backendCase.backend === 'torch') throw new Error('torch cases run in Python (python/bench/gpt_step.py)');
  const info = await initBackend(backendCase.backend, { threads: backendCase.threads });
  const { config, batchSize } = model;
  const rng = Rng.fromSeed(1, 'bench');
  const train = Array.from({ length: 64 }, () => ({ tokens: Array.from({ length: config.context + 1 }, () => rng.int(config.vocabSize)) }));
  const gpt = new Gpt(config, { seed: 1 });
  const seconds: number[] = [];
  let last = performance.now();
  await trainModel(
    { model: gpt, objective: 'causal-lm', steps: warmup + timed, batchSize, optimizer: { lr: 1e-3 } },
    { train, validation: [] },
    {
      onStep: () => {
        const now = performance.now();
        seconds.push((now - last) / 1000);
        last = now;
      },
    },
  );
  const timedSeconds = seconds.slice(warmup).sort((a, b) => a - b);
  const secondsPerStep = timedSeconds[Math.floor(timedSeconds.length / 2)];
  console.log(JSON.stringify({ threads: info.threads, params: gpt.parameterCount(), secondsPerStep, timedSteps: timed }));
  gpt.dispose();
}

/** Runs every case in its own process, prints a table and JSON, returns the report. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<TrainingBenchReport> {
  const only = env.TEMPERED_BENCH_ONLY?.split(',');
  const { python } = await ensurePythonEnv();
  const peak = { threads1: numpyPeak(python, 1), threads2: numpyPeak(python, 2) };
  const results: CaseResult[] = [];
  for (const backendCase of BACKENDS) {
    for (const model of MODELS) {
      const name = `${backendCase.name}/${model.name}`;
      if (only && !only.includes(name)) continue;
      const timed = backendCase.backend === 'cpu' ? Number(env.TEMPERED_BENCH_CPU_STEPS ?? 2) : Number(env.TEMPERED_BENCH_STEPS ?? 6);
      const warmup = backendCase.backend === 'cpu' ? 1 : 2;
      const child =
        backendCase.backend === 'torch'
          ? spawnSync(python, [path.join(PYTHON_DIR, 'bench', 'gpt_step.py'), JSON.stringify({ ...model.config, batchSize: model.batchSize, threads: backendCase.threads, warmup, timed })], {
              encoding: 'utf8',
              stdio: ['ignore', 'pipe', 'inherit'],
              env: pythonRunEnv(),
            })
          : spawnSync(process.execPath, [...process.execArgv, __filename, '--case', backendCase.name, model.name, String(warmup), String(timed)], {
              encoding: 'utf8',
              stdio: ['ignore', 'pipe', 'inherit'],
            });
      if (child.status !== 0) throw new Error(`${name} failed with status ${child.status}`);
      const measured = JSON.parse(child.stdout.trim().split('\n').pop()!) as { threads: number; params: number; secondsPerStep: number; timedSteps: number };
      const tokensPerStep = model.batchSize * model.config.context;
      const gflopPerStep = trainingFlopsPerStep(model.config, model.batchSize) / 1e9;
      const gflopPerSec = gflopPerStep / measured.secondsPerStep;
      results.push({
        case: name,
        backend: backendCase.backend,
        threads: measured.threads,
        model: model.name,
        params: measured.params,
        tokensPerStep,
        timedSteps: measured.timedSteps,
        secondsPerStep: measured.secondsPerStep,
        tokensPerSec: tokensPerStep / measured.secondsPerStep,
        gflopPerStep,
        gflopPerSec,
        fractionOfPeak: gflopPerSec / (measured.threads >= 2 ? peak.threads2 : peak.threads1),
      });
    }
  }
  const report: TrainingBenchReport = { numpyPeakGflops: peak, results };
  printTable(report);
  for (const model of MODELS) {
    const [tfjs, torch] = [results.find((r) => r.case === `wasm-2t/${model.name}`), results.find((r) => r.case === `torch-2t/${model.name}`)];
    if (tfjs && torch) console.log(`${model.name}: torch ${torch.secondsPerStep.toFixed(3)} s/step vs tfjs-wasm ${tfjs.secondsPerStep.toFixed(3)} s/step on 2 threads: torch ${(tfjs.secondsPerStep / torch.secondsPerStep).toFixed(2)}x faster`);
  }
  console.log(JSON.stringify(report, null, 2));
  return report;
}

function printTable({ numpyPeakGflops, results }: TrainingBenchReport): void {
  console.log(`numpy float32 matmul peak: ${numpyPeakGflops.threads1.toFixed(1)} GFLOP/s (1 thread), ${numpyPeakGflops.threads2.toFixed(1)} (2 threads)`);
  const header = ['case', 'params', 'tokens/step', 's/step', 'tokens/s', 'GFLOP/step', 'GFLOP/s', '% of peak'];
  const rows = results.map((r) => [
    r.case,
    String(r.params),
    String(r.tokensPerStep),
    r.secondsPerStep.toFixed(3),
    r.tokensPerSec.toFixed(0),
    r.gflopPerStep.toFixed(2),
    r.gflopPerSec.toFixed(2),
    (100 * r.fractionOfPeak).toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const row of [header, ...rows]) console.log(row.map((c, i) => c.padStart(widths[i])).join('  '));
}

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === '--case') {
    const backendCase = BACKENDS.find((b) => b.name === args[1])!;
    const model = MODELS.find((m) => m.name === args[2])!;
    runCase(backendCase, model, Number(args[3]), Number(args[4])).catch((error) => {
      console.error(error);
      process.exitCode = 1;
    });
  } else {
    main().catch((error) => {
      console.error(error);
      process.exitCode = 1;
    });
  }
}
