import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeSchedule, triggerSchedule } from '../../cli/schedules';
import { getRunSummary } from '../../cli/runs';
import { tempered } from '../support/cli';
import { PIPELINE_ATTRIBUTE, RUN_ID_ATTRIBUTE } from '../../workflows/search-attributes';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// Recurring runs on real Temporal Schedules, driven through the CLI.

let h: Harness;
let dir: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  h = await startHarness();
  env = { TEMPERED_STORE: `s3://${h.bucket}` };
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-schedules-'));
});
afterAll(async () => {
  await h?.close();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("the spec's schedule block creates a schedule; trigger starts a run; pause, unpause, describe, delete", async () => {
  const name = `sched-${randomBytes(3).toString('hex')}`;
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `apiVersion: tempered.dev/v1
name: ${name}
schedule: { every: 1d, overlap: skip }
stages:
  tick: { type: noop, sleepMs: 100, cache: false }
`);
  const created = await tempered(['schedule', 'create', file], env);
  expect(created.code).toBe(0);
  expect(created.stdout).toMatch(new RegExp(`created schedule ${name}: every 1d, overlap skip; next runs \\d{4}-`));

  expect((await tempered(['schedule', 'trigger', name], env)).code).toBe(0);
  const run = await waitFor('the triggered run', async () => (await describeSchedule(h.client, name)).recentRuns?.[0]);
  const summary = await waitForSummary(h.client, run.workflowId);
  expect(summary.status).toBe('succeeded');
  expect(summary.pipeline).toBe(name);
  expect(summary.runId).toMatch(new RegExp(`^${name}-\\d{4}-\\d\\d-\\d\\dT\\d{6}Z$`));
  expect(summary.stages.tick.outputs).toEqual([]);
  // The schedule gives each run its pipeline attribute; the run adds its own id, known once started.
  const attributes = (await h.client.workflow.getHandle(run.workflowId).describe()).typedSearchAttributes;
  expect([attributes.get(PIPELINE_ATTRIBUTE), attributes.get(RUN_ID_ATTRIBUTE)]).toEqual([name, summary.runId]);

  // status finds a scheduled run by its run id
  const status = await tempered(['status', summary.runId, '--json'], env);
  expect(JSON.parse(status.stdout).workflowId).toBe(run.workflowId);

  expect((await tempered(['schedule', 'pause', name, '--note', 'data freeze'], env)).code).toBe(0);
  const described = JSON.parse((await tempered(['schedule', 'describe', name, '--json'], env)).stdout);
  expect(described).toMatchObject({ scheduleId: name, pipeline: name, spec: 'every 1d', overlap: 'SKIP', paused: true, note: 'data freeze', actionsTaken: 1 });
  expect(described.nextRuns.length).toBeGreaterThan(0);
  expect((await tempered(['schedule', 'unpause', name], env)).code).toBe(0);
  expect((await describeSchedule(h.client, name)).paused).toBe(false);

  const listed = JSON.parse((await tempered(['schedule', 'list', '--json'], env)).stdout) as Array<{ scheduleId: string }>;
  expect(listed.map((s) => s.scheduleId)).toContain(name);
  expect((await tempered(['schedule', 'delete', name], env)).code).toBe(0);
  await expect(describeSchedule(h.client, name)).rejects.toThrow();
});

test('two overlapping ticks follow the overlap policy: skip drops the second', async () => {
  const name = `overlap-${randomBytes(3).toString('hex')}`;
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `apiVersion: tempered.dev/v1
name: ${name}
stages:
  slow: { type: noop, sleepMs: 4000, cache: false }
`);
  expect((await tempered(['schedule', 'create', file, '--every', '1d', '--overlap', 'skip'], env)).code).toBe(0);
  await triggerSchedule(h.client, name);
  await waitFor('the first run to start', async () => ((await describeSchedule(h.client, name)).runningRuns?.length ? true : undefined));
  await triggerSchedule(h.client, name);
  const view = await waitFor('the second tick to be skipped', async () => {
    const v = await describeSchedule(h.client, name);
    return (v.skippedOverlap ?? 0) >= 1 ? v : undefined;
  });
  expect(view.actionsTaken).toBe(1);
  const summary = await waitForSummary(h.client, view.recentRuns![0].workflowId);
  expect(summary.status).toBe('succeeded');
  expect((await getRunSummary(h.client, view.recentRuns![0].workflowId)).stages.slow.status).toBe('succeeded');
  await h.client.schedule.getHandle(name).delete();
});

test('bad schedule arguments are named, exit 2, and create nothing', async () => {
  const file = path.join(dir, 'plain.yaml');
  await writeFile(file, `apiVersion: tempered.dev/v1
name: plain-${randomBytes(3).toString('hex')}
stages:
  x: { type: noop }
`);
  const none = await tempered(['schedule', 'create', file], env);
  expect(none.code).toBe(2);
  expect(none.stderr).toMatch(/no schedule: pass --cron "<expr>" or --every <duration>, or add a schedule: block/);
  const bad = await tempered(['schedule', 'create', file, '--every', 'sometimes'], env);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--every "sometimes" is not a duration/);
  const zero = await tempered(['schedule', 'create', file, '--every', '500ms'], env);
  expect(zero.code).toBe(2);
  expect(zero.stderr).toMatch(/--every "500ms" must be from 1s to 366d/);
});
