import { formatBytes } from '../format';
import { isRecord } from './report-model';

// How numbers read in the report. Locale-independent (en-US grouping), so every machine renders
// the same page.

export { formatBytes };

const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** `12,044` */
export function formatCount(n: number): string {
  return grouped.format(n);
}

/** `0.9621` -> `96.2%` */
export function formatPercent(fraction: number, digits = 1): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

/** A metric fraction difference in percentage points: `0.0441` -> `+4.4 pts`. */
export function formatPoints(delta: number, digits = 1): string {
  return `${signed((delta * 100).toFixed(digits))} pts`;
}

/** `0.0481` -> `+4.8%` */
export function formatSignedPercent(fraction: number, digits = 1): string {
  return `${signed((fraction * 100).toFixed(digits))}%`;
}

/** Three significant digits, grouped: `4.12`, `0.0934`, `1,958`. */
export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return formatCount(n);
  if (Math.abs(n) >= 1000) return formatCount(Math.round(n));
  return String(Number(n.toPrecision(3)));
}

/** `382400` -> `6 m 22 s`; `51873` -> `51.9 s`; `5.52` -> `5.52 ms` */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${formatNumber(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const totalSeconds = Math.round(ms / 1000);
  const [h, m, s] = [Math.floor(totalSeconds / 3600), Math.floor((totalSeconds % 3600) / 60), totalSeconds % 60];
  return h > 0 ? `${h} h ${m} m` : `${m} m ${s} s`;
}

/** `2026-03-14T09:00:00.000Z` -> `2026-03-14 09:00:00 UTC` */
export function formatTimestamp(iso: string): string {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : `${t.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A metric value by its key's convention: `…Bytes` are sizes, `…Ms` durations, the rest counts or numbers. */
export function formatMetricValue(key: string, value: unknown): string | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    if (/bytes$/i.test(key)) return formatBytes(value);
    if (/Ms$/.test(key)) return formatElapsed(value);
    return formatNumber(value);
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return undefined;
}

/**
 * Scalar metrics and one level of nested scalars (per-reason counts such as clean's `removed`
 * and `redacted`, zero counts left out), as `[label, text]` pairs. Arrays and deeper objects are left out: they have
 * their own sections, or are too big for a table cell.
 */
export function describeMetrics(metrics: Record<string, unknown>, skip: ReadonlySet<string> = new Set()): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(metrics)) {
    if (skip.has(key)) continue;
    const scalar = formatMetricValue(key, value);
    if (scalar !== undefined) {
      pairs.push([key, scalar]);
    } else if (isRecord(value)) {
      // Per-reason counts: the zero reasons are noise; all zero reads "none".
      const entries = Object.entries(value).filter(([, v]) => v !== 0);
      const nested = entries.flatMap(([k, v]) => {
        const text = formatMetricValue(k, v);
        return text === undefined ? [] : [`${k} ${text}`];
      });
      if (nested.length > 0) pairs.push([key, nested.join(', ')]);
      else if (entries.length === 0 && Object.keys(value).length > 0) pairs.push([key, 'none']);
    }
  }
  return pairs;
}

function signed(text: string): string {
  return text.startsWith('-') ? `\u2212${text.slice(1)}` : `+${text}`;
}
