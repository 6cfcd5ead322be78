// Pure data functions behind the collect, clean, augment and split stages.
export type { DataRecord } from './record';
export * from './errors';
export { createRandom, seedFrom, shuffleInPlace, type Random } from './random';
export {
  collectRecords,
  type CollectContext,
  type CollectMetrics,
  type SourceMetrics,
} from './collect';
export type { TextEncodingPolicy } from './decode';
export {
  createS3SourceReader,
  type S3SourceObject,
  type S3SourceReader,
  type S3SourceReaderOptions,
} from './s3-source';
export { cleanRecords, collapseWhitespace, type CleanContext, type CleanMetrics } from './clean';
export { redactSensitive, passesLuhn, type RedactOptions, type RedactionCounts } from './redact';
export { stripHtml, decodeEntities } from './html';
export { stripMailHeaders } from './mail-headers';
export {
  findNearDuplicates,
  shingleHashes,
  estimatedJaccard,
  Pacer,
  type DataProgress,
  type NearDuplicateClusters,
  type ProgressListener,
} from './minhash';
export {
  augmentRecords,
  type AugmentContext,
  type AugmentMetrics,
  type AugmentOperations,
} from './augment';
export { synonymsFromTable, type SynonymSource } from './synonym-source';
export { loadWordNetSynonyms } from './wordnet';
export { identityTranslator, resolveTranslator, type Translator } from './translator';
export { splitRecords, SPLIT_NAMES, type SplitContext, type SplitMetrics, type SplitName } from './split';
