import type { EvaluateOptions } from '../../pipelines/stage-types';
import type { Metrics } from '../../workflows/types';

// An evaluation's gate, for every engine: the run fails, not retried, unless each gated metric is
// within its bounds.

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

/** A gate a model did not pass: non-retryable, with the measured value and the threshold. */
export class GateFailedError extends Error {
  override readonly name = 'GateFailed';
  readonly nonRetryable = true;
  constructor(
    readonly stage: string,
    readonly failures: Array<{ metric: string; value: number | undefined; min?: number; max?: number }>,
  ) {
    super(
      `gate of stage "${stage}" failed: ${failures
        .map((f) =>
          f.value === undefined
            ? `${f.metric} was not measured (available metrics are listed in the evaluate stage docs)`
            : `${f.metric} = ${round(f.value)} ${f.min !== undefined && f.value < f.min ? `< min ${f.min}` : `> max ${f.max}`}`,
        )
        .join('; ')}`,
    );
  }
}

/** Checks every gated metric; names may be nested with dots (e.g. `robustness.macroF1`). */
export function checkGate(
  gate: NonNullable<EvaluateOptions['gate']>,
  metrics: Metrics,
): { passed: boolean; checks: Array<{ metric: string; value: number | undefined; min?: number; max?: number; passed: boolean }>; failures: GateFailedError['failures'] } {
  const checks = Object.entries(gate).map(([metric, bounds]) => {
    const value = metric.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), metrics);
    const number = typeof value === 'number' ? value : undefined;
    const passed = number !== undefined && (bounds.min === undefined || number >= bounds.min) && (bounds.max === undefined || number <= bounds.max);
    return { metric, value: number, ...bounds, passed };
  });
  const failures = checks.filter((c) => !c.passed).map(({ metric, value, min, max }) => ({ metric, value, min, max }));
  return { passed: failures.length === 0, checks, failures };
}

