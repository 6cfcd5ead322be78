import type { RunSummary } from '../workflows/types';
import { describeStage } from './progress-view';
import { buildReportModel, computeLifts, type Lift } from './report/report-model';

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
 * The numbers a demo run is for: each evaluation's accuracy/F1 (or perplexity), the declared
 * comparisons' lifts (with their bootstrap interval when `lifts` come from a report that read the
 * predictions), distillation and quantization trade-offs, training throughput. A result worse than
 * its baseline says so. Empty if none apply.
 */
export function formatHeadline(summary: RunSummary, lifts: readonly Lift[] = computeLifts(buildReportModel(summary).evaluations, summary.comparisons)): string {
  const lines: string[] = [];
  const stages = Object.entries(summary.stages).filter(([, s]) => s.status === 'succeeded' || s.status === 'cached');
  const num = (v: unknown, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : '?');
  const signed = (v: number, digits = 3) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
  for (const [name, s] of stages) {
    const m = s.metrics as Record<string, any>;
    if (s.type === 'evaluate') {
      const generations = typeof m.rouge?.rougeL === 'number' || typeof m.bleu === 'number' ? `${typeof m.bleu === 'number' ? `  BLEU ${num(m.bleu, 2)}` : ''}${typeof m.rouge?.rougeL === 'number' ? `  ROUGE-L ${num(m.rouge.rougeL)}` : ''}` : '';
      const task = typeof m.macroF1 === 'number' ? `accuracy ${num(m.accuracy)}  macro-F1 ${num(m.macroF1)}` : `perplexity ${num(m.perplexity, 1)}${generations}`;
      // The change on perturbed inputs in points, negative when worse: the report's chart and table show the same.
      const robust = typeof m.robustness?.drop?.macroF1 === 'number' ? `  (perturbed inputs: macro-F1 ${signed(-m.robustness.drop.macroF1 * 100, 1)} pts)` : '';
      const split = typeof m.split === 'string' ? ` on ${m.split}` : '';
      lines.push(`  ${name}: ${task}${split}${robust}  [${formatBytes(m.modelBytes ?? 0)}]`);
    } else if (s.type === 'finetune' || s.type === 'distill') {
      lines.push(`  ${name}: ${m.steps} steps, ${m.tokensPerSec} tokens/s on ${m.engine === 'torch' ? `torch ${m.torch ?? ''} (${m.device ?? 'cpu'})` : m.backend}${m.threads > 1 ? ` (${m.threads} threads)` : ''}, ${m.parameters} parameters${m.trainableFraction < 1 ? `, ${(m.trainableFraction * 100).toFixed(1)}% trainable` : ''}`);
      if (s.type === 'distill') lines.push(`    student/teacher ${m.metric === 'valPerplexity' ? 'quality (teacher/student perplexity)' : 'macro-F1'} on the validation split ${num(m.studentTeacherRatio)}, ${num(m.compression, 1)}x fewer parameters, ${num(m.speedup, 1)}x faster`);
    } else if (s.type === 'quantize') {
      const slower = typeof m.latencyBeforeMs === 'number' && typeof m.latencyAfterMs === 'number' && m.latencyAfterMs > m.latencyBeforeMs;
      const latency = typeof m.latencyAfterMs === 'number' ? `, latency ${num(m.latencyBeforeMs, 2)} -> ${num(m.latencyAfterMs, 2)} ms${slower ? '  WORSE: slower than the float model' : ''}` : '';
      lines.push(`  ${name}: ${formatBytes(m.bytesBefore)} -> ${formatBytes(m.bytesAfter)} (${(m.reduction * 100).toFixed(1)}% smaller), ${m.metric === 'perplexity' ? 'perplexity' : 'macro-F1'} ${signed(m.metricDelta)}${latency}`);
    }
  }
  for (const l of lifts) {
    if (l.metric !== 'macroF1' && l.metric !== 'perplexity' && l.metric !== 'rougeL' && l.metric !== 'bleu' && !(l.metric === 'accuracy' && !lifts.some((o) => o.comparison === l.comparison && o.metric === 'macroF1'))) continue;
    const interval = l.interval?.ok ? `; 95% CI ${signed(l.interval.low)} to ${signed(l.interval.high)}` : '';
    lines.push(
      `  ${l.comparison}: ${l.metric} ${num(l.baselineValue)} -> ${num(l.candidateValue)} (${signed(l.absolute)}, ${signed(l.relative * 100, 1)}% relative${interval})${l.worse ? '  WORSE than the baseline' : ''}`,
    );
  }
  return lines.length ? ['headline:', ...lines].join('\n') : '';
}
