// What an evaluate stage stores per record, for the report's bootstrap intervals and samples.

/** The output under which `evaluate` returns its per-record predictions (JSONL). */
export const PREDICTIONS_OUTPUT = 'predictions';

/** One line of an evaluation's predictions: the record, its true and its predicted label, the start of its text. */
export interface PredictionRow {
  id: string;
  label: string;
  predicted: string;
  text: string;
}

/** The first 240 characters of a text, on one line: enough to recognise a record in the report. */
export function textSnippet(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 240 ? `${line.slice(0, 239)}…` : line;
}
