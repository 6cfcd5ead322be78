import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import {
  ArtifactNotFoundError,
  ForeignArtifactError,
  IntegrityError,
  InvalidKeyError,
  MalformedArtifactError,
  isNonRetryableStoreError,
} from '../../../activities/store/errors';
import type { ArtifactStore } from '../../../activities/store/artifact-store';
import {
  type BackendFixture,
  createFixture,
  describeBackend,
  type BackendName,
  failingStream,
  generatedStream,
} from './backends';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** The artifact store tests, run once per backend by `artifact-store.test.ts` and `artifact-store.s3.test.ts`. */
export function artifactStoreSuite(backend: BackendName): void {
  describeBackend('artifact store', backend, () => {
    let fixture: BackendFixture;
    let store: ArtifactStore;
    beforeAll(async () => {
      fixture = await createFixture(backend);
      store = fixture.store;
    });
    afterAll(() => fixture.cleanup());

    it('create writes only where nothing is: of many concurrent creators of one key exactly one wins, and its bytes stay', async () => {
      const key = 'claims/cycle-1.json';
      const bodies = Array.from({ length: 8 }, (_, i) => `{"writer":${i}}`);
      const results = await Promise.all(bodies.map((b) => store.create(key, b, 'application/json')));
      const winners = results.flatMap((r, i) => (r ? [i] : []));
      expect(winners).toHaveLength(1);
      const won = results[winners[0]]!;
      expect(won).toEqual({ uri: store.uriFor(key), sha256: sha256(bodies[winners[0]]), bytes: bodies[winners[0]].length, mediaType: 'application/json' });
      expect((await store.readBuffer(won)).toString()).toBe(bodies[winners[0]]);
      expect(await store.create(key, 'late', 'application/json')).toBeUndefined();
      expect((await store.readKey(key, 'application/json'))!.ref.sha256).toBe(won.sha256);
      expect((await store.list('claims/')).filter((k) => k.startsWith('claims/'))).toEqual([key]); // no temp files left
    });

    it('round-trips a buffer with the sha256 and size of its bytes', async () => {
      const body = Buffer.from('hello, tempered\n');
      const ref = await store.put('runs/r1/clean/a.txt', body, 'text/plain');
      expect(ref).toEqual({ uri: store.uriFor('runs/r1/clean/a.txt'), sha256: sha256(body), bytes: body.length, mediaType: 'text/plain' });
      expect(ref.uri.startsWith(`${store.root}/`)).toBe(true);
      expect(await store.readBuffer(ref)).toEqual(body);
      expect(store.keyFromUri(ref.uri)).toBe('runs/r1/clean/a.txt');
    });

    it('round-trips a string as UTF-8', async () => {
      const text = 'données — 日本語 🎉';
      const ref = await store.put('runs/r1/clean/s.txt', text, 'text/plain');
      expect(ref.sha256).toBe(sha256(Buffer.from(text, 'utf8')));
      expect((await store.readBuffer(ref)).toString('utf8')).toBe(text);
    });

    it('hashes a stream while writing it', async () => {
      const size = 3 * 1024 * 1024 + 17;
      const expected = createHash('sha256');
      for await (const chunk of generatedStream(size, 1000)) expected.update(chunk as Buffer);
      const ref = await store.put('runs/r1/train/weights.bin', generatedStream(size, 1000), 'application/octet-stream');
      expect(ref.sha256).toBe(expected.digest('hex'));
      expect(ref.bytes).toBe(size);
      const read = createHash('sha256');
      for await (const chunk of store.openRead(ref)) read.update(chunk as Buffer);
      expect(read.digest('hex')).toBe(ref.sha256);
    });

    it('stores empty artifacts', async () => {
      const ref = await store.put('runs/r1/empty.jsonl', Readable.from([]), 'application/jsonl');
      expect(ref.bytes).toBe(0);
      expect(ref.sha256).toBe(sha256(''));
      expect((await store.readBuffer(ref)).length).toBe(0);
      expect(await store.stat('runs/r1/empty.jsonl')).toEqual({ bytes: 0 });
    });

    it('stats, lists by prefix and deletes idempotently', async () => {
      await store.put('list/a/1.txt', '1', 'text/plain');
      await store.put('list/a/2.txt', '22', 'text/plain');
      await store.put('list/ab.txt', '333', 'text/plain');
      await store.put('list/b/3.txt', '4444', 'text/plain');
      expect(await store.stat('list/a/2.txt')).toEqual({ bytes: 2 });
      expect(await store.stat('list/a/missing.txt')).toBeUndefined();
      expect(await store.stat('list/a')).toBeUndefined(); // a "directory" is not an artifact
      expect(await store.list('list/a/')).toEqual(['list/a/1.txt', 'list/a/2.txt']);
      expect(await store.list('list/a')).toEqual(['list/a/1.txt', 'list/a/2.txt', 'list/ab.txt']);
      expect(await store.list('list/')).toEqual(['list/a/1.txt', 'list/a/2.txt', 'list/ab.txt', 'list/b/3.txt']);
      expect(await store.list('nothing/here/')).toEqual([]);
      await store.delete('list/a/1.txt');
      await store.delete('list/a/1.txt');
      expect(await store.list('list/a/')).toEqual(['list/a/2.txt']);
    });

    it('overwrites atomically; the old ref no longer verifies', async () => {
      const first = await store.put('runs/r1/over.txt', 'first', 'text/plain');
      const second = await store.put('runs/r1/over.txt', 'second!', 'text/plain');
      expect((await store.readBuffer(second)).toString()).toBe('second!');
      await expect(store.readBuffer(first)).rejects.toBeInstanceOf(IntegrityError);
    });

    it('rejects a flipped byte with an IntegrityError naming the uri', async () => {
      const body = Buffer.from('{"id":1,"text":"a perfectly fine record"}\n');
      const ref = await store.put('runs/r1/flip.jsonl', body, 'application/jsonl');
      const corrupted = Buffer.from(body);
      corrupted[5] ^= 0x01;
      await fixture.writeRaw('runs/r1/flip.jsonl', corrupted);

      const err = await store.readBuffer(ref).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      const integrity = err as IntegrityError;
      expect(integrity.message).toContain(ref.uri);
      expect(integrity.message).toContain(ref.sha256);
      expect(integrity).toMatchObject({ uri: ref.uri, expectedSha256: ref.sha256, actualSha256: sha256(corrupted) });
      expect(isNonRetryableStoreError(err)).toBe(true);

      // The stream form fails the same way.
      const stream = store.openRead(ref);
      stream.resume();
      const [streamErr] = (await once(stream, 'error').catch((e: unknown) => [e])) as unknown[];
      expect(streamErr).toBeInstanceOf(IntegrityError);
    });

    it('rejects truncated and extended bytes', async () => {
      const ref = await store.put('runs/r1/len.bin', Buffer.alloc(1000, 7), 'application/octet-stream');
      await fixture.writeRaw('runs/r1/len.bin', Buffer.alloc(999, 7));
      await expect(store.readBuffer(ref)).rejects.toMatchObject({ name: 'IntegrityError', actualBytes: 999 });
      await fixture.writeRaw('runs/r1/len.bin', Buffer.alloc(5000, 7));
      await expect(store.readBuffer(ref)).rejects.toMatchObject({ name: 'IntegrityError', actualSha256: undefined });
    });

    it('reports a missing artifact as ArtifactNotFoundError', async () => {
      const ref = await store.put('runs/r1/gone.txt', 'bye', 'text/plain');
      await store.delete('runs/r1/gone.txt');
      const err = await store.readBuffer(ref).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ArtifactNotFoundError);
      expect((err as Error).message).toContain(ref.uri);
      expect(await store.readKey('runs/r1/gone.txt', 'text/plain')).toBeUndefined();
    });

    it('refuses refs from outside its root', async () => {
      const ref = await store.put('runs/r1/mine.txt', 'mine', 'text/plain');
      for (const uri of ['s3://some-other-bucket/runs/r1/mine.txt', 'file:///etc/passwd', `${store.root}-sibling/runs/r1/mine.txt`]) {
        expect(() => store.openRead({ ...ref, uri })).toThrow(ForeignArtifactError);
      }
      expect(() => store.openRead({ ...ref, uri: `${store.root}/../x` })).toThrow(/outside this store|invalid store key/);
    });

    it.each(['../x', '/abs', 'a//b', 'a/', '', 'a/./b', 'a/../../b', 'a\\b', 'a\0b'])('rejects the bad key %j', async (key) => {
      await expect(store.put(key, 'x', 'text/plain')).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.stat(key)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
      expect(() => store.uriFor(key)).toThrow(InvalidKeyError);
      expect(() => store.uriFor(key)).toThrow(JSON.stringify(key));
    });

    it('leaves nothing behind when the source stream fails', async () => {
      const boom = new Error('source failed');
      const err = await store
        .put('runs/r1/failed/big.bin', failingStream(Buffer.alloc(256 * 1024, 1), boom), 'application/octet-stream')
        .catch((e: unknown) => e);
      expect(err).toBe(boom);
      expect(await store.stat('runs/r1/failed/big.bin')).toBeUndefined();
      expect(await store.list('runs/r1/failed/')).toEqual([]);
    });

    it('reads JSON and names the uri when it does not parse', async () => {
      const ref = await store.put('runs/r1/m.json', JSON.stringify({ a: [1, 2] }), 'application/json');
      expect(await store.readJson(ref)).toEqual({ a: [1, 2] });
      const bad = await store.put('runs/r1/bad.json', '{"a":', 'application/json');
      const err = await store.readJson(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MalformedArtifactError);
      expect((err as Error).message).toContain(bad.uri);
    });

    it('releases the source when a reader stops early', async () => {
      const ref = await store.put('runs/r1/early.bin', generatedStream(2 * 1024 * 1024), 'application/octet-stream');
      const stream = store.openRead(ref);
      for await (const _chunk of stream) break;
      expect(stream.destroyed).toBe(true);
      // Destroyed before the object was even opened.
      store.openRead(ref).destroy();
      expect(await store.stat('runs/r1/early.bin')).toEqual({ bytes: ref.bytes });
    });
  });
}
