// JSONL datasets (one JSON record per line), streamed both ways: memory depends on the longest
// line, not on the dataset.
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { ArtifactRef } from '../../workflows/types';
import type { ArtifactStore } from './artifact-store';
import { MalformedArtifactError } from './errors';

export const JSONL_MEDIA_TYPE = 'application/jsonl';

/** Lines are grouped into chunks of about this many characters: one write per record is slow. */
const BATCH_CHARS = 64 * 1024;

/** Streams `records` to `key` as JSONL (`application/jsonl`) and returns the ref. */
export function writeJsonl(
  store: ArtifactStore,
  key: string,
  records: AsyncIterable<object> | Iterable<object>,
): Promise<ArtifactRef> {
  return store.put(key, Readable.from(encodeLines(key, records), { objectMode: false }), JSONL_MEDIA_TYPE);
}

/**
 * Streams the records of a JSONL artifact; blank lines are skipped. A line that is not JSON throws
 * `MalformedArtifactError` with the uri and 1-based line number. Integrity is checked when the last
 * byte is read: a corrupted artifact throws `IntegrityError` after its records were yielded, so
 * commit nothing derived from them before the iteration completes.
 */
export async function* readJsonl<T = unknown>(store: ArtifactStore, ref: ArtifactRef): AsyncGenerator<T> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;
  const parse = (text: string): T | undefined => {
    line += 1;
    const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (trimmed.trim() === '') return undefined;
    try {
      return JSON.parse(trimmed) as T;
    } catch (err) {
      throw new MalformedArtifactError(ref.uri, line, (err as Error).message);
    }
  };
  for await (const chunk of store.openRead(ref)) {
    const lines = (pending + decoder.write(chunk as Buffer)).split('\n');
    pending = lines.pop() ?? '';
    for (const text of lines) {
      const record = parse(text);
      if (record !== undefined) yield record;
    }
  }
  const record = parse(pending + decoder.end());
  if (record !== undefined) yield record;
}

async function* encodeLines(key: string, records: AsyncIterable<object> | Iterable<object>): AsyncGenerator<Buffer> {
  let batch = '';
  let index = 0;
  for await (const record of records) {
    const json = JSON.stringify(record) as string | undefined;
    if (json === undefined) throw new TypeError(`record ${index} for "${key}" is not JSON-serializable`);
    batch += `${json}\n`;
    index += 1;
    if (batch.length >= BATCH_CHARS) {
      yield Buffer.from(batch, 'utf8');
      batch = '';
    }
  }
  if (batch !== '') yield Buffer.from(batch, 'utf8');
}
