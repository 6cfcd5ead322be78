import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../infra/python-env';

// The torch quantize stage's dynamic int8 against float32 on MiniLM, in one process, alternating
// rounds (python/bench/int8_latency.py): ms per record at batch 16 and the speedup, and the
// stored sizes. Usage: npm run build && node dist/bench/torch-int8.js [rounds=5]

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const { python } = await ensurePythonEnv();
  const out = execFileSync(python, [path.join(PYTHON_DIR, 'bench', 'int8_latency.py'), String(rounds)], { env: pythonRunEnv(), stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const result = JSON.parse(out.trim().split('\n').at(-1)!) as { threads: number; msPerRecord: { float32: number; int8: number }; speedup: number; bytes: { float32: number; int8: number } };
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  console.log(`MiniLM classify, batch 16, up to 128 tokens, ${rounds} alternating rounds, ${result.threads} threads`);
  console.log(`float32  ${result.msPerRecord.float32.toFixed(2)} ms/record  ${mib(result.bytes.float32)}`);
  console.log(`int8     ${result.msPerRecord.int8.toFixed(2)} ms/record  ${mib(result.bytes.int8)}`);
  console.log(`int8 is ${result.speedup.toFixed(2)}x as fast, ${(result.bytes.float32 / result.bytes.int8).toFixed(1)}x smaller`);
  console.log(JSON.stringify(result));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
