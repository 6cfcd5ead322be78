import type { StageProgress } from '../workflows/types';

// The few numbers worth a glance for a finished stage, by its type: what `status` and `run --wait`
// print beside each stage (records kept, split sizes, loss, accuracy/F1, size reduction).

type Values = Record<string, unknown>;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const fixed = (v: number, digits: number) => v.toFixed(digits);
const count = (v: number) => v.toLocaleString('en-US');
const percent = (v: number) => `${(v * 100).toFixed(1)}%`;

/** `label value` pairs for the values present; absent or non-numeric ones are left out. */
function pairs(entries: Array<[string, number | undefined, (v: number) => string]>): string[] {
  return entries.flatMap(([label, value, show]) => (value === undefined ? [] : [`${label} ${show(value)}`]));
}

const BY_TYPE: Record<string, (m: Values) => string[]> = {
  collect: (m) => pairs([['records', num(m.records), count]]),
  clean: (m) => pairs([['kept', num(m.output), count], ['of', num(m.input), count]]),
  augment: (m) => pairs([['records', num(m.output), count], ['from', num(m.input), count]]),
  split: (m) => {
    const counts = (m.counts ?? {}) as Values;
    return Object.keys(counts).length > 0 ? [Object.entries(counts).map(([name, n]) => `${name} ${typeof n === 'number' ? count(n) : '?'}`).join(' / ')] : [];
  },
  tokenizer: (m) => pairs([['vocab', num(m.vocabSize), count]]),
  finetune: training,
  distill: (m) => [...training(m), ...pairs([['student/teacher', num(m.studentTeacherRatio), (v) => fixed(v, 3)]])],
  evaluate: (m) =>
    pairs([
      ['accuracy', num(m.accuracy), (v) => fixed(v, 3)],
      ['macro-F1', num(m.macroF1), (v) => fixed(v, 3)],
      ['perplexity', num(m.perplexity), (v) => fixed(v, 2)],
      ['BLEU', num(m.bleu), (v) => fixed(v, 3)],
      ['examples', num(m.examples), count],
    ]),
  quantize: (m) =>
    pairs([
      ['size', num(m.reduction), (v) => `-${percent(v)}`],
      [`${typeof m.metric === 'string' ? m.metric : 'metric'} Δ`, num(m.metricDelta), (v) => `${v >= 0 ? '+' : ''}${fixed(v, 4)}`],
    ]),
  promote: (m) => [
    ...(typeof m.promoted === 'boolean' ? [m.promoted ? `promoted v${String(m.candidateVersion ?? '?')}` : `kept champion v${String(m.championVersion ?? '-')}`] : []),
    ...pairs([[`${typeof m.metric === 'string' ? m.metric : 'metric'} gain`, num(m.gain), (v) => `${v >= 0 ? '+' : ''}${fixed(v, 4)}`]]),
  ],
  command: (m) => {
    const curve = (m.curve ?? {}) as { last?: Values };
    const last = curve.last ?? {};
    return pairs([
      ['exit', num(m.exitCode), String],
      ['loss', num(last.loss), (v) => fixed(v, 4)],
      ['files out', num(m.outputFiles), count],
    ]);
  },
};

function training(m: Values): string[] {
  const final = (m.final ?? {}) as Values;
  return pairs([
    ['steps', num(m.steps), count],
    ['val loss', num(final.valLoss), (v) => fixed(v, 4)],
    ['val acc', num(final.valAccuracy), (v) => fixed(v, 3)],
    ['val F1', num(final.valF1), (v) => fixed(v, 3)],
    ['tok/s', num(m.tokensPerSec), (v) => count(Math.round(v))],
  ]);
}

/** Key metrics of a finished (succeeded or cached) stage, e.g. `accuracy 0.962  macro-F1 0.953  examples 1,928`. */
export function keyMetrics(stage: Pick<StageProgress, 'type' | 'metrics'>): string[] {
  return BY_TYPE[stage.type]?.(stage.metrics as Values) ?? [];
}
