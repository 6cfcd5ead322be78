import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { readServers } from '../../infra/servers';
import { tempered } from '../support/cli';

// What a user of mature CLIs expects, on the real servers from globalSetup: the state directory
// found from any subfolder, `up` recognising its own servers, and input errors that exit 2.

const withoutProductionSettings = { TEMPORAL_ADDRESS: undefined, TEMPORAL_NAMESPACE: undefined, TEMPERED_STORE: undefined };
let project: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  // A project whose .tempered is the test servers' state directory.
  project = await mkdtemp(path.join(os.tmpdir(), 'tempered-project-'));
  await symlink(process.env.TEMPERED_TEST_STATE_DIR!, path.join(project, '.tempered'));
  await mkdir(path.join(project, 'pipelines', 'drafts'), { recursive: true });
  env = { TEMPERED_STORE: `s3://conventions-${randomBytes(4).toString('hex')}` };
});

test('from a subfolder of the project, commands find its local servers as git finds .git', async () => {
  const cwd = path.join(project, 'pipelines', 'drafts');
  const list = await tempered(['list', '--limit', '1'], withoutProductionSettings, 60_000, cwd);
  expect(list.stderr).not.toContain('no Temporal server');
  expect(list.code).toBe(0);
  const up = await tempered(['up'], withoutProductionSettings, 60_000, cwd);
  expect(up.code).toBe(0);
  expect(up.stderr).toContain('local servers already running');
});

test('up from an unrelated folder names the Tempered servers holding its ports and how to use them', async () => {
  const servers = (await readServers(process.env.TEMPERED_TEST_STATE_DIR!))!;
  const port = (url: string) => new URL(url.includes('://') ? url : `tcp://${url}`).port;
  const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'tempered-elsewhere-'));
  const result = await tempered(
    ['up', '--temporal-port', port(servers.temporal.address), '--ui-port', port(servers.temporal.uiUrl), '--minio-port', port(servers.minio.endpoint), '--console-port', port(servers.minio.consoleUrl)],
    withoutProductionSettings,
    60_000,
    elsewhere,
  );
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("held by Tempered's own local Temporal server");
  expect(result.stderr).toContain(`--state-dir ${servers.stateDir}`);
});

test('schedule describe of an unknown id is an input error naming it, not an internal id', async () => {
  const result = await tempered(['schedule', 'describe', 'nope-not-here'], env);
  expect(result.code).toBe(2);
  expect(result.stderr.trim().split('\n').at(-1)).toMatch(/^no schedule "nope-not-here"; /);
  const pause = await tempered(['schedule', 'pause', 'nope-not-here'], env);
  expect(pause.code).toBe(2);
});

test('a cron expression the server refuses exits 2 with the expected form', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-cron-'));
  const file = path.join(dir, 'plain.yaml');
  await writeFile(file, `apiVersion: tempered.dev/v1\nname: cron-${randomBytes(3).toString('hex')}\nstages:\n  x: { type: noop }\n`);
  const result = await tempered(['schedule', 'create', file, '--cron', '61 25 * * *'], env);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('the server refused the cron expression "61 25 * * *"');
  expect(result.stderr).toContain('minute hour day-of-month month day-of-week');
});

test('cycles of an unknown pipeline exits 2; of a pipeline without cycles yet, 0 with how to start one', async () => {
  const unknown = await tempered(['cycles', 'no-such-pipeline'], env);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain('no pipeline "no-such-pipeline" in the store');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-cycles-'));
  const file = path.join(dir, 'plain.yaml');
  const name = `plain-${randomBytes(3).toString('hex')}`;
  await writeFile(path.join(dir, 'a.txt'), 'One document with enough words in it to be kept by clean.');
  await writeFile(file, `apiVersion: tempered.dev/v1\nname: ${name}\nstages:\n  collect: { type: collect, sources: [{ path: "*.txt" }] }\n`);
  expect((await tempered(['run', file, '--local'], env)).code).toBe(0);
  const known = await tempered(['cycles', name], env);
  expect(known.code).toBe(0);
  expect(known.stdout).toContain(`no completed cycles of "${name}" yet`);
});
