import type { RunSummary } from '../workflows/types';
import { describeStage } from './progress-view';

/** A human-readable summary: one line per stage, with outputs and the metrics worth a glance. */
export function formatSummary(summary: RunSummary): string {
  const early = summary.endedEarly ? `  (ended early: ${summary.endedEarly.reason}, said stage "${summary.endedEarly.stage}")` : '';
  const lines = [`run ${summary.runId}  ${summary.pipeline}  ${summary.status.toUpperCase()}${early}`];
  if (summary.waiting) lines.push(`  waiting: ${summary.waiting}`);
  const width = Math.max(0, ...Object.keys(summary.stages).map((n) => n.length));
  for (const [name, stage] of Object.entries(summary.stages)) {
    lines.push(`  ${name.padEnd(width)}  ${describeStage(stage)}`);
    for (const output of stage.outputs) lines.push(`  ${''.padEnd(width)}    ${output.name}: ${output.uri} (${formatBytes(output.bytes)})`);
  }
  return lines.join('\n');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * The numbers a demo run is for: each evaluation's accuracy/F1 (or perplexity), the two-phase
 * lift, distillation and quantization trade-offs, training throughput. Empty if none apply.
 */
export function formatHeadline(summary: RunSummary): string {
  const lines: string[] = [];
  const stages = Object.entries(summary.stages).filter(([, s]) => s.status === 'succeeded' || s.status === 'cached');
  const num = (v: unknown, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : '?');
  for (const [name, s] of stages) {
    const m = s.metrics as Record<string, any>;
    if (s.type === 'evaluate') {
      const task = typeof m.macroF1 === 'number' ? `accuracy ${num(m.accuracy)}  macro-F1 ${num(m.macroF1)}` : `perplexity ${num(m.perplexity, 1)}`;
      const robust = m.robustness ? `  (perturbed: macro-F1 -${num(m.robustness.drop.macroF1)})` : '';
      lines.push(`  ${name}: ${task}${robust}  [${formatBytes(m.modelBytes ?? 0)}]`);
    } else if (s.type === 'finetune' || s.type === 'distill') {
      lines.push(`  ${name}: ${m.steps} steps, ${m.tokensPerSec} tokens/s on ${m.backend}${m.threads > 1 ? ` (${m.threads} threads)` : ''}, ${m.parameters} parameters${m.trainableFraction < 1 ? `, ${(m.trainableFraction * 100).toFixed(1)}% trainable` : ''}`);
      if (s.type === 'distill') lines.push(`    student/teacher macro-F1 ${num(m.studentTeacherRatio)}, ${num(m.compression, 1)}x fewer parameters, ${num(m.speedup, 1)}x faster`);
    } else if (s.type === 'quantize') {
      lines.push(`  ${name}: ${formatBytes(m.bytesBefore)} -> ${formatBytes(m.bytesAfter)} (${(m.reduction * 100).toFixed(1)}% smaller), macro-F1 ${m.metricDelta >= 0 ? '+' : ''}${num(m.metricDelta)}`);
    }
  }
  const f1 = (name: string) => (summary.stages[name]?.metrics as { macroF1?: number } | undefined)?.macroF1;
  for (const [name] of stages) {
    if (!name.includes('two-phase')) continue;
    const single = name.replace('two-phase', 'single-phase');
    const [two, one] = [f1(name), f1(single)];
    if (typeof two === 'number' && typeof one === 'number') {
      lines.push(`  two-phase vs single-phase macro-F1: ${two.toFixed(3)} vs ${one.toFixed(3)} (${two >= one ? '+' : ''}${(((two - one) / one) * 100).toFixed(1)}% relative)`);
    }
  }
  return lines.length ? ['headline:', ...lines].join('\n') : '';
}
