import { formatRunList } from '../../cli/run-list';
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowExecutionDescription } from '@temporalio/client';
import { formatSince, listQuery, mergePendingActivities } from '../../cli/runs';
import type { RunSummary } from '../../workflows/types';

describe('list', () => {
  test('filters become one visibility query on the search attributes and ExecutionStatus', () => {
    expect(listQuery()).toBe("WorkflowType = 'pipelineWorkflow'");
    expect(listQuery({ pipeline: 'spam-filter', status: 'failed' })).toBe(
      "WorkflowType = 'pipelineWorkflow' AND TemperedPipeline = 'spam-filter' AND (ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut')",
    );
    // A terminated run counts as cancelled.
    expect(listQuery({ status: 'cancelled' })).toContain("(ExecutionStatus = 'Canceled' OR ExecutionStatus = 'Terminated')");
  });

  test('rows line up under a header; a running run has no duration yet', () => {
    const text = formatRunList([
      { workflowId: 'p--a', runId: 'a', pipeline: 'spam-filter', status: 'succeeded', startedAt: '2026-12-03T10:00:00.000Z', endedAt: '2026-12-03T10:06:28.000Z' },
      { workflowId: 'q--bb', runId: 'bb', pipeline: 'q', status: 'running', startedAt: '2026-12-03T11:00:00.000Z' },
    ]);
    expect(text.split('\n')).toEqual([
      'RUN  PIPELINE     STATUS     STARTED                  TOOK',
      'a    spam-filter  succeeded  2026-12-03 10:00:00 UTC  6 m 28 s',
      'bb   q            running    2026-12-03 11:00:00 UTC',
    ]);
  });

  test('waiting times read as a time and how long ago', () => {
    const now = new Date('2026-12-03T12:10:00Z');
    expect(formatSince(new Date('2026-12-03T12:09:15Z'), now)).toBe('2026-12-03 12:09:15 UTC, 45 s ago');
    expect(formatSince(new Date('2026-12-03T12:04:00Z'), now)).toBe('2026-12-03 12:04:00 UTC, 6 min ago');
    expect(formatSince(new Date('2026-12-03T09:10:00Z'), now)).toBe('2026-12-03 09:10:00 UTC, 3.0 h ago');
  });
});

describe('status of a running run', () => {
  const stage = (status: 'running' | 'succeeded') => ({ status, type: 'clean', taskQueue: 'cpu', attempts: 1, cached: false, outputs: [], metrics: {} });
  const pending = (activityId: string) => ({
    activityId,
    attempt: 2,
    heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload({ phase: 'starting' })] },
  });

  test("the server's pending attempts fill running stages, never ones the workflow has seen end", () => {
    // The description is read before the query: a stage can be pending in it and done in the answer.
    const summary = { runId: 'r', workflowId: 'p--r', pipeline: 'p', status: 'running', startedAt: '', stages: { clean: stage('succeeded'), train: stage('running') } } as RunSummary;
    mergePendingActivities(summary, { raw: { pendingActivities: [pending('clean'), pending('train')] } } as unknown as Pick<WorkflowExecutionDescription, 'raw'>);
    expect(summary.stages.train).toMatchObject({ attempts: 2, heartbeat: { phase: 'starting' } });
    expect(summary.stages.clean).toEqual(stage('succeeded'));
  });
});
