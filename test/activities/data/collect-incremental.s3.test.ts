// Incremental collect by `lastModified` against a real MinIO, which the integration project's
// globalSetup starts. The fake-S3 tests in collect-incremental.test.ts pin the logic; these pin
// what a real ListObjectsV2 reports, which is where the watermark's times come from.
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { Watermark } from '../../../activities/data/watermark';
import { collectRecords, type CollectResult } from '../../../activities/data/collect';
import { createS3SourceReader, type S3SourceReader } from '../../../activities/data/s3-source';
import { decodeWatermark, encodeWatermark } from '../../../activities/data/watermark';
import { CollectOptionsSchema, type CollectOptions } from '../../../pipelines/stage-types';

const endpoint = process.env.TEMPERED_TEST_S3_ENDPOINT;
const bucket = `tempered-incremental-${randomUUID().slice(0, 8)}`;

/** The watermark as the next cycle sees it: through the store's gzip JSON. */
const stored = (watermark: Watermark | undefined): Watermark => decodeWatermark(encodeWatermark(watermark!), 'test');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Waits until the wall clock (MinIO runs on this machine) has just entered a new second. */
const nextSecond = (): Promise<void> => sleep(1000 - (Date.now() % 1000) + 20);
const wholeSecond = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** The real reader, recording which objects it reads, so tests can prove old ones are skipped unread. */
function recordingReader(reads: string[], reader: S3SourceReader = createS3SourceReader({ endpoint })): S3SourceReader {
  return {
    list: (uri, include, sourceEndpoint) => reader.list(uri, include, sourceEndpoint),
    read: async (uri, sourceEndpoint) => {
      reads.push(uri);
      return reader.read(uri, sourceEndpoint);
    },
  };
}

/**
 * The real reader with listed times cut to whole seconds. MinIO lists LastModified in ms but AWS
 * S3 lists whole seconds, so on AWS an object written just after a listing often carries the time
 * of an object that listing saw; this makes that case reproducible here.
 */
function awsResolution(reader: S3SourceReader): S3SourceReader {
  return {
    async *list(uri, include, sourceEndpoint) {
      for await (const object of reader.list(uri, include, sourceEndpoint)) {
        yield { ...object, ...(object.lastModified === undefined ? {} : { lastModified: wholeSecond(object.lastModified) }) };
      }
    },
    read: (uri, sourceEndpoint) => reader.read(uri, sourceEndpoint),
  };
}

(endpoint === undefined ? describe.skip : describe)('collectRecords incremental by lastModified (MinIO)', () => {
  let client: S3Client;
  let prefix: string;
  let reads: string[];

  beforeAll(async () => {
    client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1' });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    const { Contents = [] } = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    if (Contents.length > 0) {
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: Contents.map(({ Key }) => ({ Key })) } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    client.destroy();
  });
  beforeEach(() => {
    prefix = `inbox-${randomUUID().slice(0, 8)}`;
    reads = [];
  });

  const uri = (name: string): string => `s3://${bucket}/${prefix}/${name}`;
  const put = (name: string, body: string): Promise<unknown> =>
    client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${name}`, Body: body }));
  /** LastModified in ms of every object under the test's prefix, by URI, as ListObjectsV2 reports it. */
  async function listedTimes(): Promise<Map<string, number>> {
    const { Contents = [] } = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }));
    return new Map(Contents.map(({ Key, LastModified }) => [`s3://${bucket}/${Key}`, LastModified!.getTime()]));
  }
  /** The expected watermark over `times`: every listed object with its time, and the newest time. */
  function watermarkOver(times: Map<string, number>): Watermark {
    return { by: 'lastModified', at: Math.max(...times.values()), files: Object.fromEntries([...times].sort(([a], [b]) => (a < b ? -1 : 1))) };
  }

  const spec = (include?: string): CollectOptions =>
    CollectOptionsSchema.parse({
      sources: [{ s3: `s3://${bucket}/${prefix}`, ...(include === undefined ? {} : { include }) }],
      incremental: { by: 'lastModified' },
    });
  const cycle = (options: CollectOptions, since?: Watermark, reader = recordingReader(reads)): Promise<CollectResult> =>
    collectRecords(options, { baseDir: tmpdir(), seed: 1, s3: reader, ...(since ? { since } : {}) });

  it('keeps every listed LastModified, then reads nothing from an unchanged prefix', async () => {
    await put('a.txt', 'first mail');
    await put('b.txt', 'second mail');
    await put('c.txt', 'third mail');
    const times = await listedTimes();

    const first = await cycle(spec());
    expect(first.records.map((r) => [r.text, r.meta?.source])).toEqual([
      ['first mail', uri('a.txt')],
      ['second mail', uri('b.txt')],
      ['third mail', uri('c.txt')],
    ]);
    expect(first.watermark).toEqual(watermarkOver(times));
    expect(first.metrics.incremental).toEqual({ by: 'lastModified', previous: null, newFiles: 3, unchangedFiles: 0, newRecords: 3 });
    // The times come from the listing, which MinIO gives in ms; HeadObject's Last-Modified header
    // is an HTTP date, whole seconds, so it agrees only to the second.
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/c.txt` }));
    expect(head.LastModified!.getTime()).toBe(wholeSecond(first.watermark!.files![uri('c.txt')]));

    reads.length = 0;
    const next = await cycle(spec(), stored(first.watermark));
    expect(reads).toEqual([]);
    expect(next.records).toEqual([]);
    expect(next.metrics).toMatchObject({ files: 0, bytes: 0, read: 0, records: 0, nothingNew: true });
    expect(next.metrics.incremental).toEqual({
      by: 'lastModified',
      previous: first.watermark!.at,
      newFiles: 0,
      unchangedFiles: 3,
      newRecords: 0,
    });
    expect(next.watermark).toEqual(first.watermark);
  });

  it('reads only an object put after the first cycle, with the same id a full read gives it', async () => {
    await put('a.txt', 'first mail');
    await put('b.txt', 'second mail');
    const first = await cycle(spec());

    await put('c.txt', 'third mail');
    const times = await listedTimes();
    reads.length = 0;
    const { records, metrics, watermark } = await cycle(spec(), stored(first.watermark));
    expect(reads).toEqual([uri('c.txt')]);
    expect(records.map((r) => r.text)).toEqual(['third mail']);
    expect(metrics.incremental).toEqual({
      by: 'lastModified',
      previous: first.watermark!.at,
      newFiles: 1,
      unchangedFiles: 2,
      newRecords: 1,
    });
    expect(watermark).toEqual(watermarkOver(times));

    const full = await cycle(CollectOptionsSchema.parse({ sources: [{ s3: `s3://${bucket}/${prefix}` }] }));
    expect(full.records.find((r) => r.text === 'third mail')?.id).toBe(records[0].id);
  });

  it('reads an object listed with the same whole-second time as the newest one seen, because its name was not seen', async () => {
    const reader = awsResolution(recordingReader(reads));
    // Everything below takes well under a second, so all three objects share one listed second.
    await nextSecond();
    await put('a.txt', 'first mail');
    await put('b.txt', 'second mail');
    const first = await cycle(spec(), undefined, reader);
    await put('c.txt', 'same second');

    const times = await listedTimes();
    const second = wholeSecond(times.get(uri('c.txt'))!);
    // The case under test: c.txt is no newer than anything the first cycle saw.
    expect(first.watermark).toEqual({ by: 'lastModified', at: second, files: { [uri('a.txt')]: second, [uri('b.txt')]: second } });

    reads.length = 0;
    const next = await cycle(spec(), stored(first.watermark), reader);
    expect(reads).toEqual([uri('c.txt')]);
    expect(next.records.map((r) => r.text)).toEqual(['same second']);
    expect(next.watermark).toEqual({
      by: 'lastModified',
      at: second,
      files: { [uri('a.txt')]: second, [uri('b.txt')]: second, [uri('c.txt')]: second },
    });

    const again = await cycle(spec(), stored(next.watermark), reader);
    expect(again.metrics.nothingNew).toBe(true);
  });

  // Intended: a rewritten object is new data, read again whole, with the ids it had (derived ids
  // depend on name and position only). At whole-second resolution a rewrite within the second of
  // the write the watermark holds keeps its listed time and is not seen, hence the wait and the
  // AWS-resolution reader: a later second is new at either resolution.
  it('reads an object overwritten in a later second again, keeping its id', async () => {
    const reader = awsResolution(recordingReader(reads));
    await put('a.txt', 'first mail');
    await put('b.txt', 'second mail');
    const first = await cycle(spec(), undefined, reader);

    await nextSecond();
    await put('a.txt', 'first mail, edited');
    const edited = (await listedTimes()).get(uri('a.txt'))!;
    expect(wholeSecond(edited)).toBeGreaterThan(first.watermark!.files![uri('a.txt')]);

    reads.length = 0;
    const { records, metrics, watermark } = await cycle(spec(), stored(first.watermark), reader);
    expect(reads).toEqual([uri('a.txt')]);
    expect(records.map((r) => r.text)).toEqual(['first mail, edited']);
    expect(records[0].id).toBe(first.records[0].id);
    expect(metrics.incremental).toMatchObject({ newFiles: 1, unchangedFiles: 1 });
    expect(watermark?.files).toEqual({ [uri('a.txt')]: wholeSecond(edited), [uri('b.txt')]: first.watermark!.files![uri('b.txt')] });
  });

  it('applies the include glob, and keeps excluded objects out of the watermark', async () => {
    await put('a.txt', 'first mail');
    await put('sub/nested.txt', 'below the prefix, not matched by *.txt');
    await put('notes.md', 'not mail');
    const times = await listedTimes();

    const first = await cycle(spec('*.txt'));
    expect(first.records.map((r) => r.text)).toEqual(['first mail']);
    expect(first.metrics.sources).toEqual([
      { source: `s3://${bucket}/${prefix} (include *.txt)`, files: 1, bytes: 10, records: 1, kept: 1 },
    ]);
    // notes.md was written last, but only selected objects are kept.
    expect(first.watermark).toEqual({ by: 'lastModified', at: times.get(uri('a.txt')), files: { [uri('a.txt')]: times.get(uri('a.txt')) } });

    await put('later.md', 'still not mail');
    await put('sub/later.txt', 'still nested');
    reads.length = 0;
    const unmatched = await cycle(spec('*.txt'), stored(first.watermark));
    expect(reads).toEqual([]);
    expect(unmatched.metrics).toMatchObject({ nothingNew: true });
    expect(unmatched.metrics.incremental).toMatchObject({ newFiles: 0, unchangedFiles: 1 });
    expect(unmatched.watermark).toEqual(first.watermark);

    await put('b.txt', 'second mail');
    const { records, watermark } = await cycle(spec('*.txt'), stored(unmatched.watermark));
    expect(reads).toEqual([uri('b.txt')]);
    expect(records.map((r) => r.text)).toEqual(['second mail']);
    const listed = await listedTimes();
    expect(watermark?.files).toEqual({ [uri('a.txt')]: listed.get(uri('a.txt')), [uri('b.txt')]: listed.get(uri('b.txt')) });
  });

  it('is nothing new for a prefix that holds no objects yet, then reads the first to arrive', async () => {
    const empty = await cycle(spec());
    expect(empty.metrics).toMatchObject({ files: 0, records: 0, nothingNew: true });
    expect(empty.watermark).toEqual({ by: 'lastModified', files: {} });

    await put('a.txt', 'finally');
    const { records, watermark } = await cycle(spec(), stored(empty.watermark));
    expect(records.map((r) => r.text)).toEqual(['finally']);
    expect(watermark).toEqual(watermarkOver(await listedTimes()));
  });
});
