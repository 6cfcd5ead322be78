import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ArtifactRef } from '../../workflows/types';
import { packWeights } from '../ml/checkpoint';
import { LN_EPS, type ResolvedModelConfig } from '../ml/model';
import type { BpeTokenizer } from '../ml/tokenizer';
import type { ArtifactStore } from '../store';
import { DESCRIPTOR } from '../torch/common';
import { loadModelArtifacts, type ModelDescriptor } from '../training/model-artifacts';
import { ExportError } from './errors';
import { runExportModule } from './python';

// A tfjs-engine model as a Hugging Face GPT-2 checkpoint directory that plain `transformers` loads
// (GPT2LMHeadModel / AutoTokenizer .from_pretrained) and that computes the same logits.
//
// The model (activities/ml/model.ts) is GPT-2's architecture: learned positions, pre-LN blocks,
// fused q/k/v, [in, out] weights like GPT-2's Conv1D and GPT-2's weight names, the LM head tied to
// wte. What has to be matched by hand:
//   - GELU is the tanh approximation: GPT-2's `gelu_new` (not `gelu`, the exact erf form);
//   - LayerNorm's epsilon, LN_EPS (1e-5);
//   - the MLP width, mlpRatio·dModel (`n_inner`), and dropout for anyone who fine-tunes on.
// Quantized models are exported dequantized (what Tempered itself computes with), LoRA models with
// their adapters merged (Tempered's own mergeLora).
//
// Classifiers: Tempered's head averages the final hidden states over the non-pad positions, while
// GPT2ForSequenceClassification reads the last non-pad position's: loaded that way the scores would
// silently differ. So a classifier exports as GPT2Model (its body, which plain transformers loads)
// plus `classifier.safetensors` (`score.weight` [classes, dModel], `score.bias`), with id2label and
// the pooling written into config.json: logits = mean(last_hidden_state[:length]) · scoreᵀ + bias.
//
// The tokenizer (activities/ml/tokenizer.ts) is byte-level BPE with GPT-2's pre-tokenizer, so it
// maps onto a `tokenizers` BPE model with a ByteLevel pre-tokenizer (add_prefix_space false) and the
// same vocabulary and merges; `split_special_tokens` keeps "<eos>" in text encoded as text, as
// Tempered does. What cannot map exactly (python/tempered_torch/export_tfjs.py refuses it): a
// special token spelled like an ordinary token the tokenizer also has, since a Hugging Face
// vocabulary holds one id per spelling. Merges never cross pre-tokens, so only a special token
// that is one pre-token (all letters, all digits or all symbols, like "##") can clash; "<eos>"
// (symbols, letters, symbols) and the other defaults never do. Known limit: the pre-tokenizer's \p{L}/\p{N} classes come from each
// side's Unicode tables (Node's ICU, Oniguruma's), which may disagree on characters assigned in
// the newest Unicode versions.

/** What exportTfjsModel wrote. */
export interface TfjsExport {
  /** File names in the output directory, sorted. */
  files: string[];
  /** The transformers class to load it with: GPT2LMHeadModel, or GPT2Model for a classifier. */
  architecture: string;
  /** What a user should know: merged adapters, dequantized weights, a classifier's head. */
  notes: string[];
}

/** GPT2Config's values for a Tempered model config; ids from its tokenizer. */
export function gpt2Config(config: ResolvedModelConfig, tokenizer: BpeTokenizer): Record<string, unknown> {
  return {
    vocab_size: config.vocabSize,
    n_positions: config.context,
    n_embd: config.dModel,
    n_layer: config.layers,
    n_head: config.heads,
    n_inner: config.mlpRatio * config.dModel,
    activation_function: 'gelu_new', // model.ts's gelu is the tanh approximation
    layer_norm_epsilon: LN_EPS,
    embd_pdrop: config.dropout,
    attn_pdrop: config.dropout,
    resid_pdrop: config.dropout,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    bos_token_id: tokenizer.bosId,
    eos_token_id: tokenizer.eosId,
    pad_token_id: tokenizer.padId,
  };
}

/**
 * Writes the tfjs model whose stage outputs (or registry version outputs) are `outputs` into
 * `outDir` as config.json, model.safetensors, generation_config.json (language models),
 * classifier.safetensors (classifiers), tokenizer.json and tokenizer_config.json. `python` is
 * Tempered's Python environment's interpreter (ensurePythonEnv).
 */
export async function exportTfjsModel(store: ArtifactStore, outputs: Record<string, ArtifactRef>, outDir: string, python: string, options: { peft?: boolean } = {}): Promise<TfjsExport> {
  if (outputs[DESCRIPTOR]) throw new ExportError(`these outputs are a torch model (${DESCRIPTOR}), not a tfjs one: export them with exportModel, which writes the stored Hugging Face checkpoint`);
  const missing = ['model', 'weights', 'tokenizer'].filter((name) => !outputs[name]);
  if (missing.length > 0) {
    throw new ExportError(`not a tfjs model: no ${missing.join(', ')} output (outputs: ${Object.keys(outputs).join(', ') || 'none'}); export a finetune, distill or quantize stage, or a registered model`);
  }
  const descriptor = await store.readJson<ModelDescriptor>(outputs.model);
  if (descriptor.format !== 'tempered-model' || descriptor.version !== 1) {
    throw new ExportError(`${outputs.model.uri} is not a tfjs model descriptor (format ${JSON.stringify(descriptor.format)}, version ${JSON.stringify(descriptor.version)}; expected tempered-model v1)`);
  }
  const notes: string[] = [];
  const peft = options.peft ? descriptor.lora?.options : undefined;
  if (options.peft) {
    if (!peft) throw new ExportError('this tfjs model has no LoRA adapters: it exports whole, as --format hf');
    if (descriptor.objective === 'classify') throw new ExportError("a tfjs classifier's LoRA adapters sit under a mean-pooling head no transformers class has: use --format hf (adapters merged)");
    notes.push(`PEFT LoRA adapters (rank ${peft.rank}, ${peft.targets.join(', ')}) over their base, exported as GPT-2 in base/: PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained("<dir>/base"), "<dir>")`);
  } else if (descriptor.lora) notes.push(`LoRA adapters (rank ${descriptor.lora.options.rank}, ${descriptor.lora.options.targets.join(', ')}) merged into the weights`);
  if (descriptor.quantized) notes.push('int8 weights exported dequantized to float32: the values Tempered computes with, at float32 size');

  const work = await mkdtemp(path.join(os.tmpdir(), 'tempered-tfjs-gpt2-'));
  try {
    const loaded = await loadModelArtifacts(store, outputs, { merge: !peft });
    let job: Record<string, unknown>;
    try {
      const { gpt, tokenizer, labels } = loaded;
      if (tokenizer.vocabSize > gpt.config.vocabSize) {
        throw new ExportError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${gpt.config.vocabSize} embeddings: the outputs mix a model and another tokenizer`);
      }
      const classifier = descriptor.objective === 'classify';
      if (classifier && !labels?.length) throw new ExportError(`${outputs.model.uri} is a classifier without labels; it cannot name its classes in config.json`);
      const weights = gpt.getWeights();
      if (!classifier) for (const name of Object.keys(weights)) if (name.startsWith('cls.')) delete weights[name]; // an LM's unused head
      // PEFT: the base's weights as the checkpoint in base/, the adapters apart.
      const adapters = peft ? Object.fromEntries(Object.entries(weights).filter(([name]) => name.includes('.lora_'))) : {};
      for (const name of Object.keys(adapters)) delete weights[name];
      const { index, data } = packWeights(weights);
      await writeFile(path.join(work, 'weights.bin'), data);
      job = { weights: 'weights.bin', tensors: index.tensors, gpt2: gpt2Config(gpt.config, tokenizer), tokenizer: tokenizer.toJSON(), labels: classifier ? labels : undefined, out_dir: path.resolve(peft ? path.join(outDir, 'base') : outDir) };
      if (peft) {
        const packed = packWeights(adapters);
        await writeFile(path.join(work, 'adapters.bin'), packed.data);
        job.peft = { weights: 'adapters.bin', tensors: packed.index.tensors, rank: peft.rank, alpha: peft.alpha, dropout: peft.dropout, targets: peft.targets, out_dir: path.resolve(outDir) };
      }
      if (classifier) notes.push(`classifier: load the body with GPT2Model; its head (${labels!.length} classes) is classifier.safetensors over the mean of the final hidden states at the non-pad positions (no transformers class pools that way)`);
    } finally {
      loaded.gpt.dispose();
    }
    const jobFile = path.join(work, 'job.json');
    await writeFile(jobFile, JSON.stringify(job));
    const result = await runExportModule<{ files: string[]; architecture: string }>(python, 'export_tfjs', [jobFile], work);
    return { files: result.files, architecture: peft ? 'peft-lora' : result.architecture, notes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
