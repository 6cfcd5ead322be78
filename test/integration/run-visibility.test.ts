import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { temporal } from '@temporalio/proto';
import { defaultPayloadConverter } from '@temporalio/common';
import { loadSpecText } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';
import { newRunId, startRun } from '../../cli/runs';
import { PIPELINE_ATTRIBUTE, RUN_ID_ATTRIBUTE } from '../../workflows/search-attributes';
import type { RunSummary } from '../../workflows/types';
import { spawnTempered, tempered } from '../support/cli';
import { startHarness, waitForSummary, type Harness } from '../support/harness';

// What a run shows outside Tempered, on the real dev server: in the Temporal UI (static summary,
// activity summaries, current details, search attributes) and to `list` filters; and what
// `status`, `cancel` and `terminate` say about a run that no worker picks up.

let h: Harness;
const env = { TEMPERED_STORE: `s3://visibility-${randomBytes(4).toString('hex')}` };

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

const spec = (name: string) => `apiVersion: tempered.dev/v1
name: ${name}
stages:
  prepare: { type: noop }
  train: { type: noop, after: [prepare], sleepMs: 1, resources: { gpu: 1 } }
`;

async function startOf(name: string, queuePrefix = '') {
  const plan = planPipeline(loadSpecText(spec(name), path.join(__dirname, 'spec.yaml')), { queuePrefix });
  const runId = newRunId();
  const { workflowId } = await startRun(h.client, plan, runId);
  return { plan, runId, workflowId };
}

/** `list` reads the server's visibility index, which catches up with a finished run within moments. */
async function listUntil(args: string[], done: (stdout: string) => boolean) {
  let result = await tempered(args, env);
  for (let i = 0; i < 40 && result.code === 0 && !done(result.stdout); i++) {
    await new Promise((r) => setTimeout(r, 250));
    result = await tempered(args, env);
  }
  return result;
}

test('a run carries its pipeline, run id and progress to the Temporal UI', async () => {
  const name = `ui-${randomBytes(3).toString('hex')}`;
  const { plan, runId, workflowId } = await startOf(name);
  const summary = await waitForSummary(h.client, workflowId);
  expect(summary.status).toBe('succeeded');

  const handle = h.client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  expect(description.typedSearchAttributes.get(PIPELINE_ATTRIBUTE)).toBe(name);
  expect(description.typedSearchAttributes.get(RUN_ID_ATTRIBUTE)).toBe(runId);
  expect(await description.staticSummary()).toBe(`${name} run ${runId} (2 stages)`);
  const details = await description.staticDetails();
  expect(details).toContain(plan.specDigest);
  expect(details).toContain('train (noop, gpu)');

  // Each activity bar is labelled with its stage, not only its type.
  const history = await handle.fetchHistory();
  const summaries = (history.events ?? [])
    .filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    .map((e) => defaultPayloadConverter.fromPayload(e.userMetadata!.summary!));
  expect(summaries).toEqual(['prepare (noop)', 'train (noop)']);

  const metadata = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
  expect(metadata.currentDetails).toBe('succeeded: 2/2 stages done');
});

test('list filters by pipeline and status on the server, under a header', async () => {
  const name = `list-${randomBytes(3).toString('hex')}`;
  const { runId, workflowId } = await startOf(name);
  await waitForSummary(h.client, workflowId);
  const other = await startOf(`list-other-${randomBytes(3).toString('hex')}`);
  await waitForSummary(h.client, other.workflowId);

  const mine = await listUntil(['list', '--pipeline', name], (out) => out.includes(runId));
  expect(mine.code).toBe(0);
  const lines = mine.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^RUN\s+PIPELINE\s+STATUS\s+STARTED\s+TOOK$/);
  expect(lines.slice(1)).toHaveLength(1);
  expect(lines[1]).toMatch(new RegExp(`^${runId}\\s+${name}\\s+succeeded\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC\\s+\\S`));

  const succeeded = JSON.parse((await tempered(['list', '--pipeline', name, '--status', 'succeeded', '--json'], env)).stdout) as Array<{ runId: string }>;
  expect(succeeded.map((r) => r.runId)).toEqual([runId]);
  const failed = await tempered(['list', '--pipeline', name, '--status', 'failed'], env);
  expect(failed.stdout.trim()).toBe('no runs match');

  const bad = await tempered(['list', '--status', 'done'], env);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("'done' is invalid");
});

test('a run no worker picks up says so in status; cancel says it cannot end it and terminate does', async () => {
  const prefix = `stuck-${randomBytes(3).toString('hex')}-`;
  const { runId } = await startOf(`stuck-${randomBytes(3).toString('hex')}`, prefix);

  const status = await tempered(['status', runId], env);
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(new RegExp(`waiting: no worker polls task queue "${prefix}cpu" \\(the run's workflow tasks wait since .*, \\d+ s ago\\); start one with "tempered worker --queue cpu" and TEMPERED_TASK_QUEUE_PREFIX=${prefix}`));

  expect(status.stdout).toMatch(/\n {2}prepare {2}pending\n {2}train {4}pending/);

  const cancel = await tempered(['cancel', runId, '--wait', '1'], env);
  expect(cancel.code).toBe(1);
  expect(cancel.stdout).toContain('still running after 1 s');
  expect(cancel.stdout).toContain(`"tempered terminate ${runId}" ends it now`);

  const terminate = await tempered(['terminate', runId], env);
  expect(terminate.code).toBe(0);
  expect(terminate.stdout.trim()).toMatch(/ is cancelled$/);
  const after = JSON.parse((await tempered(['status', runId, '--json'], env)).stdout) as RunSummary;
  expect(after.status).toBe('cancelled');
});

test('a stage whose queue no worker polls says which queue, and since when', async () => {
  const prefix = `half-${randomBytes(3).toString('hex')}-`;
  const { runId } = await startOf(`half-${randomBytes(3).toString('hex')}`, prefix);
  const cpu = spawnTempered(['worker', '--queue', 'cpu'], { ...env, TEMPERED_TASK_QUEUE_PREFIX: prefix });
  try {
    let summary: RunSummary | undefined;
    for (let i = 0; i < 120 && summary?.stages.train?.status !== 'queued'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      summary = JSON.parse((await tempered(['status', runId, '--json'], env)).stdout) as RunSummary;
    }
    expect(summary?.stages.prepare.status).toBe('succeeded');
    expect(summary?.stages.train.note).toMatch(new RegExp(`^no worker polls task queue "${prefix}gpu" since it was scheduled .* ago; start one with "tempered worker --queue gpu"`));
    expect(summary?.waiting).toBe(`stage "train" waits for a worker on task queue "${prefix}gpu"`);
  } finally {
    cpu.kill('SIGTERM');
    await tempered(['terminate', runId], env);
  }
});
