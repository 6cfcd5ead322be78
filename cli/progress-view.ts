import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { RunSummary, StageProgress } from '../workflows/types';
import { keyMetrics } from './stage-metrics';

// Live per-stage progress while `tempered run --wait` waits: bars on a terminal, one line per
// change elsewhere (CI logs, pipes).

const DONE = new Set(['succeeded', 'cached', 'failed', 'skipped', 'cancelled']);

/** Draws a summary repeatedly; call `update` on every poll and `stop` at the end. */
export interface ProgressView {
  update(summary: RunSummary): void;
  stop(): void;
}

/** Bars if `stream` is a terminal, otherwise status-change lines. */
export function createProgressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  return stream.isTTY ? new BarView(stream) : new LineView(stream);
}

/** `step 40/200 loss 2.31` from heartbeat details, or the status. */
export function describeStage(stage: StageProgress): string {
  const hb = (stage.heartbeat ?? {}) as Record<string, unknown>;
  const parts: string[] = [stage.status];
  if (stage.status === 'running') {
    if (stage.attempts > 1) parts.push(`attempt ${stage.attempts}`);
    if (typeof hb.phase === 'string') parts.push(hb.phase);
    if (typeof hb.done === 'number' && typeof hb.total === 'number') parts.push(`${hb.done}/${hb.total}`);
    if (typeof hb.step === 'number' && typeof hb.totalSteps === 'number') parts.push(`step ${hb.step}/${hb.totalSteps}`);
    if (typeof hb.loss === 'number') parts.push(`loss ${hb.loss.toFixed(3)}`);
    if (typeof hb.tokensPerSec === 'number') parts.push(`${Math.round(hb.tokensPerSec)} tok/s`);
  } else if (stage.status === 'failed' && stage.error) {
    parts.push(stage.error);
  } else if (stage.status === 'skipped' && stage.note) {
    parts.push(stage.note);
  } else if (stage.status === 'queued' && (stage.note || stage.error)) {
    // Between attempts a stage is queued again: why the last one failed (e.g. too few GPUs on its worker).
    if (stage.note) parts.push(stage.note);
    if (stage.error) parts.push(stage.error);
  } else if (stage.status === 'succeeded' || stage.status === 'cached') {
    if (stage.cachedFrom) parts.push(`from run ${stage.cachedFrom}`);
    else if (typeof stage.metrics.wallTimeMs === 'number') parts.push(`${(stage.metrics.wallTimeMs / 1000).toFixed(1)} s`);
    parts.push(...keyMetrics(stage));
  }
  return parts.join('  ');
}

function fraction(stage: StageProgress): number {
  if (DONE.has(stage.status)) return 1;
  const hb = (stage.heartbeat ?? {}) as { step?: unknown; totalSteps?: unknown };
  return typeof hb.step === 'number' && typeof hb.totalSteps === 'number' && hb.totalSteps > 0 ? hb.step / hb.totalSteps : 0;
}

class BarView implements ProgressView {
  private readonly multi: MultiBar;
  private readonly bars = new Map<string, SingleBar>();

  constructor(stream: NodeJS.WriteStream) {
    this.multi = new MultiBar(
      { stream, format: ' {stage} |{bar}| {detail}', hideCursor: true, clearOnComplete: false, barsize: 24, autopadding: true },
      Presets.shades_classic,
    );
  }

  update(summary: RunSummary): void {
    const width = Math.max(...Object.keys(summary.stages).map((n) => n.length));
    for (const [name, stage] of Object.entries(summary.stages)) {
      const payload = { stage: name.padEnd(width), detail: describeStage(stage) };
      let bar = this.bars.get(name);
      if (!bar) {
        bar = this.multi.create(1000, 0, payload);
        this.bars.set(name, bar);
      }
      bar.update(Math.round(fraction(stage) * 1000), payload);
    }
  }

  stop(): void {
    this.multi.stop();
  }
}

class LineView implements ProgressView {
  private readonly last = new Map<string, string>();

  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(summary: RunSummary): void {
    for (const [name, stage] of Object.entries(summary.stages)) {
      const line = describeStage(stage);
      const key = `${stage.status}:${stage.attempts}:${typeof (stage.heartbeat as { step?: number })?.step === 'number' ? Math.floor((stage.heartbeat as { step: number }).step / 50) : ''}`;
      if (this.last.get(name) === key) continue;
      this.last.set(name, key);
      this.stream.write(`  ${name}: ${line}\n`);
    }
  }

  stop(): void {}
}
