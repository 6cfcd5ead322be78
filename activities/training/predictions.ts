// What an evaluate stage stores per record, for the report's bootstrap intervals and samples.

/** The output under which `evaluate` returns its per-record predictions (JSONL). */
export const PREDICTIONS_OUTPUT = 'predictions';

/**
 * One line of an evaluation's predictions: the record, its true and its predicted label, the start
 * of its text. For generations (torch sft and causal-lm with bleu/rouge): `label` is the reference,
 * `predicted` the generated text, `text` the prompt's start, and `rougeL` the record's ROUGE-L F1.
 */
export interface PredictionRow {
  id: string;
  label: string;
  predicted: string;
  text: string;
  rougeL?: number;
}

/** The first 240 characters of a text, on one line: enough to recognise a record in the report. */
export function textSnippet(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 240 ? `${line.slice(0, 239)}…` : line;
}
