import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import { RequestError, type ChatMessage, type GenerateOptions, type Generation, type LanguageModel } from './engine';
import type { ModelSlot, Served } from './model-slot';

// `tempered serve`'s HTTP side, OpenAI-compatible where OpenAI has the call:
//   POST /v1/completions, /v1/chat/completions   language models; "stream": true sends
//                                                server-sent events, chunk by chunk, then [DONE]
//   POST /v1/classify                             classifiers: {"input": text | [texts]} →
//                                                a label and every label's probability per text
//   GET  /v1/models, /healthz, /metrics           what is served; 200 once a model is loaded;
//                                                Prometheus text format
// Errors are OpenAI's shape, {"error": {"message", "type", "param", "code"}}: 400 for a bad request
// (what is wrong and how to fix it), 404 for another model or path, 503 while nothing is loaded.
// Each answer names the version that produced it (`model: name@n`, header x-tempered-model-version).

/** Bodies above this are refused (413). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

// OpenAI's clients send null for a field left unset (the Python SDK for every None): null is unset.
const unset = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);
const stop = unset(z.union([z.string(), z.array(z.string()).max(4)]));
const sampling = {
  model: unset(z.string()),
  max_tokens: unset(z.number().int().min(1).max(8192)),
  max_completion_tokens: unset(z.number().int().min(1).max(8192)),
  temperature: unset(z.number().min(0).max(2)),
  top_p: unset(z.number().gt(0).max(1)),
  seed: unset(z.number().int()),
  stop,
  stream: unset(z.boolean()),
  n: unset(z.literal(1, { error: 'only n = 1 is served' })),
  user: unset(z.string()),
};
const completionRequest = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string())], { error: 'a string, or a list holding one string' }).refine((p) => typeof p === 'string' || p.length === 1, 'give one prompt per request'),
});
const content = z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() })).min(1)]);
const chatRequest = z.object({
  ...sampling,
  messages: z.array(z.object({ role: z.enum(['system', 'developer', 'user', 'assistant']), content })).min(1),
});
const classifyRequest = z.object({ model: unset(z.string()), input: z.union([z.string(), z.array(z.string()).min(1).max(256)]) });

export interface ServerOptions {
  host: string;
  port: number;
  log: (line: string) => void;
}

export interface RunningServer {
  server: Server;
  url: string;
  metrics: Registry;
  /** Stops accepting connections and resolves when the ones open have ended (cut after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/** Metrics a server keeps (names under `tempered_serve_`); the model's are read from `slot` when scraped. */
function serveMetrics(registry: Registry, slot: ModelSlot) {
  return {
    requests: new Counter({ name: 'tempered_serve_requests_total', help: 'Requests answered, by route and HTTP status', labelNames: ['route', 'status'], registers: [registry] }),
    latency: new Histogram({
      name: 'tempered_serve_request_duration_seconds',
      help: 'Time from request to the end of its answer, by route',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    inFlight: new Gauge({ name: 'tempered_serve_requests_in_flight', help: 'Requests being answered now', registers: [registry] }),
    tokens: new Counter({ name: 'tempered_serve_tokens_total', help: 'Tokens evaluated, by kind (prompt or completion)', labelNames: ['kind'], registers: [registry] }),
    texts: new Counter({ name: 'tempered_serve_classified_texts_total', help: 'Texts classified', registers: [registry] }),
    model: new Gauge({
      name: 'tempered_serve_model_info',
      help: 'The model version serving now (value 1)',
      labelNames: ['model', 'version', 'engine'],
      registers: [registry],
      collect() {
        this.reset();
        const served = slot.served;
        if (served) this.set({ model: served.version.name, version: String(served.version.version), engine: served.model.engine }, 1);
      },
    }),
    loads: new Counter({
      name: 'tempered_serve_model_loads_total',
      help: 'Model versions loaded (the first and every swap)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(slot.counts.loads);
      },
    }),
    loadFailures: new Counter({
      name: 'tempered_serve_model_load_failures_total',
      help: 'Versions that failed to load (the previous kept serving)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(slot.counts.loadFailures);
      },
    }),
    loadSeconds: new Gauge({
      name: 'tempered_serve_model_load_seconds',
      help: 'How long the serving version took to load',
      registers: [registry],
      collect() {
        this.set(slot.served?.loadSeconds ?? 0);
      },
    }),
  };
}

/** Starts the HTTP server over `slot`; resolves once it listens. */
export async function startHttpServer(slot: ModelSlot, options: ServerOptions, registry = new Registry()): Promise<RunningServer> {
  collectDefaultMetrics({ register: registry });
  const m = serveMetrics(registry, slot);
  const { log } = options;
  const name = slot.reference.replace(/@.*$/, '');

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (req.method === 'GET' && path === '/healthz') {
      const served = slot.served;
      if (!served || served.model.broken) return json(res, 503, { status: 'unavailable', reason: served?.model.broken ?? 'loading' });
      return json(res, 200, { status: 'ok', model: name, version: served.version.version, engine: served.model.engine, kind: served.model.kind, loadedAt: served.loadedAt.toISOString() });
    }
    if (req.method === 'GET' && path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      return void res.end(text);
    }
    if (req.method === 'GET' && path === '/v1/models') {
      const served = slot.served;
      return json(res, 200, { object: 'list', data: served ? [{ id: name, object: 'model', created: Math.floor(new Date(served.version.createdAt).getTime() / 1000), owned_by: 'tempered', version: served.version.version, kind: served.model.kind }] : [] });
    }
    const handler = POST_ROUTES[path];
    if (!handler) return fail(res, 404, `no route ${req.method} ${path}; routes: POST /v1/completions, /v1/chat/completions, /v1/classify; GET /v1/models, /healthz, /metrics`, 'not_found');
    if (req.method !== 'POST') return fail(res, 405, `${path} takes POST`, 'method_not_allowed');
    const body = await readJson(req);
    if (!slot.served) return fail(res, 503, 'the model is still loading; /healthz says when it is ready', 'unavailable');
    return slot.use((served) => handler(served, body, req, res));
  };

  const POST_ROUTES: Record<string, (served: Served, body: unknown, req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    '/v1/completions': async (served, body, req, res) => {
      const request = parse(completionRequest, body);
      const model = languageModel(served, request.model);
      const prompt = typeof request.prompt === 'string' ? request.prompt : request.prompt[0];
      await generate(served, request, req, res, 'text_completion', (o) => model.complete(prompt, o));
    },
    '/v1/chat/completions': async (served, body, req, res) => {
      const request = parse(chatRequest, body);
      const model = languageModel(served, request.model);
      const messages: ChatMessage[] = request.messages.map((message) => ({
        role: message.role === 'developer' ? 'system' : message.role,
        content: typeof message.content === 'string' ? message.content : message.content.map((part) => part.text).join(''),
      }));
      if (messages.at(-1)!.role !== 'user') throw new RequestError('the last message must be the user\'s: the model replies to it', 'messages');
      await generate(served, request, req, res, 'chat.completion', (o) => model.chat(messages, o));
    },
    '/v1/classify': async (served, body, _req, res) => {
      const request = parse(classifyRequest, body);
      checkModel(served, request.model);
      if (served.model.kind !== 'classifier') throw new RequestError(`${name} v${served.version.version} is a language model: use /v1/completions or /v1/chat/completions`, 'model');
      const texts = typeof request.input === 'string' ? [request.input] : request.input;
      const predictions = await served.model.classify(texts);
      m.texts.inc(texts.length);
      tagVersion(res, served);
      json(res, 200, { object: 'list', model: modelId(served), data: predictions.map((p, index) => ({ index, label: p.label, scores: p.scores })) });
    },
  };

  /** A language model's answer, whole or streamed as server-sent events. */
  const generate = async (
    served: Served,
    request: z.infer<typeof completionRequest> | z.infer<typeof chatRequest>,
    req: IncomingMessage,
    res: ServerResponse,
    object: 'text_completion' | 'chat.completion',
    run: (options: GenerateOptions) => Promise<Generation>,
  ): Promise<void> => {
    const id = `${object === 'chat.completion' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const aborted = new AbortController();
    res.on('close', () => aborted.abort());
    const options: GenerateOptions = {
      maxTokens: request.max_completion_tokens ?? request.max_tokens ?? (object === 'chat.completion' ? 256 : 16),
      temperature: request.temperature ?? 1,
      topP: request.top_p,
      seed: request.seed,
      stop: typeof request.stop === 'string' ? [request.stop] : request.stop,
      signal: aborted.signal,
    };
    const chat = object === 'chat.completion';
    const base = { id, created, model: modelId(served) };
    tagVersion(res, served);
    if (!request.stream) {
      const result = await run(options);
      count(result);
      const choice = chat ? { index: 0, message: { role: 'assistant', content: result.text }, finish_reason: result.finishReason } : { index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason };
      return json(res, 200, { ...base, object, choices: [choice], usage: usage(result) });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const chunkObject = chat ? 'chat.completion.chunk' : 'text_completion';
    const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    if (chat) send({ ...base, object: chunkObject, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    const piece = (text: string, finish: string | null) => (chat ? { index: 0, delta: text ? { content: text } : {}, finish_reason: finish } : { index: 0, text, logprobs: null, finish_reason: finish });
    try {
      const result = await run({ ...options, onText: (text) => send({ ...base, object: chunkObject, choices: [piece(text, null)] }) });
      count(result);
      send({ ...base, object: chunkObject, choices: [piece('', result.finishReason)], usage: usage(result) });
      res.end('data: [DONE]\n\n');
    } catch (err) {
      // Headers are gone: the error travels as an event, as OpenAI's streams do.
      send({ error: { message: (err as Error).message, type: 'server_error', param: null, code: null } });
      res.end('data: [DONE]\n\n');
      if (!aborted.signal.aborted) log(`serve: a streamed answer failed: ${(err as Error).stack ?? (err as Error).message}`);
      throw Object.assign(err as Error, { reported: true });
    }
  };

  const count = (result: Generation) => {
    m.tokens.inc({ kind: 'prompt' }, result.promptTokens);
    m.tokens.inc({ kind: 'completion' }, result.completionTokens);
  };

  const languageModel = (served: Served, requested: string | undefined): LanguageModel => {
    checkModel(served, requested);
    if (served.model.kind !== 'language') throw new RequestError(`${name} v${served.version.version} is a classifier: use POST /v1/classify with {"input": "..."}`, 'model');
    return served.model;
  };

  /** A request may name the model as served (`name`, the reference, or `name@<version serving>`), or not at all. */
  const checkModel = (served: Served, requested: string | undefined) => {
    if (requested === undefined || requested === name || requested === slot.reference || requested === modelId(served) || requested === `${name}@v${served.version.version}`) return;
    throw new RequestError(`this server serves "${name}" (now version ${served.version.version}), not "${requested}"; leave "model" out or name "${name}"`, 'model', 404, 'model_not_found');
  };

  let closing = false;
  const server = createServer((req, res) => {
    // Stopping: answer what is asked on open connections, and close each after its answer.
    if (closing) res.setHeader('connection', 'close');
    const path = (req.url ?? '/').split('?')[0];
    const routeLabel = ['/healthz', '/metrics', '/v1/models', '/v1/completions', '/v1/chat/completions', '/v1/classify'].includes(path) ? path : 'other';
    const endTimer = m.latency.startTimer({ route: routeLabel });
    m.inFlight.inc();
    res.on('close', () => {
      m.inFlight.dec();
      endTimer();
      m.requests.inc({ route: routeLabel, status: String(res.statusCode) });
    });
    route(req, res, path).catch((err: Error & { reported?: boolean }) => {
      if (err.reported) return;
      if (err instanceof RequestError) return fail(res, err.status, err.message, err.code, err.param);
      if (err instanceof BodyError) return fail(res, err.status, err.message, 'invalid_request');
      if (res.destroyed) return; // the client left; its answer was stopped, not failed
      options.log(`serve: ${req.method} ${path} failed: ${err.stack ?? err.message}`);
      fail(res, 500, `the model failed to answer: ${err.message}`, 'server_error', undefined, 'server_error');
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    metrics: registry,
    close: (graceMs = 30_000) =>
      new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        server.closeIdleConnections();
        // Keep-alive connections that were busy go once their answers end; any still open after the grace are cut.
        const idle = setInterval(() => server.closeIdleConnections(), 250);
        const cut = setTimeout(() => server.closeAllConnections(), graceMs);
        server.once('close', () => (clearInterval(idle), clearTimeout(cut)));
      }),
  };
}

function modelId(served: Served): string {
  return `${served.version.name}@${served.version.version}`;
}

function tagVersion(res: ServerResponse, served: Served): void {
  res.setHeader('x-tempered-model-version', String(served.version.version));
}

function usage(result: Generation) {
  return { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, message: string, code: string, param?: string, type = 'invalid_request_error'): void {
  json(res, status, { error: { message, type, param: param ?? null, code } });
}

class BodyError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_BODY_BYTES) throw new BodyError(`the request body is over ${MAX_BODY_BYTES / 1048576} MiB; send fewer texts per request`, 413);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BodyError(`the request body is not JSON (${(err as Error).message}); send a JSON object with content-type application/json`, 400);
  }
}

/** The body as `schema` wants it, or a RequestError naming every field that is wrong. */
export function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : 'body'}: ${issue.message}`);
  throw new RequestError(problems.join('; '), parsed.error.issues[0]?.path.join('.') || undefined);
}

export const REQUEST_SCHEMAS = { completionRequest, chatRequest, classifyRequest };
