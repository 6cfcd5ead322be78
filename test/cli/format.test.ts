import { formatHeadline, formatSummary } from '../../cli/format';
import type { RunSummary, StageProgress } from '../../workflows/types';

const stage = (over: Partial<StageProgress>): StageProgress => ({ status: 'succeeded', type: 'noop', taskQueue: 'cpu', attempts: 1, cached: false, outputs: [], metrics: {}, ...over });

test('a run that ended early says why, and each skipped stage says it was not needed', () => {
  const summary: RunSummary = {
    runId: 'r1',
    workflowId: 'p--r1',
    pipeline: 'p',
    status: 'succeeded',
    endedEarly: { stage: 'collect', reason: 'nothing new since the last completed cycle' },
    stages: {
      collect: stage({ type: 'collect', metrics: { wallTimeMs: 1200 } }),
      train: stage({ type: 'finetune', status: 'skipped', note: 'not needed: nothing new since the last completed cycle (stage "collect")' }),
    },
  };
  const lines = formatSummary(summary).split('\n');
  expect(lines[0]).toBe('run r1  p  SUCCEEDED  (ended early: nothing new since the last completed cycle, said stage "collect")');
  expect(lines[1]).toMatch(/^ {2}collect {2}succeeded {2}1\.2 s$/);
  expect(lines[2]).toMatch(/^ {2}train {4}skipped {2}not needed: nothing new since the last completed cycle \(stage "collect"\)$/);
});

test('a skipped stage of a failed run shows no note', () => {
  const summary: RunSummary = { runId: 'r2', workflowId: 'p--r2', pipeline: 'p', status: 'failed', stages: { b: stage({ status: 'skipped' }) } };
  expect(formatSummary(summary)).toBe('run r2  p  FAILED\n  b  skipped');
});

test('the headline shows an sft evaluation\'s BLEU and ROUGE-L and a comparison\'s lifts on them', () => {
  const evaluation = (perplexity: number, bleu: number, rougeL: number) => stage({ type: 'evaluate', metrics: { perplexity, bleu, rouge: { rouge1: 0, rouge2: 0, rougeL }, split: 'test', modelBytes: 1024 } });
  const summary: RunSummary = {
    runId: 'r3',
    workflowId: 'p--r3',
    pipeline: 'p',
    status: 'succeeded',
    stages: { tuned: evaluation(58.9, 1.62, 0.0652), base: evaluation(151.7, 2.18, 0.0666) },
    comparisons: [{ name: 'tuned vs base', candidate: 'tuned', baseline: 'base', metrics: ['rougeL', 'bleu'] }],
  };
  const lines = formatHeadline(summary).split('\n');
  expect(lines).toContain('  tuned: perplexity 58.9  BLEU 1.62  ROUGE-L 0.065 on test  [1.0 KiB]');
  expect(lines).toContain('  tuned vs base: rougeL 0.067 -> 0.065 (-0.001, -2.1% relative)  WORSE than the baseline');
  expect(lines.some((l) => l.startsWith('  tuned vs base: bleu 2.180 -> 1.620'))).toBe(true);
});
