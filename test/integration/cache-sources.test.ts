import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { newRunId, startRun } from '../../cli/runs';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import type { RunSummary } from '../../workflows/types';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// A cached collect is reused only while its sources list the same files: on real Temporal and
// MinIO, adding, changing, removing or renaming a file or object recomputes it (and what reads
// it); an unchanged listing is served from the cache — also right after its files were written
// (the fingerprint waits out the racy window rather than keying on content that then settles).

let h: Harness;
let root: string;
beforeAll(async () => {
  h = await startHarness();
  root = await mkdtemp(path.join(os.tmpdir(), 'tempered-cache-sources-'));
});
afterAll(async () => {
  await h?.close();
  await rm(root, { recursive: true, force: true });
});

async function run(yaml: string, specDir: string): Promise<RunSummary> {
  const plan = planPipeline(loadSpecText(yaml, path.join(specDir, 'spec.yaml')));
  const { workflowId } = await startRun(h.client, plan, newRunId());
  const summary = await waitForSummary(h.client, workflowId);
  expect(summary.status).toBe('succeeded');
  return summary;
}

const localSpec = `
apiVersion: tempered.dev/v1
name: cache-sources-local
stages:
  collect: { type: collect, sources: [{ path: "data/*/*.txt" }] }
  clean: { type: clean, input: collect, nearDedup: false }
`;

async function writeDocs(dir: string, names: string[]): Promise<void> {
  for (const name of names) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), `Document ${name} is about something of its own, ${name.length} characters of name.`);
  }
}

test('a local glob: unchanged hits; add, change, remove, rename recompute; another spec directory gets its own files', async () => {
  const dir = path.join(root, 'one');
  await writeDocs(dir, ['data/a/1.txt', 'data/a/2.txt', 'data/b/3.txt']);

  const first = await run(localSpec, dir);
  expect(first.stages.collect.metrics).toMatchObject({ files: 3, records: 3 });
  const again = await run(localSpec, dir);
  expect(again.stages.collect).toMatchObject({ status: 'cached', cachedFrom: first.runId });
  expect(again.stages.clean.status).toBe('cached');

  await writeDocs(dir, ['data/b/4.txt']);
  const added = await run(localSpec, dir);
  expect(added.stages.collect.status).toBe('succeeded');
  expect(added.stages.collect.metrics).toMatchObject({ files: 4, records: 4 });
  expect(added.stages.clean.status).toBe('succeeded'); // its input changed

  // Same size, other bytes.
  await writeFile(path.join(dir, 'data/a/1.txt'), 'X'.repeat((await stat(path.join(dir, 'data/a/1.txt'))).size));
  const changed = await run(localSpec, dir);
  expect(changed.stages.collect.status).toBe('succeeded');
  expect(changed.stages.collect.outputs[0].sha256).not.toBe(added.stages.collect.outputs[0].sha256);

  await rm(path.join(dir, 'data/b/4.txt'));
  const removed = await run(localSpec, dir);
  expect(removed.stages.collect).toMatchObject({ status: 'succeeded', metrics: expect.objectContaining({ files: 3, records: 3 }) });

  await rename(path.join(dir, 'data/b/3.txt'), path.join(dir, 'data/b/5.txt'));
  const renamed = await run(localSpec, dir);
  expect(renamed.stages.collect.status).toBe('succeeded');
  expect(renamed.stages.collect.metrics.sources).toEqual([expect.objectContaining({ files: 3 })]);

  const settled = await run(localSpec, dir);
  expect(settled.stages.collect).toMatchObject({ status: 'cached', cachedFrom: renamed.runId });

  // Same spec text, same relative glob, another directory: its own two files, not the cache's three.
  const other = path.join(root, 'two');
  await writeDocs(other, ['data/x/1.txt', 'data/x/2.txt']);
  const elsewhere = await run(localSpec, other);
  expect(elsewhere.stages.collect).toMatchObject({ status: 'succeeded', metrics: expect.objectContaining({ files: 2, records: 2 }) });
});

test('an S3 prefix: unchanged hits; a put, an overwrite and a delete recompute', async () => {
  const prefix = `sources/cache-${newRunId()}/`;
  const spec = `
apiVersion: tempered.dev/v1
name: cache-sources-s3
stages:
  collect: { type: collect, sources: [{ s3: "s3://${h.bucket}/${prefix}" }] }
`;
  const put = (name: string, text: string) => h.store.put(`${prefix}${name}`, text, 'text/plain');
  await put('a.txt', 'The first object, about apples.');
  await put('b.txt', 'The second object, about bananas.');

  const first = await run(spec, root);
  expect(first.stages.collect.metrics).toMatchObject({ files: 2, records: 2 });
  const again = await run(spec, root);
  expect(again.stages.collect).toMatchObject({ status: 'cached', cachedFrom: first.runId });

  await put('c.txt', 'A third object, about cherries.');
  const added = await run(spec, root);
  expect(added.stages.collect).toMatchObject({ status: 'succeeded', metrics: expect.objectContaining({ files: 3, records: 3 }) });
  expect((await run(spec, root)).stages.collect).toMatchObject({ status: 'cached', cachedFrom: added.runId });

  await put('a.txt', 'The FIRST object, about apples.'); // same size, new ETag
  const overwritten = await run(spec, root);
  expect(overwritten.stages.collect.status).toBe('succeeded');
  expect(overwritten.stages.collect.outputs[0].sha256).not.toBe(added.stages.collect.outputs[0].sha256);

  const client = new S3Client({ endpoint: process.env.TEMPERED_TEST_S3_ENDPOINT, forcePathStyle: true, region: 'us-east-1' });
  await client.send(new DeleteObjectCommand({ Bucket: h.bucket, Key: `${prefix}c.txt` }));
  client.destroy();
  const deleted = await run(spec, root);
  expect(deleted.stages.collect).toMatchObject({ status: 'succeeded', metrics: expect.objectContaining({ files: 2, records: 2 }) });
});
