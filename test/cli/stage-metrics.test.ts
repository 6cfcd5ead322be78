import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { formatSummary } from '../../cli/format';
import { keyMetrics } from '../../cli/stage-metrics';
import type { RunSummary } from '../../workflows/types';

const summary = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/report/summary.json'), 'utf8')) as RunSummary;
const metricsOf = (name: string) => keyMetrics(summary.stages[name]);

describe('key metrics of finished stages', () => {
  test('data stages show their record counts', () => {
    expect(metricsOf('domain-collect')).toEqual(['records 12,044']);
    expect(metricsOf('domain-clean')).toEqual(['kept 9,640', 'of 12,044']);
    expect(metricsOf('domain-split')).toEqual(['train 6,748 / validation 964 / test 1,928']);
  });

  test('training stages show steps, final validation scores and throughput', () => {
    expect(metricsOf('domain-two-phase')).toEqual(['steps 180', 'val loss 0.1777', 'val acc 0.940', 'val F1 0.922', 'tok/s 1,958']);
    expect(metricsOf('general-finetune')).toEqual(['steps 300', 'val loss 4.4069', 'tok/s 1,612']);
  });

  test('evaluations show accuracy and macro-F1, quantization the size cut and metric change', () => {
    expect(metricsOf('evaluate-two-phase')).toEqual(['accuracy 0.962', 'macro-F1 0.953', 'examples 1,928']);
    expect(metricsOf('quantize-student')).toEqual(['size -72.9%', 'macroF1 Δ -0.0016']);
  });

  test('a stage of an unknown type or without numbers shows none', () => {
    expect(keyMetrics({ type: 'noop', metrics: { wallTimeMs: 3 } })).toEqual([]);
    expect(keyMetrics({ type: 'evaluate', metrics: { accuracy: 'n/a' } })).toEqual([]);
  });

  test('status prints them on each finished stage line', () => {
    const line = formatSummary(summary).split('\n').find((l) => l.trimStart().startsWith('evaluate-student '));
    expect(line).toMatch(/succeeded {2}11\.5 s {2}accuracy 0\.949 {2}macro-F1 0\.936 {2}examples 1,928$/);
  });
});
