import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { registerTrainingKernels } from './kernels';

// Picks and initializes the TensorFlow.js backend for training. `@tensorflow/tfjs` (not -core) is
// imported for its side effect of registering gradients; without it every backward pass fails.
//
// wasm threads under Node. tfjs-backend-wasm disables its threaded build under Node (it would
// start pthread workers from blob: URLs, which Node's Worker cannot load). We enable it by hand:
//   1. the worker script is written to a file (the package ships it only as a JS string) behind
//      a one-line prelude that makes the worker load the main emscripten script from disk instead
//      of from the Blob it is sent;
//   2. while the backend initializes, `URL.createObjectURL` maps the worker Blob to that file;
//   3. XNNPACK caps its pool at half the logical cores (1 on a 2-core machine), so `os.cpus()`
//      is widened for the duration of the initialization to let `setThreadsCount(n)` take effect.
// Both patches are undone when the backend is ready. Emscripten starts a pool of 8 workers; we
// `unref()` them, so a process whose work is done exits on its own (no `process.exit` needed).
// Call `releaseBackend()` to terminate them explicitly (e.g. at the end of a worker's life).
// If the threaded build fails to start, wasm falls back to one thread and says so in `skipped`.
// The first wasm initialization fixes the thread count for the process.
//
// Threads pay off only when the cores are free: measured here, 2 threads train the 2-layer
// d=128 model 1.42× faster than 1 on an idle machine, the small model not at all, and under
// contention from other processes 2 threads were up to 2× slower. Pass `threads: 1` on shared
// machines.

/** Which backend to use; `auto` tries them in the order listed. */
export type BackendPreference = 'auto' | 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';

export interface BackendOptions {
  /** wasm threads. Default: the number of logical cores; 1 selects the single-threaded SIMD build (no workers). */
  threads?: number;
}

export interface BackendInfo {
  /** The backend in use, in `BackendPreference` terms. */
  name: Exclude<BackendPreference, 'auto'>;
  /** Threads the backend computes with (wasm: XNNPACK's pool as reported by the backend; cpu: 1; tfjs-node: the logical cores libtensorflow may use). */
  threads: number;
  /** What was skipped and why: preferred backends under `auto`, or wasm threads that failed to start (empty when everything asked for worked). */
  skipped: string[];
}

const TFJS_NAMES: Record<BackendInfo['name'], string> = {
  'tfjs-node-gpu': 'tensorflow',
  'tfjs-node': 'tensorflow',
  wasm: 'wasm',
  cpu: 'cpu',
};

const initialized = new Map<string, Promise<BackendInfo>>();

/**
 * Initializes and activates a backend. Idempotent: calling again with the same preference returns
 * the same backend (and re-activates it if another was activated in between).
 */
export function initBackend(preference: BackendPreference = 'auto', opts: BackendOptions = {}): Promise<BackendInfo> {
  let pending = initialized.get(preference);
  if (!pending) {
    pending = initialize(preference, opts);
    initialized.set(preference, pending);
    // `auto` and the backend it settled on share one initialization.
    void pending.then(
      (info) => initialized.set(info.name, initialized.get(info.name) ?? Promise.resolve(info)),
      () => initialized.delete(preference),
    );
  }
  return pending.then(async (info) => {
    if (tf.getBackend() !== TFJS_NAMES[info.name]) await tf.setBackend(TFJS_NAMES[info.name]);
    return info;
  });
}

async function initialize(preference: BackendPreference, opts: BackendOptions): Promise<BackendInfo> {
  const skipped: string[] = [];
  const order: Array<BackendInfo['name']> =
    preference === 'auto' ? ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] : [preference];
  for (const name of order) {
    try {
      const threads = await activate(name, opts, skipped);
      return { name, threads, skipped };
    } catch (error) {
      if (preference !== 'auto') throw error;
      skipped.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialized: ${skipped.join('; ')}`);
}

async function activate(name: BackendInfo['name'], opts: BackendOptions, skipped: string[]): Promise<number> {
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      // Not dependencies: GPU/native workers install them. A computed name keeps bundlers and
      // TypeScript from resolving them; a missing module simply moves `auto` on.
      require(`@tensorflow/${name}`);
      await setBackendOrThrow('tensorflow');
      return os.availableParallelism();
    case 'wasm':
      return activateWasm(opts.threads ?? os.availableParallelism(), skipped);
    case 'cpu':
      registerTrainingKernels('cpu');
      await setBackendOrThrow('cpu');
      return 1;
  }
}

async function setBackendOrThrow(tfName: string): Promise<void> {
  if (!(await tf.setBackend(tfName))) throw new Error(`tf.setBackend('${tfName}') failed`);
  await tf.ready();
}

async function activateWasm(threads: number, notes: string[]): Promise<number> {
  // Loaded lazily: requiring it registers the backend, which is all it does.
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  registerTrainingKernels('wasm');
  if (threads > 1) {
    try {
      return await activateThreadedWasm(wasm, threads);
    } catch (error) {
      notes.push(`wasm threads: ${(error as Error).message.split('\n')[0]}; using 1 thread`);
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      wasm.setThreadsCount(1);
    }
  }
  await setBackendOrThrow('wasm');
  return wasm.getThreadsCount();
}

async function activateThreadedWasm(wasm: typeof import('@tensorflow/tfjs-backend-wasm'), threads: number): Promise<number> {
  const workerFile = writeWorkerScript();
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  URL.createObjectURL = (blob: Blob) => (blob.type === 'application/javascript' ? workerFile : createObjectURL(blob));
  // `os` is the module object itself (default import), the one emscripten's `require('os')` sees.
  os.cpus = () => {
    const real = cpus();
    return Array.from({ length: Math.max(real.length, 2 * threads) }, (_, i) => real[i % real.length]);
  };
  try {
    await setBackendOrThrow('wasm');
  } finally {
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
  for (const worker of pthreadWorkers()) worker.unref();
  return wasm.getThreadsCount();
}

interface PThreadHost {
  PThread?: { unusedWorkers: Array<{ unref(): void }>; runningWorkers: Array<{ unref(): void }> };
}

function pthreadWorkers(): Array<{ unref(): void }> {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: PThreadHost } | null;
  const pthread = backend?.wasm?.PThread;
  return pthread ? [...pthread.unusedWorkers, ...pthread.runningWorkers] : [];
}

/** Writes the pthread worker script next to nothing else, once per package version; returns its path. */
function writeWorkerScript(): string {
  const pkgDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const version = (require('@tensorflow/tfjs-backend-wasm/package.json') as { version: string }).version;
  const mainScript = path.join(pkgDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const { wasmWorkerContents } = require(path.join(pkgDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js')) as {
    wasmWorkerContents: string;
  };
  // The worker receives the main script as a Blob and would load it through a blob: URL; the
  // prelude answers with the file on disk instead. Newlines inside the script's string literals
  // are escaped exactly as tfjs does when it builds the Blob.
  const prelude = `URL.createObjectURL=()=>${JSON.stringify(mainScript)};URL.revokeObjectURL=()=>{};\n`;
  const contents = prelude + wasmWorkerContents.replace(/\n/g, '\\n');
  const dir = path.join(os.tmpdir(), `tempered-tfjs-wasm-${version}-${process.getuid?.() ?? 'u'}`);
  const file = path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js');
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== contents) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, contents);
    fs.renameSync(tmp, file);
  }
  return file;
}

/** Terminates the wasm pthread workers (if any) by disposing the wasm backend; later calls to `initBackend` fail for wasm. */
export function releaseBackend(): void {
  if (tf.findBackend('wasm')) tf.removeBackend('wasm');
  initialized.clear();
}
