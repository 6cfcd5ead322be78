import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promote, registerVersion, rollback } from '../../activities/registry/model-registry';
import { readJsonl } from '../../activities/store';
import { newRunId, startRun } from '../../cli/runs';
import { ensurePythonEnv } from '../../infra/python-env';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary, StageManifest } from '../../workflows/types';
import { spawnTempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';
import { makeTinyBase, makeTinyBpeBase, writeTinyMails, writeTinyMailsWithSubjects } from '../support/torch-fixtures';

// `tempered serve` as a user runs it, on real Temporal + MinIO, the real Python packages and
// llama.cpp: models trained by the pipeline are registered, served, and asked over HTTP. A served
// label must be the label the evaluate stage counted; a streamed answer must be the whole answer;
// a promotion and a rollback under load must swap the model without one failed request.

let h: Harness;
let dir: string;
let classifiers: RunSummary;
let language: RunSummary;
const servers: ChildProcess[] = [];

const classifierSpec = `
apiVersion: tempered.dev/v1
name: serve-classifiers
seed: 4
stages:
  collect: { type: collect, sources: [{ path: "mail/*/*.txt" }], labelFromPath: "(?<label>ham|spam)/" }
  split: { type: split, input: collect, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  tokenizer: { type: tokenizer, input: [split], vocabSize: 300 }
  tfjs-a: { type: finetune, input: split, tokenizer: tokenizer, objective: classify, model: { layers: 1, dModel: 16, heads: 2, context: 24 }, steps: 3, batchSize: 8 }
  tfjs-b: { type: finetune, input: split, tokenizer: tokenizer, objective: classify, model: { layers: 1, dModel: 16, heads: 2, context: 24 }, steps: 6, batchSize: 8 }
  tfjs-lm: { type: finetune, input: split, tokenizer: tokenizer, objective: causal-lm, model: { layers: 1, dModel: 32, heads: 2, context: 32 }, steps: 4, batchSize: 8 }
  torch: { type: finetune, input: split, base: bert, objective: classify, steps: 4, batchSize: 8, maxLength: 24, optimizer: { lr: 0.003 } }
  evaluate-tfjs-a: { type: evaluate, input: split, model: tfjs-a, robustness: false }
  evaluate-torch: { type: evaluate, input: split, model: torch, robustness: false }
`;

const languageSpec = `
apiVersion: tempered.dev/v1
name: serve-language
seed: 4
stages:
  collect: { type: collect, sources: [{ path: "mail/*.eml" }] }
  clean: { type: clean, input: collect, stripMailHeaders: true, redact: false, nearDedup: false }
  split: { type: split, input: clean, ratios: { train: 0.6, validation: 0.2, test: 0.2 } }
  lm: { type: finetune, input: split, base: bpe, objective: causal-lm, steps: 2, batchSize: 4, maxLength: 32, optimizer: { lr: 0.01 } }
`;

beforeAll(async () => {
  const { python } = await ensurePythonEnv();
  h = await startHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-serve-'));
  await Promise.all([makeTinyBase(python, path.join(dir, 'bert')), makeTinyBpeBase(python, path.join(dir, 'bpe'))]);
  await writeTinyMails(dir, 40);
  await writeTinyMailsWithSubjects(dir, 16); // mail/*.eml, beside the classifiers' mail/{ham,spam}/*.txt
  const runs = await Promise.all(
    [classifierSpec, languageSpec].map(async (spec) => {
      const { workflowId } = await startRun(h.client, planPipeline(loadSpecText(spec, path.join(dir, 'spec.yaml'))), newRunId());
      return waitForSummary(h.client, workflowId, 600_000);
    }),
  );
  [classifiers, language] = runs;
  for (const summary of runs) expect(Object.entries(summary.stages).filter(([, s]) => s.status !== 'succeeded').map(([n, s]) => `${n}: ${s.error}`)).toEqual([]);
  const register = async (name: string, summary: RunSummary, stage: string) => {
    const manifest = await h.store.readJson<StageManifest>(summary.stages[stage].manifest!);
    return registerVersion(h.store, name, { outputs: manifest.outputs, metrics: manifest.metrics, lineage: { runId: summary.runId, pipeline: summary.pipeline, stage } });
  };
  await promote(h.store, 'mail-tfjs', (await register('mail-tfjs', classifiers, 'tfjs-a')).version);
  await register('mail-tfjs', classifiers, 'tfjs-b');
  await promote(h.store, 'mail-torch', (await register('mail-torch', classifiers, 'torch')).version);
  await promote(h.store, 'tiny-lm', (await register('tiny-lm', language, 'lm')).version);
  await promote(h.store, 'tfjs-lm', (await register('tfjs-lm', classifiers, 'tfjs-lm')).version);
}, 900_000);

afterAll(async () => {
  for (const server of servers) server.kill('SIGKILL');
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Starts `tempered serve <args>` on a free port; resolves with its URL once it listens. */
async function serve(args: string[]): Promise<{ url: string; child: ChildProcess; stderr: () => string }> {
  const child = spawnTempered(['serve', ...args, '--port', '0', '--cache-dir', path.join(dir, 'cache')], { TEMPERED_STORE: `s3://${h.bucket}` }, dir);
  servers.push(child);
  let stderr = '';
  child.stdout!.resume();
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tempered serve did not listen within 300 s:\n${stderr}`)), 300_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const listening = /listening on (http:\/\/\S+)/.exec(stderr);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`tempered serve exited with ${code}:\n${stderr}`)));
  });
  return { url, child, stderr: () => stderr };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: res.headers };
}

/** The test split's texts and the evaluate stage's labels for them, in order. */
async function evaluated(stage: string): Promise<{ texts: string[]; labels: string[] }> {
  const records: Array<{ id: string; text: string }> = [];
  const split = await h.store.readJson<StageManifest>(classifiers.stages.split.manifest!);
  for await (const r of readJsonl<{ id: string; text: string }>(h.store, split.outputs.test)) records.push(r);
  const manifest = await h.store.readJson<StageManifest>(classifiers.stages[stage].manifest!);
  const predicted = new Map<string, string>();
  for await (const row of readJsonl<{ id: string; predicted: string }>(h.store, manifest.outputs.predictions)) predicted.set(row.id, row.predicted);
  expect(predicted.size).toBe(records.length);
  return { texts: records.map((r) => r.text), labels: records.map((r) => predicted.get(r.id)!) };
}

test('a torch classifier answers /v1/classify with the labels its evaluate stage counted, and probabilities', async () => {
  const { url } = await serve(['mail-torch']);
  const { texts, labels } = await evaluated('evaluate-torch');
  const answer = await post(`${url}/v1/classify`, { input: texts });
  expect(answer.status).toBe(200);
  expect(answer.body.model).toBe('mail-torch@1');
  expect(answer.body.data.map((d: { label: string }) => d.label)).toEqual(labels);
  for (const d of answer.body.data) {
    const scores = Object.values(d.scores as Record<string, number>);
    expect(Object.keys(d.scores).sort()).toEqual(['ham', 'spam']);
    expect(scores.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(d.scores[d.label]).toBe(Math.max(...scores));
  }
  // Concurrent requests are batched together in the one Python process, each answered with its own texts.
  const singles = await Promise.all(texts.map((text) => post(`${url}/v1/classify`, { input: text })));
  expect(singles.map((s) => s.body.data[0].label)).toEqual(labels);

  const health = (await fetch(`${url}/healthz`).then((r) => r.json())) as { engine: string };
  expect(health).toMatchObject({ status: 'ok', model: 'mail-torch', version: 1, kind: 'classifier' });
  expect(health.engine).toMatch(/^torch/);
}, 600_000);

test('a tfjs classifier follows its champion: a promotion and a rollback under load fail no request', async () => {
  const { url, stderr } = await serve(['mail-tfjs@champion', '--poll', '1']);
  const { texts, labels } = await evaluated('evaluate-tfjs-a');
  const first = await post(`${url}/v1/classify`, { input: texts });
  expect(first.body.model).toBe('mail-tfjs@1');
  expect(first.body.data.map((d: { label: string }) => d.label)).toEqual(labels);

  // Eight clients ask without pause while the champion moves to v2 and back.
  const seen: Array<{ status: number; version: string | null; at: number }> = [];
  let running = true;
  const client = async (k: number) => {
    for (let i = 0; running; i++) {
      const res = await post(`${url}/v1/classify`, { input: [texts[(k + i) % texts.length]] }).catch((err: Error) => ({ status: -1, body: err.message, headers: new Headers() }));
      seen.push({ status: res.status, version: res.headers.get('x-tempered-model-version'), at: Date.now() });
    }
  };
  const clients = Array.from({ length: 8 }, (_, k) => client(k));
  const until = async (version: string) => {
    const deadline = Date.now() + 60_000;
    while (!seen.some((s) => s.version === version && s.at > started) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  };
  let started = Date.now();
  await new Promise((r) => setTimeout(r, 1000));
  started = Date.now();
  await promote(h.store, 'mail-tfjs', 2, 'test: promotion under load');
  await until('2');
  started = Date.now();
  await rollback(h.store, 'mail-tfjs', 'test: rollback under load');
  await until('1');
  await new Promise((r) => setTimeout(r, 1000));
  running = false;
  await Promise.all(clients);

  expect(seen.filter((s) => s.status !== 200)).toEqual([]);
  const versions = seen.map((s) => s.version);
  expect(versions).toContain('2');
  // v1, then v2, then v1 again: each swap once, in order (no answer from a version after its successor answered).
  const firstTwo = versions.indexOf('2');
  const lastTwo = versions.lastIndexOf('2');
  expect(versions.slice(0, firstTwo).every((v) => v === '1')).toBe(true);
  expect(versions.slice(lastTwo + 1).filter((v) => v === '1').length).toBeGreaterThan(0);
  expect(seen.length).toBeGreaterThan(50);
  expect(stderr()).toMatch(/serving mail-tfjs v2 .*was v1/);
  expect(stderr()).toMatch(/serving mail-tfjs v1 .*was v2/);

  // A request is counted when its response closes, a moment after its client has read it.
  const classified = (text: string) => Number(/^tempered_serve_requests_total\{route="\/v1\/classify",status="200"\} (\d+)$/m.exec(text)?.[1]);
  let metrics = await fetch(`${url}/metrics`).then((r) => r.text());
  for (let i = 0; i < 20 && classified(metrics) < seen.length + 1; i++) metrics = await new Promise((r) => setTimeout(r, 100)).then(() => fetch(`${url}/metrics`).then((r) => r.text()));
  expect(metrics).toMatch(/^tempered_serve_model_loads_total 3$/m);
  expect(metrics).toMatch(/^tempered_serve_model_info\{model="mail-tfjs",version="1",engine="tfjs \([a-z-]+\)"\} 1$/m);
  expect(classified(metrics)).toBe(seen.length + 1);
  expect(metrics).toMatch(/^tempered_serve_request_duration_seconds_count\{route="\/v1\/classify"\} \d+$/m);
}, 600_000);

test('bad requests are answered 400/404 in OpenAI\'s error shape, naming what is wrong', async () => {
  const { url, child } = await serve(['mail-tfjs@1', '--poll', '0']);
  const missing = await post(`${url}/v1/classify`, { text: 'hello' });
  expect(missing.status).toBe(400);
  expect(missing.body.error).toMatchObject({ type: 'invalid_request_error', param: 'input' });
  expect(missing.body.error.message).toMatch(/^input: /);
  const wrongKind = await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] });
  expect(wrongKind.status).toBe(400);
  expect(wrongKind.body.error.message).toMatch(/is a classifier: use POST \/v1\/classify/);
  const otherModel = await post(`${url}/v1/classify`, { model: 'gpt-4o', input: 'hi' });
  expect(otherModel.status).toBe(404);
  expect(otherModel.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
  const notJson = await fetch(`${url}/v1/classify`, { method: 'POST', body: '{"input": ' });
  expect(notJson.status).toBe(400);
  expect(((await notJson.json()) as { error: { message: string } }).error.message).toMatch(/not JSON/);
  expect((await fetch(`${url}/v2/nothing`)).status).toBe(404);
  // The server still answers after all of them.
  expect((await post(`${url}/v1/classify`, { model: 'mail-tfjs', input: 'meeting notes' })).status).toBe(200);
  // SIGTERM with a keep-alive connection open (fetch keeps them): the server ends at once, cleanly.
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const started = Date.now();
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(Date.now() - started).toBeLessThan(10_000);
}, 600_000);

test('a torch language model is served as GGUF on llama.cpp: completions and chat, whole and streamed alike', async () => {
  const { url, stderr } = await serve(['tiny-lm', '--gguf-type', 'f16', '--context', '256', '--parallel', '2']);
  expect(stderr()).toMatch(/converting tiny-lm v1 to GGUF f16/);
  expect(stderr()).toMatch(/serving tiny-lm v1 on llama\.cpp \(GGUF f16, cpu\)/);

  const request = { prompt: 'meeting notes attached', max_tokens: 8, temperature: 0 };
  const whole = await post(`${url}/v1/completions`, request);
  expect(whole.status).toBe(200);
  expect(whole.body).toMatchObject({ object: 'text_completion', model: 'tiny-lm@1', choices: [{ index: 0, finish_reason: expect.stringMatching(/^(stop|length)$/) }] });
  const { usage } = whole.body;
  expect(usage.prompt_tokens).toBeGreaterThan(2);
  expect(usage.completion_tokens).toBeGreaterThan(0);
  expect(usage.completion_tokens).toBeLessThanOrEqual(8);
  expect(whole.body.choices[0].text.length).toBeGreaterThan(0);
  expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);

  const events = await streamed(`${url}/v1/completions`, { ...request, stream: true });
  expect(events.at(-1)).toBe('[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  expect(chunks.length).toBeGreaterThan(2); // text came in pieces, then the finish
  expect(chunks.map((c) => c.choices[0].text).join('')).toBe(whole.body.choices[0].text);
  expect(chunks.at(-1).choices[0].finish_reason).toBe(whole.body.choices[0].finish_reason);
  expect(chunks.at(-1).usage).toEqual(usage);

  const chatRequest = { messages: [{ role: 'system', content: 'you write subject lines' }, { role: 'user', content: 'win free money prize now offer' }], max_tokens: 6, temperature: 0 };
  const chat = await post(`${url}/v1/chat/completions`, chatRequest);
  expect(chat.status).toBe(200);
  expect(chat.body).toMatchObject({ object: 'chat.completion', choices: [{ message: { role: 'assistant' } }] });
  expect(chat.body.usage.completion_tokens).toBeLessThanOrEqual(6);
  const chatEvents = (await streamed(`${url}/v1/chat/completions`, { ...chatRequest, stream: true })).slice(0, -1).map((e) => JSON.parse(e));
  expect(chatEvents[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
  expect(chatEvents.map((c) => c.choices[0].delta.content ?? '').join('')).toBe(chat.body.choices[0].message.content);
  expect(chatEvents.every((c) => c.object === 'chat.completion.chunk')).toBe(true);

  // Three requests at once with two sequences: one waits for a free sequence, none fails, and the same greedy request gets the same answer.
  const many = await Promise.all([0, 1, 2].map(() => post(`${url}/v1/completions`, request)));
  expect(many.map((m) => m.body.choices[0].text)).toEqual([0, 1, 2].map(() => whole.body.choices[0].text));

  const classify = await post(`${url}/v1/classify`, { input: 'x' });
  expect(classify.status).toBe(400);
  expect(classify.body.error.message).toMatch(/is a language model/);
  const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
  expect(Number(/^tempered_serve_tokens_total\{kind="completion"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
}, 600_000);

test('a tfjs language model is served as GGUF too, through its GPT-2 export', async () => {
  const { url, stderr } = await serve(['tfjs-lm', '--gguf-type', 'q8_0', '--context', '64', '--parallel', '1']);
  expect(stderr()).toMatch(/serving tfjs-lm v1 on llama\.cpp \(GGUF q8_0, cpu\)/);
  const request = { prompt: 'meeting notes attached team', max_tokens: 6, temperature: 0 };
  const [a, b] = [await post(`${url}/v1/completions`, request), await post(`${url}/v1/completions`, request)];
  expect(a.status).toBe(200);
  expect(a.body.usage.prompt_tokens).toBeGreaterThan(0);
  expect(a.body.usage.completion_tokens).toBeGreaterThan(0);
  expect(b.body.choices[0].text).toBe(a.body.choices[0].text);
}, 600_000);

/** The `data:` payloads of a server-sent event stream. */
async function streamed(url: string, body: unknown): Promise<string[]> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
}
