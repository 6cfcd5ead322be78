import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { pythonRunEnv } from '../../infra/python-env';
import type { ModelJob } from '../../activities/torch/model';
import { ServeError, type Classifier, type Prediction } from './engine';

// A torch classifier kept loaded in one Python process (python/tempered_torch/serve.py), spoken to
// in JSON lines. Requests that arrive while it computes wait and go together as the next batch, so
// concurrent clients share forward passes instead of queueing one by one.

/** Texts in one forward pass at most. */
const MAX_BATCH = 64;

interface Waiting {
  texts: string[];
  resolve: (p: Prediction[]) => void;
  reject: (err: Error) => void;
}

export async function startTorchClassifier(python: string, job: ModelJob, work: string, threads?: number): Promise<Classifier> {
  const dir = await mkdtemp(path.join(work, 'torch-serve-'));
  const jobFile = path.join(dir, 'job.json');
  await writeFile(jobFile, JSON.stringify({ ...job, ...(threads ? { threads } : {}) }));
  const child = spawn(python, ['-m', 'tempered_torch.serve', jobFile], { cwd: dir, env: pythonRunEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  // A write to a process that just died fails with EPIPE: its exit, below, answers the requests.
  child.stdin!.on('error', () => undefined);
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > 20) stderr.shift();
  });
  const lines = createInterface({ input: child.stdout! });
  const queue: Waiting[] = [];
  let inFlight: { id: number; parts: Waiting[] } | undefined;
  let nextId = 1;
  let ready: (labels: string[]) => void;
  let failedToStart: (err: Error) => void;
  const started = new Promise<string[]>((resolve, reject) => ((ready = resolve), (failedToStart = reject)));
  let device = 'cpu';

  const classifier: Classifier = {
    kind: 'classifier',
    engine: 'torch',
    labels: [],
    classify(texts) {
      if (classifier.broken) return Promise.reject(new Error(classifier.broken));
      if (texts.length === 0) return Promise.resolve([]);
      return new Promise((resolve, reject) => {
        queue.push({ texts, resolve, reject });
        sendNext();
      });
    },
    async dispose() {
      classifier.broken ??= 'disposed';
      child.stdin!.end();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      if (child.exitCode === null && child.signalCode === null) await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };

  function sendNext(): void {
    if (inFlight || queue.length === 0 || classifier.broken) return;
    const parts: Waiting[] = [];
    let count = 0;
    while (queue.length > 0 && (parts.length === 0 || count + queue[0].texts.length <= MAX_BATCH)) {
      const part = queue.shift()!;
      parts.push(part);
      count += part.texts.length;
    }
    inFlight = { id: nextId++, parts };
    child.stdin!.write(`${JSON.stringify({ id: inFlight.id, texts: parts.flatMap((p) => p.texts) })}\n`);
  }

  lines.on('line', (line) => {
    let message: { tempered?: string; labels?: string[]; device?: string; id?: number; predictions?: Prediction[]; error?: string } | null;
    try {
      message = JSON.parse(line);
    } catch {
      return; // a library's print, not an answer
    }
    if (typeof message !== 'object' || message === null) return;
    if (message.tempered === 'ready') {
      device = message.device ?? device;
      return ready(message.labels ?? []);
    }
    if (!inFlight || message.id !== inFlight.id) return;
    const { parts } = inFlight;
    inFlight = undefined;
    if (message.error || !message.predictions) {
      for (const part of parts) part.reject(new Error(`the torch classifier failed: ${message.error ?? 'no predictions'}`));
    } else {
      let at = 0;
      for (const part of parts) {
        part.resolve(message.predictions.slice(at, at + part.texts.length));
        at += part.texts.length;
      }
    }
    sendNext();
  });

  child.on('exit', (code, signal) => {
    const why = `the torch classifier process ${signal ? `was killed by ${signal}` : `exited with code ${code}`}${stderr.length ? `: ${stderr.slice(-5).join(' | ')}` : ''}`;
    classifier.broken ??= why;
    failedToStart(code === 3 ? new ServeError(stderr.at(-1)?.replace(/^tempered_torch: /, '') ?? why) : new Error(why));
    for (const part of [...(inFlight?.parts ?? []), ...queue.splice(0)]) part.reject(new Error(why));
    inFlight = undefined;
  });
  child.on('error', (err) => failedToStart(err));

  try {
    classifier.labels = await started;
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  classifier.engine = `torch (${device})`;
  return classifier;
}

