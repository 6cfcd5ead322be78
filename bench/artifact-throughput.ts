// Artifact store throughput against a plain AWS SDK baseline, on the same MinIO in the same run.
// Writes and reads one large generated object (never held in memory) through the Tempered S3
// store (sha256 on the fly, multipart Upload, verified reads) and through bare PutObject/GetObject,
// and samples RSS to show that memory stays flat. Target: >= 90% of baseline, RSS growth < 100 MB.
//
//   TEMPERED_S3_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
//     node dist/bench/artifact-throughput.js
//
// Optional: TEMPERED_BENCH_MB (object size, default 512), TEMPERED_BENCH_BUCKET (default
// `tempered-bench`), TEMPERED_BENCH_PART_MB / TEMPERED_BENCH_QUEUE (store multipart tuning;
// default: the store's defaults).
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { DEFAULT_PART_SIZE, DEFAULT_QUEUE_SIZE, S3ArtifactStore } from '../activities/store/s3-store';
import type { ArtifactRef } from '../workflows/types';

const MiB = 1024 * 1024;
/** Same size as fs read streams' chunks: what a real artifact stream looks like. */
const CHUNK = 64 * 1024;

export interface PhaseResult {
  phase: string;
  seconds: number;
  mibPerSecond: number;
  /** Peak RSS during the phase minus RSS at its start, in MiB. */
  rssGrowthMiB: number;
  /** CPU time (user + system) this process spent in the phase: what the store costs on a worker. */
  cpuSeconds: number;
}

export interface ThroughputReport {
  endpoint: string;
  sizeMiB: number;
  partSizeMiB: number;
  queueSize: number;
  phases: PhaseResult[];
  /** Tempered MiB/s divided by baseline MiB/s. */
  ratio: { put: number; get: number };
  peakRssGrowthMiB: number;
}

/** Runs the benchmark with settings from the environment, prints a table and JSON, returns the report. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<ThroughputReport> {
  const endpoint = env.TEMPERED_S3_ENDPOINT;
  if (!endpoint) throw new Error('set TEMPERED_S3_ENDPOINT (and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) to a MinIO');
  const size = Number(env.TEMPERED_BENCH_MB ?? 512) * MiB;
  const partSize = env.TEMPERED_BENCH_PART_MB ? Number(env.TEMPERED_BENCH_PART_MB) * MiB : DEFAULT_PART_SIZE;
  const queueSize = env.TEMPERED_BENCH_QUEUE ? Number(env.TEMPERED_BENCH_QUEUE) : DEFAULT_QUEUE_SIZE;
  const bucket = env.TEMPERED_BENCH_BUCKET ?? 'tempered-bench';

  const region = env.AWS_REGION || 'us-east-1';
  const store = new S3ArtifactStore({ bucket, prefix: 'bench/', region, endpoint, partSize, queueSize });
  // The store's checksum settings, so the comparison isolates what the store itself adds.
  const baseline = new S3Client({
    region,
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await store.ensureBucket();
  const block = randomBytes(CHUNK);
  const baselineKey = 'bench/baseline.bin';

  const putBaseline = async (bytes: number): Promise<void> => {
    await baseline.send(
      new PutObjectCommand({ Bucket: bucket, Key: baselineKey, Body: generated(block, bytes), ContentLength: bytes }),
    );
  };
  const getBaseline = async (): Promise<void> => {
    const { Body } = await baseline.send(new GetObjectCommand({ Bucket: bucket, Key: baselineKey }));
    for await (const _chunk of Body as Readable); // drain
  };
  const putTempered = (bytes: number) => store.put('tempered.bin', generated(block, bytes), 'application/octet-stream');

  try {
    // Warm-up: connections, JIT, bucket.
    await putBaseline(16 * MiB);
    await getBaseline();
    await drain(store.openRead(await putTempered(16 * MiB)));

    const phases: PhaseResult[] = [];
    phases.push(await measure('baseline put', size, () => putBaseline(size)));
    let ref: ArtifactRef | undefined;
    phases.push(await measure('tempered put', size, async () => void (ref = await putTempered(size))));
    phases.push(await measure('baseline get', size, getBaseline));
    phases.push(await measure('tempered get', size, () => drain(store.openRead(ref!))));

    const speed = (phase: string) => phases.find((p) => p.phase === phase)!.mibPerSecond;
    const report: ThroughputReport = {
      endpoint,
      sizeMiB: size / MiB,
      partSizeMiB: partSize / MiB,
      queueSize,
      phases,
      ratio: {
        put: round(speed('tempered put') / speed('baseline put'), 3),
        get: round(speed('tempered get') / speed('baseline get'), 3),
      },
      peakRssGrowthMiB: Math.max(...phases.filter((p) => p.phase.startsWith('tempered')).map((p) => p.rssGrowthMiB)),
    };
    print(report);
    return report;
  } finally {
    await baseline.send(new DeleteObjectCommand({ Bucket: bucket, Key: baselineKey })).catch(() => undefined);
    await store.delete('tempered.bin').catch(() => undefined);
    baseline.destroy();
    await store.close();
  }
}

/** `bytes` bytes made of `block` repeated, produced on demand. */
function generated(block: Buffer, bytes: number): Readable {
  let remaining = bytes;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      const n = Math.min(block.length, remaining);
      remaining -= n;
      this.push(n === 0 ? null : block.subarray(0, n));
    },
  });
}

async function drain(stream: Readable): Promise<void> {
  for await (const _chunk of stream); // reading to the end is what triggers verification
}

/** Times `run`, sampling RSS every 10 ms. */
async function measure(phase: string, bytes: number, run: () => Promise<void>): Promise<PhaseResult> {
  (globalThis as { gc?: () => void }).gc?.(); // with --expose-gc, start each phase from a clean heap
  const startRss = process.memoryUsage.rss();
  let peakRss = startRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 10);
  const startCpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  try {
    await run();
  } finally {
    clearInterval(sampler);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(startCpu);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  return {
    phase,
    seconds: round(seconds, 2),
    mibPerSecond: round(bytes / MiB / seconds, 1),
    rssGrowthMiB: round((peakRss - startRss) / MiB, 1),
    cpuSeconds: round((cpu.user + cpu.system) / 1e6, 2),
  };
}

function print(report: ThroughputReport): void {
  console.log(
    `artifact throughput: ${report.sizeMiB} MiB via ${report.endpoint}, ` +
      `store parts ${report.partSizeMiB} MiB x ${report.queueSize}`,
  );
  console.log('phase          seconds    MiB/s   RSS growth MiB   CPU s');
  for (const p of report.phases) {
    console.log(
      `${p.phase.padEnd(14)} ${p.seconds.toFixed(2).padStart(7)} ${p.mibPerSecond.toFixed(1).padStart(8)} ` +
        `${p.rssGrowthMiB.toFixed(1).padStart(16)} ${p.cpuSeconds.toFixed(2).padStart(7)}`,
    );
  }
  console.log(`tempered/baseline: put ${report.ratio.put}, get ${report.ratio.get}; peak RSS growth ${report.peakRssGrowthMiB} MiB`);
  console.log(JSON.stringify(report));
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
