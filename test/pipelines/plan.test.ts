import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { topologicalOrder, findCycle } from '../../pipelines/graph';

const spec = `apiVersion: tempered.dev/v1
name: p
defaults: { retry: { maxAttempts: 4 }, heartbeatTimeout: 30s }
stages:
  split: { type: split, input: clean }
  collect: { type: collect, sources: [{ path: "*.txt" }] }
  clean: { type: clean, input: collect, retry: { maxAttempts: 1 } }
  report: { type: noop, after: [split, other], resources: { gpu: 1 }, timeout: 2h }
  other: { type: noop }
`;

describe('planPipeline', () => {
  const plan = planPipeline(loadSpecText(spec, '/specs/p.yaml'));

  test('orders stages so each follows its dependencies, and groups parallel levels', () => {
    const order = plan.stages.map((s) => s.name);
    expect(order.indexOf('collect')).toBeLessThan(order.indexOf('clean'));
    expect(order.indexOf('clean')).toBeLessThan(order.indexOf('split'));
    expect(order.indexOf('split')).toBeLessThan(order.indexOf('report'));
    expect(plan.levels).toEqual([['collect', 'other'], ['clean'], ['split'], ['report']]);
  });

  test('resolves inputs, routing, timeouts and retry policy with defaults', () => {
    const byName = Object.fromEntries(plan.stages.map((s) => [s.name, s]));
    expect(byName.clean.inputs).toEqual(['collect']);
    expect(byName.report.inputs).toEqual([]);
    expect(byName.report.dependsOn).toEqual(['split', 'other']);
    expect(byName.report.activity.taskQueue).toBe('gpu');
    expect(byName.clean.activity.taskQueue).toBe('cpu');
    expect(byName.report.activity.startToCloseTimeoutMs).toBe(7_200_000);
    expect(byName.clean.activity.heartbeatTimeoutMs).toBe(30_000);
    expect(byName.clean.activity.retry.maximumAttempts).toBe(1);
    expect(byName.split.activity.retry.maximumAttempts).toBe(4);
    expect(byName.clean.config).not.toHaveProperty('retry');
    expect(byName.clean.config).toHaveProperty('nearDedup');
    expect(plan.baseDir).toBe('/specs');
  });

  test('config digests change with the config and nothing else', () => {
    const again = planPipeline(loadSpecText(spec.replace('name: p', 'name: q'), '/elsewhere/p.yaml'));
    const changed = planPipeline(loadSpecText(spec.replace('input: collect,', 'input: collect, minChars: 5,'), '/specs/p.yaml'));
    const digest = (p: typeof plan, n: string) => p.stages.find((s) => s.name === n)!.configDigest;
    expect(digest(again, 'clean')).toBe(digest(plan, 'clean'));
    expect(digest(changed, 'clean')).not.toBe(digest(plan, 'clean'));
    expect(digest(changed, 'collect')).toBe(digest(plan, 'collect'));
  });
});

describe('graph helpers', () => {
  test('topologicalOrder is stable and findCycle returns the loop', () => {
    const deps = new Map([['c', ['a', 'b']], ['b', ['a']], ['a', []]]);
    expect(topologicalOrder(deps)).toEqual(['a', 'b', 'c']);
    expect(findCycle(deps)).toBeUndefined();
    expect(findCycle(new Map([['a', ['c']], ['b', ['a']], ['c', ['b']]]))).toEqual(['a', 'c', 'b', 'a']);
  });
});
