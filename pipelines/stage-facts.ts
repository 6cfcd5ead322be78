import type { z } from 'zod';
import {
  AugmentOptionsSchema,
  ChampionOptionsSchema,
  CleanOptionsSchema,
  CollectOptionsSchema,
  CommandOptionsSchema,
  DistillOptionsSchema,
  EvaluateOptionsSchema,
  FinetuneOptionsSchema,
  NoopOptionsSchema,
  PromoteOptionsSchema,
  QuantizeOptionsSchema,
  ReplayOptionsSchema,
  SplitOptionsSchema,
  TokenizerOptionsSchema,
} from './stage-types';

// One row per stage type: everything the rest of Tempered knows about a type without running it.
// Adding a type is a row here and its implementation in activities/stage-implementations.ts; the
// compiler finds every other place (both are records keyed by the type).

/** What Tempered may assume of a stage type. */
export interface StageFacts {
  /** The type's own options; the keys every stage shares (input, retry, timeout, …) come from schema.ts. */
  options: z.ZodObject;
  /**
   * Where an attempt's work runs: `thread` — a worker thread of its own, so the worker's event loop
   * stays free (ARCHITECTURE.md, invariant 9); `main` — the worker's thread, for types that wait
   * rather than compute (a sleep, a supervised child process).
   */
  compute: 'thread' | 'main';
  /** What its outputs are: `data` (records or splits), `tokenizer`, `model` (loadable by evaluate, distill, quantize, finetune `from`), `evaluation`, `decision` (promote), `files` (command: whatever it declares), `nothing`. */
  produces: 'data' | 'tokenizer' | 'model' | 'evaluation' | 'decision' | 'files' | 'nothing';
}

export const STAGE_FACTS = {
  collect: { options: CollectOptionsSchema, compute: 'thread', produces: 'data' },
  clean: { options: CleanOptionsSchema, compute: 'thread', produces: 'data' },
  augment: { options: AugmentOptionsSchema, compute: 'thread', produces: 'data' },
  split: { options: SplitOptionsSchema, compute: 'thread', produces: 'data' },
  noop: { options: NoopOptionsSchema, compute: 'main', produces: 'nothing' },
  tokenizer: { options: TokenizerOptionsSchema, compute: 'thread', produces: 'tokenizer' },
  finetune: { options: FinetuneOptionsSchema, compute: 'thread', produces: 'model' },
  evaluate: { options: EvaluateOptionsSchema, compute: 'thread', produces: 'evaluation' },
  distill: { options: DistillOptionsSchema, compute: 'thread', produces: 'model' },
  quantize: { options: QuantizeOptionsSchema, compute: 'thread', produces: 'model' },
  command: { options: CommandOptionsSchema, compute: 'main', produces: 'files' },
  replay: { options: ReplayOptionsSchema, compute: 'thread', produces: 'data' },
  champion: { options: ChampionOptionsSchema, compute: 'thread', produces: 'model' },
  promote: { options: PromoteOptionsSchema, compute: 'thread', produces: 'decision' },
} as const satisfies Record<string, StageFacts>;

/** A stage type: `collect`, `clean`, …, the activity's name too. */
export type StageType = keyof typeof STAGE_FACTS;

export const STAGE_TYPES = Object.keys(STAGE_FACTS) as StageType[];

/** The validated options of a stage of type `T`, defaults applied: what its implementation receives as `config`. */
export type StageOptions<T extends StageType> = z.output<(typeof STAGE_FACTS)[T]['options']>;

/** The types whose outputs hold a model. */
export const MODEL_STAGE_TYPES: ReadonlySet<StageType> = new Set(STAGE_TYPES.filter((type) => STAGE_FACTS[type].produces === 'model'));
