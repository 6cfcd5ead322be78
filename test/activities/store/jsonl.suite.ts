import type { ArtifactStore } from '../../../activities/store/artifact-store';
import { IntegrityError, MalformedArtifactError } from '../../../activities/store/errors';
import { readJsonl, writeJsonl } from '../../../activities/store/jsonl';
import { type BackendFixture, createFixture, describeBackend, type BackendName } from './backends';

interface DataRecord {
  id: string;
  text: string;
  label?: string;
}

async function collect<T>(records: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const record of records) out.push(record);
  return out;
}

/** The jsonl tests, run once per backend by `jsonl.test.ts` and `jsonl.s3.test.ts`. */
export function jsonlSuite(backend: BackendName): void {
  describeBackend('jsonl', backend, () => {
    let fixture: BackendFixture;
    let store: ArtifactStore;
    beforeAll(async () => {
      fixture = await createFixture(backend);
      store = fixture.store;
    });
    afterAll(() => fixture.cleanup());

    it('round-trips records from an iterable', async () => {
      const records: DataRecord[] = [
        { id: '1', text: 'plain' },
        { id: '2', text: 'line\nbreak and "quotes"', label: 'spam' },
        { id: '3', text: 'unicode — 日本語 🎉 \u2028' },
      ];
      const ref = await writeJsonl(store, 'runs/r/clean/records.jsonl', records);
      expect(ref.mediaType).toBe('application/jsonl');
      expect((await store.readBuffer(ref)).toString().split('\n')).toHaveLength(4);
      expect(await collect(readJsonl<DataRecord>(store, ref))).toEqual(records);
    });

    it('streams many records from an async iterable, multi-byte characters across chunk boundaries', async () => {
      const count = 20_000;
      async function* generate(): AsyncGenerator<DataRecord> {
        for (let i = 0; i < count; i += 1) yield { id: `r${i}`, text: `${'é日🎉'.repeat(i % 7)} record ${i}` };
      }
      const ref = await writeJsonl(store, 'runs/r/clean/many.jsonl', generate());
      let seen = 0;
      for await (const record of readJsonl<DataRecord>(store, ref)) {
        expect(record.id).toBe(`r${seen}`);
        expect(record.text).toBe(`${'é日🎉'.repeat(seen % 7)} record ${seen}`);
        seen += 1;
      }
      expect(seen).toBe(count);
    });

    it('skips blank lines and tolerates CRLF', async () => {
      const ref = await store.put('runs/r/x/crlf.jsonl', '{"id":"a"}\r\n\r\n  \n{"id":"b"}', 'application/jsonl');
      expect(await collect(readJsonl(store, ref))).toEqual([{ id: 'a' }, { id: 'b' }]);
    });

    it('names the uri and line number of a malformed line', async () => {
      const ref = await store.put('runs/r/x/bad.jsonl', '{"id":"a"}\n\n{"id": oops}\n{"id":"c"}\n', 'application/jsonl');
      const seen: unknown[] = [];
      const err = await (async () => {
        for await (const record of readJsonl(store, ref)) seen.push(record);
      })().catch((e: unknown) => e);
      expect(seen).toEqual([{ id: 'a' }]);
      expect(err).toBeInstanceOf(MalformedArtifactError);
      expect(err).toMatchObject({ uri: ref.uri, line: 3 });
      expect((err as Error).message).toContain(`"${ref.uri}" at line 3`);
    });

    it('fails the iteration when the bytes were corrupted', async () => {
      const ref = await writeJsonl(store, 'runs/r/x/corrupt.jsonl', [{ id: 'a', text: 'aaaa' }]);
      await fixture.writeRaw('runs/r/x/corrupt.jsonl', Buffer.from('{"id":"a","text":"aaab"}\n'));
      await expect(collect(readJsonl(store, ref))).rejects.toBeInstanceOf(IntegrityError);
    });

    it('writes nothing when a record cannot be serialized', async () => {
      const circular: Record<string, unknown> = { id: 'x' };
      circular.self = circular;
      await expect(writeJsonl(store, 'runs/r/x/circular.jsonl', [{ id: 'ok' }, circular])).rejects.toThrow(TypeError);
      expect(await store.stat('runs/r/x/circular.jsonl')).toBeUndefined();
    });
  });
}
