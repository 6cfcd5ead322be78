/** One dataset record, as stored one per line in a JSONL artifact. */
export interface DataRecord {
  /** Stable across runs: from the source's id field, or derived from source path and position. */
  id: string;
  text: string;
  /** Class label, when the dataset has one. */
  label?: string;
  /** Provenance and lineage (source path, line, `augmentedFrom`, ...). */
  meta?: Record<string, unknown>;
}
