/** Where augmentation finds synonyms. */
export interface SynonymSource {
  /** Synonyms of a lowercase word, without the word itself; empty when none are known. */
  synonyms(word: string): readonly string[];
}

/** A SynonymSource over an explicit table (keys matched lowercase): small vocabularies and tests. */
export function synonymsFromTable(table: Readonly<Record<string, readonly string[]>>): SynonymSource {
  const entries = new Map(Object.entries(table).map(([word, synonyms]) => [word.toLowerCase(), synonyms]));
  return { synonyms: (word) => entries.get(word.toLowerCase()) ?? [] };
}
