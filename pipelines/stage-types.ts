import { z } from 'zod';
import { duration } from './duration';

// Options of each stage type. Types are inferred from these schemas; nothing else defines them.

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
    /** S3-compatible endpoint for this source. Default: the store's endpoint / AWS default. */
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
  /** Regex applied to each file path; its `label` named group (or first group) becomes the label. */
  labelFromPath: z.string().optional(),
  /** For text files: one record per `file`, per blank-line-separated `paragraph`, or per `line`. Default `file`. */
  segment: z.enum(['file', 'paragraph', 'line']).default('file'),
  /** Keep at most this many records (after sampling). Default: all. */
  limit: z.number().int().positive().optional(),
  /** Keep each record with this probability (seeded). Default 1. */
  sample: z.number().gt(0).lte(1).default(1),
});
export type CollectOptions = z.infer<typeof CollectOptionsSchema>;

export const NearDedupSchema = z.strictObject({
  /** Estimated Jaccard similarity of word shingles at or above which two records are near-duplicates. Default 0.8. */
  threshold: z.number().gt(0).lte(1).default(0.8),
  /** Words per shingle. Default 5. */
  shingleSize: z.number().int().min(1).max(20).default(5),
  /** MinHash permutations; more is more precise and slower. Default 128. */
  numPermutations: z.number().int().min(16).max(1024).default(128),
  /** LSH bands; numPermutations must be divisible by it. Default 32. */
  bands: z.number().int().min(1).default(32),
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
  /** Drop RFC 822 headers (everything before the first blank line) of mail messages. Default false. */
  stripMailHeaders: z.boolean().default(false),
  /** Remove HTML tags, scripts and styles; decode entities. Default false. */
  stripHtml: z.boolean().default(false),
  /** Drop records shorter than this many characters after cleaning. Default 1. */
  minChars: z.number().int().min(0).default(1),
  /** Drop records longer than this many characters after cleaning. Default 100000. */
  maxChars: z.number().int().positive().default(100_000),
  /** Drop exact duplicates (after cleaning). Default true. */
  exactDedup: z.boolean().default(true),
  /** MinHash/LSH near-duplicate removal; `false` disables it. Default on, threshold 0.8. */
  nearDedup: z.union([z.literal(false), NearDedupSchema]).prefault({}),
  /** Redaction of sensitive data; `false` disables all of it. Default: everything redacted. */
  redact: z.union([z.literal(false), RedactSchema]).prefault({}),
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
});
export type SplitOptions = z.infer<typeof SplitOptionsSchema>;

export const NoopOptionsSchema = z.strictObject({
  /** Milliseconds to wait (heartbeating) before succeeding. Default 0. */
  sleepMs: z.number().int().min(0).default(0),
  /** Fail this many first attempts with a retryable error — for trying out retry policies. Default 0. */
  failAttempts: z.number().int().min(0).default(0),
});
export type NoopOptions = z.infer<typeof NoopOptionsSchema>;

export { duration };
