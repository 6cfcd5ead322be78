import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { planResume } from '../../cli/resume';
import type { RunSummary, StageProgress } from '../../workflows/types';

const spec = (clean: string) => `apiVersion: tempered.dev/v1
name: r
stages:
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  clean: { type: clean, input: collect${clean} }
  split: { type: split, input: clean }
  other: { type: noop }
  report: { type: noop, after: [split, other] }
`;

function summaryOf(statuses: Record<string, StageProgress['status']>): RunSummary {
  const stages = Object.fromEntries(
    Object.entries(statuses).map(([name, status]) => [
      name,
      { status, type: 'x', taskQueue: 'cpu', attempts: 1, cached: false, outputs: [], metrics: {}, manifest: { uri: `s3://b/${name}/manifest.json`, sha256: 'a'.repeat(64), bytes: 1, mediaType: 'application/json' } },
    ]),
  );
  return { runId: 'old', workflowId: 'r--old', pipeline: 'r', status: 'failed', stages };
}

test('reuses what succeeded and runs the failed stage and its descendants', () => {
  const plan = planPipeline(loadSpecText(spec(''), 'x.yaml'));
  const { decisions, reuse } = planResume(
    { plan, summary: summaryOf({ collect: 'succeeded', clean: 'succeeded', split: 'failed', other: 'cached', report: 'skipped' }) },
    plan,
  );
  expect(decisions.map((d) => `${d.action} ${d.stage}`)).toEqual(['reuse collect', 'reuse other', 'reuse clean', 'run split', 'run report']);
  expect(decisions.find((d) => d.stage === 'report')!.reason).toBe('upstream split will run again');
  expect(Object.keys(reuse).sort()).toEqual(['clean', 'collect', 'other']);
  expect(reuse.clean).toEqual({ runId: 'old', manifest: expect.objectContaining({ uri: 's3://b/clean/manifest.json' }) });
});

test('a changed spec invalidates exactly the changed stages and their descendants, and says so', () => {
  const plan = planPipeline(loadSpecText(spec(''), 'x.yaml'));
  const changed = planPipeline(loadSpecText(spec(', minChars: 5'), 'x.yaml'));
  const all = summaryOf({ collect: 'succeeded', clean: 'succeeded', split: 'succeeded', other: 'succeeded', report: 'succeeded' });
  const { decisions } = planResume({ plan, summary: all }, changed);
  expect(Object.fromEntries(decisions.map((d) => [d.stage, `${d.action}: ${d.reason}`]))).toEqual({
    collect: 'reuse: succeeded in run old',
    other: 'reuse: succeeded in run old',
    clean: 'run: its spec changed',
    split: 'run: upstream clean will run again',
    report: 'run: upstream split will run again',
  });
});
