import { formatSummary } from '../../cli/format';
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
