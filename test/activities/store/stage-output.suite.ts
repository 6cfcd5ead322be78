import type { ArtifactStore } from '../../../activities/store/artifact-store';
import { MalformedArtifactError } from '../../../activities/store/errors';
import { writeJsonl } from '../../../activities/store/jsonl';
import { commitManifest, manifestKey, readCommittedManifest } from '../../../activities/store/stage-output';
import type { StageManifest } from '../../../workflows/types';
import { type BackendFixture, createFixture, describeBackend, type BackendName } from './backends';

/** The stage output tests, run once per backend by `stage-output.test.ts` and `stage-output.s3.test.ts`. */
export function stageOutputSuite(backend: BackendName): void {
  describeBackend('stage output', backend, () => {
    let fixture: BackendFixture;
    let store: ArtifactStore;
    beforeAll(async () => {
      fixture = await createFixture(backend);
      store = fixture.store;
    });
    afterAll(() => fixture.cleanup());

    async function runStage(prefix: string): Promise<Omit<StageManifest, 'apiVersion' | 'createdAt'>> {
      const train = await writeJsonl(store, `${prefix}train.jsonl`, [{ id: '1', text: 'a' }]);
      const test = await writeJsonl(store, `${prefix}test.jsonl`, [{ id: '2', text: 'b' }]);
      const upstream = await store.put('runs/r1/collect/manifest.json', '{}', 'application/json');
      return {
        runId: 'r1',
        pipeline: 'demo',
        stage: 'split',
        type: 'split',
        cacheKey: 'c'.repeat(64),
        outputs: { train, test },
        metrics: { records: 2, perReason: { dup: 0 } },
        inputs: { collect: upstream },
      };
    }

    it('commits the manifest last and reads the committed result back', async () => {
      const prefix = 'runs/r1/split/';
      const body = await runStage(prefix);
      const committed = await commitManifest(store, prefix, body);
      expect(committed).toMatchObject({ outputs: body.outputs, metrics: body.metrics });
      expect(committed.manifest.uri).toBe(store.uriFor(manifestKey(prefix)));

      const manifest = await store.readJson<StageManifest>(committed.manifest); // verifies against the returned ref
      expect(manifest).toMatchObject({ apiVersion: 'tempered.dev/v1', ...body });
      expect(Date.parse(manifest.createdAt)).not.toBeNaN();

      expect(await readCommittedManifest(store, prefix)).toEqual(committed);
      expect(await readCommittedManifest(store, 'runs/r1/split')).toEqual(committed); // trailing slash optional
    });

    it('treats output without a manifest as uncommitted', async () => {
      const prefix = 'runs/r2/split/';
      await runStage(prefix);
      expect(await store.list(prefix)).toEqual([`${prefix}test.jsonl`, `${prefix}train.jsonl`]);
      expect(await readCommittedManifest(store, prefix)).toBeUndefined();
      expect(await readCommittedManifest(store, 'runs/never-ran/split/')).toBeUndefined();
    });

    it('treats a manifest whose outputs are gone as uncommitted', async () => {
      const prefix = 'runs/r3/split/';
      await commitManifest(store, prefix, await runStage(prefix));
      await store.delete(`${prefix}train.jsonl`);
      expect(await readCommittedManifest(store, prefix)).toBeUndefined();
    });

    it('re-committing replaces the manifest', async () => {
      const prefix = 'runs/r4/split/';
      const body = await runStage(prefix);
      await commitManifest(store, prefix, body);
      const again = await commitManifest(store, prefix, { ...body, metrics: { records: 3 } });
      expect(await readCommittedManifest(store, prefix)).toEqual(again);
    });

    it('refuses a manifest that does not parse, naming it', async () => {
      const prefix = 'runs/r5/split/';
      await store.put(manifestKey(prefix), '{"apiVersion":"tempered.dev/v1","outputs":{}}', 'application/json');
      const err = await readCommittedManifest(store, prefix).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MalformedArtifactError);
      expect((err as Error).message).toContain(store.uriFor(manifestKey(prefix)));
      expect((err as Error).message).toContain('runId');
    });
  });
}
