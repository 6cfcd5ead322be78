import { Gpt } from '../../../activities/ml/model';
import {
  checkTrainingFits,
  countParameters,
  defaultMemoryLimitBytes,
  estimateTrainingBytes,
  formatBytes,
  memoryLimitBytes,
  ModelTooLargeError,
  WASM_HEAP_LIMIT_BYTES,
} from '../../../activities/training/memory';
import { useWasm } from '../ml/helpers';

const GiB = 2 ** 30;
/** The demo's small GPT. */
const SMALL = { vocabSize: 2000, context: 128, layers: 2, dModel: 128, heads: 4, mlpRatio: 4 };
/** GPT-3 2.7B-like: far beyond a CPU worker, and beyond one 80 GB GPU with AdamW in float32. */
const HUGE = { vocabSize: 2000, context: 4096, layers: 48, dModel: 4096, heads: 32, mlpRatio: 4 };

beforeAll(useWasm);

test.each([
  { vocabSize: 23, context: 12, layers: 2, dModel: 16, heads: 2 },
  { vocabSize: 300, context: 32, layers: 3, dModel: 24, heads: 3, mlpRatio: 2, numClasses: 3 },
])('countParameters equals the model parameter count (%o)', (config) => {
  const gpt = new Gpt(config, { seed: 1 });
  try {
    expect(countParameters(config)).toBe(gpt.parameterCount());
  } finally {
    gpt.dispose();
  }
});

test('the estimate is four float32 copies of every parameter plus one micro-batch of activations', () => {
  const state = countParameters(SMALL) * 4 * 4;
  const small = estimateTrainingBytes(SMALL, 16, 'causal-lm');
  expect(small).toBeGreaterThan(state);
  // The demo model trains in well under a gigabyte.
  expect(small).toBeLessThan(0.5 * GiB);
  // Activations grow with the batch, the parameter state does not.
  expect(estimateTrainingBytes(SMALL, 32, 'causal-lm') - state).toBeCloseTo(2 * (small - state), -6);
  // causal-lm keeps B·T·V logits three times; a classifier's head is tiny.
  const classify = estimateTrainingBytes({ ...SMALL, numClasses: 2 }, 16, 'classify');
  expect(small - classify).toBeGreaterThanOrEqual(3 * 16 * 128 * 2000 * 4 - 3 * 16 * 2 * 4 - 2 * 128 * 4 * 4 - 2 * 4 * 4);
  // ~9.7 billion parameters: 16 bytes each is over 140 GiB before any activation.
  expect(countParameters(HUGE)).toBeGreaterThan(9.6e9);
  expect(estimateTrainingBytes(HUGE, 16, 'causal-lm')).toBeGreaterThan(140 * GiB);
});

test('checkTrainingFits passes what fits and throws a non-retryable ModelTooLargeError with the estimate, the limit and the fix', () => {
  expect(() => checkTrainingFits(estimateTrainingBytes(SMALL, 16, 'causal-lm'), 4 * GiB)).not.toThrow();
  let error: unknown;
  try {
    checkTrainingFits(estimateTrainingBytes(HUGE, 16, 'causal-lm'), 16 * GiB);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ModelTooLargeError);
  const tooLarge = error as ModelTooLargeError;
  expect(tooLarge.name).toBe('ModelTooLargeError');
  expect(tooLarge.nonRetryable).toBe(true);
  expect(tooLarge.limitBytes).toBe(16 * GiB);
  expect(tooLarge.message).toMatch(/^training this model needs an estimated \d+\.\d [GT]iB .* more than the 16\.0 GiB this worker allows; /);
  expect(tooLarge.message).toContain('make the model smaller (dModel, layers, context) or lower batchSize');
  expect(tooLarge.message).toContain('GPU node with more memory');
  expect(tooLarge.message).toContain('TEMPERED_MEMORY_LIMIT_BYTES');
});

test('the limit defaults to TEMPERED_MEMORY_LIMIT_BYTES, else 80% of RAM', () => {
  const saved = process.env.TEMPERED_MEMORY_LIMIT_BYTES;
  try {
    delete process.env.TEMPERED_MEMORY_LIMIT_BYTES;
    const defaultLimit = defaultMemoryLimitBytes();
    expect(defaultLimit).toBe(Math.floor(require('node:os').totalmem() * 0.8));
    process.env.TEMPERED_MEMORY_LIMIT_BYTES = String(1024 ** 2);
    expect(defaultMemoryLimitBytes()).toBe(1024 ** 2);
    expect(() => checkTrainingFits(estimateTrainingBytes(SMALL, 16, 'causal-lm'))).toThrow(/more than the 1\.0 MiB this worker allows/);
    process.env.TEMPERED_MEMORY_LIMIT_BYTES = 'lots';
    expect(defaultMemoryLimitBytes()).toBe(defaultLimit);
  } finally {
    if (saved === undefined) delete process.env.TEMPERED_MEMORY_LIMIT_BYTES;
    else process.env.TEMPERED_MEMORY_LIMIT_BYTES = saved;
  }
});

test('on the wasm backend the limit is at most its 4 GiB heap, and the message says so', () => {
  const saved = process.env.TEMPERED_MEMORY_LIMIT_BYTES;
  try {
    process.env.TEMPERED_MEMORY_LIMIT_BYTES = String(64 * GiB);
    expect(memoryLimitBytes('tfjs-node-gpu')).toBe(64 * GiB);
    expect(memoryLimitBytes('wasm')).toBe(WASM_HEAP_LIMIT_BYTES);
    // ~730M parameters: 11 GiB of AdamW state fits 64 GiB, not the wasm heap.
    const medium = { vocabSize: 2000, context: 512, layers: 12, dModel: 2240, heads: 32 };
    const estimate = estimateTrainingBytes(medium, 4, 'causal-lm');
    expect(() => checkTrainingFits(estimate, memoryLimitBytes('tfjs-node-gpu'))).not.toThrow();
    expect(() => checkTrainingFits(estimate, memoryLimitBytes('wasm'))).toThrow(/more than the 4\.0 GiB this worker allows \(the most the WebAssembly backend can address\); /);
    process.env.TEMPERED_MEMORY_LIMIT_BYTES = String(GiB);
    expect(memoryLimitBytes('wasm')).toBe(GiB);
  } finally {
    if (saved === undefined) delete process.env.TEMPERED_MEMORY_LIMIT_BYTES;
    else process.env.TEMPERED_MEMORY_LIMIT_BYTES = saved;
  }
});

test('formatBytes uses binary units', () => {
  expect(formatBytes(512)).toBe('512 bytes');
  expect(formatBytes(1536)).toBe('1.5 KiB');
  expect(formatBytes(155 * GiB)).toBe('155.0 GiB');
});
