import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { exportModel } from '../../activities/export';
import { ExportError } from '../../activities/export/errors';
import { exportTfjsModel } from '../../activities/export/tfjs-gpt2';
import { initBackend } from '../../activities/ml/backend';
import { Gpt, type NamedWeights } from '../../activities/ml/model';
import { quantizeWeights, serializeQuantized } from '../../activities/ml/quantize';
import { Rng } from '../../activities/ml/rng';
import { trainBpe, type BpeTokenizer } from '../../activities/ml/tokenizer';
import { getVersion, registerVersion } from '../../activities/registry/model-registry';
import { FileArtifactStore } from '../../activities/store';
import { baseOf, loadModelArtifacts, saveModelArtifacts, type ModelDescriptor } from '../../activities/training/model-artifacts';
import { ensurePythonEnv, pythonRunEnv } from '../../infra/python-env';
import type { ArtifactRef } from '../../workflows/types';

// The tfjs → Hugging Face GPT-2 export with the real Python packages: tiny tfjs models built by
// Tempered's own code (every weight moved off its initial value, so a wrong name, transpose,
// epsilon or GELU shows), stored as the stages store them (a LoRA model over its base's weights,
// registered in the registry; an int8 model as the quantize stage stores it), exported, and loaded with plain transformers, which must give
// Tempered's token ids and logits.

const run = promisify(execFile);
const TOLERANCE = 1e-4;

const CORPUS = [
  "The quick brown fox jumps over the lazy dog. Don't we'll they've I'm you'd it's",
  'Invoice 2024-05-17: total 1,234.56 EUR, due in 30 days.\nPlease pay by transfer.',
  'naïve café résumé — 東京 και Ελλάδα 😀 emoji\ttab   spaces\n\n\nnewlines',
  'Re: the meeting; see you at 10:30 (room B) — thanks!!',
  'the the the then there these those three thousand',
];

/** Texts whose ids must agree: the corpus's kinds of text plus whitespace and Unicode edge cases. */
const TOKENIZER_TEXTS = [
  ...CORPUS,
  '',
  ' leading space and trailing  ',
  'a  b   c\n \n\t\r\n  x',
  'literal <eos> and <pad> stay text',
  "contractions: isn't, we're, O'Neil, 's 'S 'Re",
  'no\u00a0break\u3000ideographic\u2028line\u2029para\u0085nel\ufeffbom\u200bzwsp\u180emvs',
  'digits ١٢٣ ½ Ⅻ 42x 3.14',
  'Ǆemal ǅ ǆ Ǳ — title case; Ⓐ ⓑ circled',
  '👩‍👩‍👧 family, 🇫🇷 flag, e\u0301 combining',
  '     many spaces before',
  'a'.repeat(300),
];

/** Texts whose logits must agree (each a few to a context's worth of tokens, no padding). */
const LOGIT_TEXTS = ['The quick brown fox', 'Invoice 2024: total 1,234.56 EUR', 'naïve café 😀\n\nnew', "Don't we'll they've", 'the'];

let python: string;
let dir: string;
let store: FileArtifactStore;
let tokenizer: BpeTokenizer;
let tokenizerRef: ArtifactRef;
const models: Record<string, Record<string, ArtifactRef>> = {};

beforeAll(async () => {
  python = (await ensurePythonEnv()).python;
  await initBackend('cpu');
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-export-tfjs-'));
  store = new FileArtifactStore(path.join(dir, 'store'));
  tokenizer = trainBpe(CORPUS, { vocabSize: 420, minFrequency: 1 });
  tokenizerRef = await store.put('tok/tokenizer.json', JSON.stringify(tokenizer.toJSON()), 'application/json');
  const config = { vocabSize: tokenizer.vocabSize, context: 24, layers: 2, dModel: 32, heads: 4, padId: tokenizer.padId };

  const lm = new Gpt(config, { seed: 3 });
  lm.setWeights(jitter(lm.getWeights(), 'lm', 0.2));
  models.lm = await saveModelArtifacts(store, 'lm/', { gpt: lm, objective: 'causal-lm', tokenizer: tokenizerRef });
  lm.dispose();

  // LoRA on every target, over the stored lm, with B moved off zero so the adapters change the outputs.
  const descriptor = await store.readJson<ModelDescriptor>(models.lm.model);
  const base = baseOf(descriptor, models.lm)!;
  const lora = (await loadModelArtifacts(store, models.lm)).gpt;
  lora.applyLora({ rank: 2, alpha: 4, targets: ['query', 'key', 'value', 'output', 'mlpIn', 'mlpOut'] });
  lora.setLoraWeights(jitter(lora.loraWeights(), 'lora', 0.3));
  const loraOutputs = await saveModelArtifacts(store, 'lora/', { gpt: lora, objective: 'causal-lm', tokenizer: tokenizerRef, base });
  lora.dispose();
  const registered = await registerVersion(store, 'tiny-lora', { outputs: loraOutputs, metrics: {}, lineage: { runId: 'r1', pipeline: 'export', stage: 'lora' } });
  models.lora = (await getVersion(store, 'tiny-lora', registered.version)).outputs;

  // The int8 model as the quantize stage stores it (per-channel int8, dequantized when loaded).
  const float = (await loadModelArtifacts(store, models.lm)).gpt;
  const quantized = serializeQuantized(quantizeWeights(float.getWeights()));
  float.dispose();
  const int8Descriptor: ModelDescriptor = { ...descriptor, weightsIndex: undefined, quantized: quantized.index };
  models.int8 = {
    model: await store.put('int8/model.json', JSON.stringify(int8Descriptor), 'application/json'),
    weights: await store.put('int8/weights.int8', quantized.data, 'application/octet-stream'),
    tokenizer: tokenizerRef,
  };

  const classifier = new Gpt({ ...config, numClasses: 3 }, { seed: 4 });
  classifier.setWeights(jitter(classifier.getWeights(), 'cls', 0.2));
  models.classifier = await saveModelArtifacts(store, 'cls/', { gpt: classifier, objective: 'classify', labels: ['ham', 'spam', 'other'], tokenizer: tokenizerRef });
  classifier.dispose();
}, 600_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every value plus uniform noise in ±scale (seeded): biases and LayerNorm leave 0 and 1, LoRA's B leaves 0. */
function jitter(weights: NamedWeights, seed: string, scale: number): NamedWeights {
  const out: NamedWeights = {};
  for (const [name, w] of Object.entries(weights)) {
    const rng = Rng.fromSeed(7, `${seed}/${name}`);
    out[name] = { shape: w.shape, data: w.data.map((v) => v + scale * (2 * rng.next() - 1)) };
  }
  return out;
}

/** Tempered's next-token logits [T, V] for one unpadded text (its first `context` tokens). */
async function temperedLogits(outputs: Record<string, ArtifactRef>, text: string): Promise<number[][]> {
  const { gpt } = await loadModelArtifacts(store, outputs); // LoRA unmerged: the adapters run as in training
  try {
    const ids = tokenizer.encode(text).slice(0, gpt.config.context);
    return tf.tidy(() => gpt.forwardLm(tf.tensor2d([ids], [1, ids.length], 'int32')).arraySync()[0]);
  } finally {
    gpt.dispose();
  }
}

/** Runs a Python script in Tempered's environment with `args`; its stdout parsed as JSON. */
async function runPython<T>(script: string, ...args: string[]): Promise<T> {
  const { stdout } = await run(python, ['-c', script, ...args], { env: pythonRunEnv(), maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  expect(b.length).toBe(a.length);
  let max = 0;
  a.forEach((row, i) => {
    expect(b[i].length).toBe(row.length);
    row.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j]))));
  });
  return max;
}

const LM_SCRIPT = `
import sys, json, torch
from transformers import AutoTokenizer, GPT2LMHeadModel
model = GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
texts = json.loads(sys.argv[2])
out = {"ids": [tokenizer(t)["input_ids"] for t in texts], "decoded": [tokenizer.decode(tokenizer(t)["input_ids"]) for t in texts], "logits": []}
with torch.no_grad():
    for t in json.loads(sys.argv[3]):
        ids = tokenizer(t)["input_ids"][: model.config.n_positions]
        out["logits"].append(model(torch.tensor([ids])).logits[0].tolist())
print(json.dumps(out))
`;

describe.each(['lm', 'lora', 'int8'])('a tfjs %s model exported as GPT-2', (kind) => {
  let out: string;
  let exported: Awaited<ReturnType<typeof exportTfjsModel>>;
  let hf: { ids: number[][]; decoded: string[]; logits: number[][][] };

  beforeAll(async () => {
    out = path.join(dir, `out-${kind}`);
    exported = await exportTfjsModel(store, models[kind], out, python);
    hf = await runPython<typeof hf>(LM_SCRIPT, out, JSON.stringify(TOKENIZER_TEXTS), JSON.stringify(LOGIT_TEXTS));
  }, 300_000);

  test('is a GPT2LMHeadModel directory with the mapped config', async () => {
    expect(exported.architecture).toBe('GPT2LMHeadModel');
    expect(exported.files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']));
    const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, n_positions: 24, n_embd: 32, n_layer: 2, n_head: 4, n_inner: 128, vocab_size: tokenizer.vocabSize, pad_token_id: tokenizer.padId });
    expect(JSON.parse(await readFile(path.join(out, 'tokenizer_config.json'), 'utf8'))).toMatchObject({ tokenizer_class: 'PreTrainedTokenizerFast', split_special_tokens: true, model_max_length: 24 });
    if (kind === 'lora') expect(exported.notes.join('\n')).toMatch(/LoRA adapters .* merged/);
    if (kind === 'int8') expect(exported.notes.join('\n')).toMatch(/int8 weights exported dequantized/);
  });

  test("gives Tempered's token ids, and decodes back to the text", () => {
    TOKENIZER_TEXTS.forEach((text, i) => {
      expect({ text, ids: hf.ids[i] }).toEqual({ text, ids: tokenizer.encode(text) });
      expect(hf.decoded[i]).toBe(text);
    });
  });

  test(`gives Tempered's logits within ${TOLERANCE}`, async () => {
    for (const [i, text] of LOGIT_TEXTS.entries()) {
      const ours = await temperedLogits(models[kind], text);
      if (text !== 'the') expect(ours.length).toBeGreaterThan(1);
      expect(maxAbsDiff(ours, hf.logits[i])).toBeLessThan(TOLERANCE);
    }
  });
});

test("as GGUF (llama.cpp's GPT-2), it gives Tempered's token ids and logits within F16's rounding; a classifier is refused", async () => {
  const out = path.join(dir, 'out-gguf');
  const result = await exportModel(store, models.lm, { format: 'gguf', ggufType: 'f16', out, python });
  expect(result).toMatchObject({ engine: 'tfjs', architecture: 'GPT2LMHeadModel' });
  expect(result.files.map((f) => f.name)).toEqual(['model.f16.gguf']);
  // transformers' GGUF reader takes gpt2.context_length for n_ctx, not n_positions: given.
  const script = LM_SCRIPT.replace('GPT2LMHeadModel.from_pretrained(sys.argv[1])', 'GPT2LMHeadModel.from_pretrained(sys.argv[1], gguf_file="model.f16.gguf", n_positions=24)').replace(
    'AutoTokenizer.from_pretrained(sys.argv[1])',
    'AutoTokenizer.from_pretrained(sys.argv[1], gguf_file="model.f16.gguf")',
  );
  const gguf = await runPython<{ ids: number[][]; logits: number[][][] }>(script, out, JSON.stringify(TOKENIZER_TEXTS.slice(0, 8)), JSON.stringify(LOGIT_TEXTS));
  TOKENIZER_TEXTS.slice(0, 8).forEach((text, i) => expect({ text, ids: gguf.ids[i] }).toEqual({ text, ids: tokenizer.encode(text) }));
  for (const [i, text] of LOGIT_TEXTS.entries()) {
    const ours = await temperedLogits(models.lm, text);
    const scale = Math.max(...ours.flat().map(Math.abs));
    // F16 keeps 11 significant bits of each weight (python/tests/test_export_gguf.py measures ~1e-3 of the largest logit).
    expect(maxAbsDiff(ours, gguf.logits[i])).toBeLessThan(5e-3 * scale);
  }
  await expect(exportModel(store, models.classifier, { format: 'gguf', out: path.join(dir, 'out-gguf-cls'), python })).rejects.toThrow(/a tfjs classifier exports as GPT2Model .* use --format hf/);
}, 300_000);

test("a LoRA model as PEFT adapters over its GPT-2 base computes Tempered's logits; a model without adapters is refused", async () => {
  const out = path.join(dir, 'out-peft');
  const result = await exportModel(store, models.lora, { format: 'peft', out, python });
  expect(result).toMatchObject({ engine: 'tfjs', architecture: 'peft-lora' });
  expect(result.files.map((f) => f.name)).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'base/config.json', 'base/model.safetensors', 'base/tokenizer.json']));
  const script = `
import sys, json, torch
from peft import PeftModel
from transformers import AutoTokenizer, GPT2LMHeadModel
model = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(sys.argv[1] + "/base"), sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1] + "/base")
out = {"logits": []}
with torch.no_grad():
    for t in json.loads(sys.argv[2]):
        out["logits"].append(model(torch.tensor([tokenizer(t)["input_ids"][:24]])).logits[0].tolist())
print(json.dumps(out))
`;
  const peft = await runPython<{ logits: number[][][] }>(script, out, JSON.stringify(LOGIT_TEXTS));
  for (const [i, text] of LOGIT_TEXTS.entries()) expect(maxAbsDiff(await temperedLogits(models.lora, text), peft.logits[i])).toBeLessThan(TOLERANCE);
  await expect(exportModel(store, models.lm, { format: 'peft', out: path.join(dir, 'out-peft-none'), python })).rejects.toThrow(/has no LoRA adapters: it exports whole, as --format hf/);
}, 300_000);

test("a classifier exports as GPT2Model plus its mean-pooling head, which give Tempered's class logits", async () => {
  const out = path.join(dir, 'out-classifier');
  const exported = await exportTfjsModel(store, models.classifier, out, python);
  expect(exported.architecture).toBe('GPT2Model');
  expect(exported.files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'classifier.safetensors', 'tokenizer.json']));
  expect(exported.notes.join('\n')).toMatch(/mean of the final hidden states/);
  const script = `
import sys, json, torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
head = load_file(sys.argv[1] + "/classifier.safetensors")
batch = tokenizer(json.loads(sys.argv[2]), padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = model(**batch).last_hidden_state  # [B, T, C]
mask = batch["attention_mask"].unsqueeze(-1).float()
pooled = (hidden * mask).sum(1) / mask.sum(1)
print(json.dumps({"logits": (pooled @ head["score.weight"].T + head["score.bias"]).tolist(), "labels": model.config.id2label}))
`;
  const hf = await runPython<{ logits: number[][]; labels: Record<string, string> }>(script, out, JSON.stringify(LOGIT_TEXTS));
  expect(hf.labels).toEqual({ 0: 'ham', 1: 'spam', 2: 'other' });
  const { gpt } = await loadModelArtifacts(store, models.classifier);
  try {
    const rows = LOGIT_TEXTS.map((t) => tokenizer.encode(t));
    const T = Math.max(...rows.map((r) => r.length));
    const padded = rows.map((r) => [...r, ...Array<number>(T - r.length).fill(tokenizer.padId)]);
    const ours = tf.tidy(() => gpt.forwardClassify(tf.tensor2d(padded, [padded.length, T], 'int32'), rows.map((r) => r.length)).arraySync());
    expect(maxAbsDiff(ours, hf.logits)).toBeLessThan(TOLERANCE);
  } finally {
    gpt.dispose();
  }
}, 300_000);

test('bad input is refused with what to do', async () => {
  const out = path.join(dir, 'out-bad');
  await expect(exportTfjsModel(store, { 'torch-model.json': models.lm.model }, out, python)).rejects.toThrow(ExportError);
  await expect(exportTfjsModel(store, { tokenizer: tokenizerRef }, out, python)).rejects.toThrow(/not a tfjs model: no model, weights output/);
  // A special token spelled like an ordinary token (a symbols-only special token the corpus merges) has no Hugging Face form.
  const clashing = trainBpe(['a ## b ## c ## d ##'], { vocabSize: 300, minFrequency: 1, specialTokens: ['<pad>', '<bos>', '<eos>', '##'] });
  const ref = await store.put('tok2/tokenizer.json', JSON.stringify(clashing.toJSON()), 'application/json');
  const gpt = new Gpt({ vocabSize: clashing.vocabSize, context: 8, layers: 1, dModel: 8, heads: 2 });
  const outputs = await saveModelArtifacts(store, 'clash/', { gpt, objective: 'causal-lm', tokenizer: ref });
  gpt.dispose();
  await expect(exportTfjsModel(store, outputs, out, python)).rejects.toThrow(/special token\(s\) \['##'\] are spelled like ordinary tokens/);
}, 300_000);
