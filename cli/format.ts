import type { RunSummary } from '../workflows/types';
import { describeStage } from './progress-view';

/** A human-readable summary: one line per stage, with outputs and the metrics worth a glance. */
export function formatSummary(summary: RunSummary): string {
  const lines = [`run ${summary.runId}  ${summary.pipeline}  ${summary.status.toUpperCase()}`];
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
