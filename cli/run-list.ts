import type { RunListing } from './runs';
import { formatElapsed, formatTimestamp } from './report/format-values';

/** `tempered list`: a header, then one row per run. */
export function formatRunList(runs: readonly RunListing[]): string {
  const rows = runs.map((r) => [r.runId, r.pipeline, r.status, formatTimestamp(r.startedAt), r.endedAt && r.startedAt ? formatElapsed(Date.parse(r.endedAt) - Date.parse(r.startedAt)) : '']);
  const table = [['RUN', 'PIPELINE', 'STATUS', 'STARTED', 'TOOK'], ...rows];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}
