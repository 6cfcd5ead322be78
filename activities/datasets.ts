import type { ArtifactRef } from '../workflows/types';
import type { DataRecord } from './data';
import type { StageContext } from './stage-runner';
import { readJsonl } from './store';

/** Reads a JSONL dataset artifact into memory (verified). */
export async function readDataset(ctx: StageContext, ref: ArtifactRef | undefined, what: string): Promise<DataRecord[]> {
  if (!ref) throw Object.assign(new Error(`stage "${ctx.input.stage}": ${what} is missing from its input; name a stage that produces it in "input"`), { nonRetryable: true });
  const records: DataRecord[] = [];
  for await (const record of readJsonl<DataRecord>(ctx.store, ref)) records.push(record);
  return records;
}
