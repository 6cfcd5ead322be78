import * as os from 'node:os';
import * as path from 'node:path';
import { defaultReportDir, ReportPathError } from '../../cli/report';
import { localQueuePrefix } from '../../cli/runs';
import { tempered } from '../support/cli';

// Run ids from the command line are checked before anything reaches Temporal or the store: a bad
// one exits 2 with one line stating the rule, even with no server running.

const NO_SERVER = { TEMPORAL_ADDRESS: '', TEMPERED_STORE: '' };
const RULE = '(pattern ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)';

test.concurrent.each([
  [['status', '../../x'], 'invalid run id "../../x": it contains ".."'],
  [['cancel', '..'], 'invalid run id "..": it contains ".."'],
  [['report', 'a/b'], 'invalid run id "a/b": it contains a path separator'],
  [['resume', ''], 'invalid run id "": it is empty'],
  [['status', 'x'.repeat(1000)], `invalid run id "${'x'.repeat(40)}"... (1000 characters): it has 1000 characters`],
  [['status', 'p--../../x'], 'invalid run id "p--../../x": as a workflow id <pipeline>--<run id>, its run id part "../../x" is invalid'],
  [['run', 'pipelines/examples/demo.yaml', '--run-id', 'x--y'], 'invalid run id "x--y": it contains "--"'],
  [['run', 'pipelines/examples/demo.yaml', '--run-id', '../x'], 'invalid run id "../x": it contains ".."'],
  [['models', 'register', 'm', '--run', 'a/b', '--stage', 's'], 'invalid run id "a/b"'],
  [['schedule', 'create', 'pipelines/examples/demo.yaml', '--every', '1d', '--id', 'a/b'], 'invalid schedule id "a/b"'],
])('tempered %j exits 2 with one line stating the rule', async (args, message) => {
  const { code, stdout, stderr } = await tempered(args, NO_SERVER, 60_000);
  expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  expect(stderr.trim().split('\n')).toHaveLength(1);
  expect(stderr).toContain(message);
  expect(stderr).toContain(RULE);
});

describe('report folder', () => {
  const reports = path.join(os.tmpdir(), 'state', 'reports');

  test('a run report goes into its own folder directly inside the reports folder', () => {
    expect(defaultReportDir(reports, '20261127-030000-a1b2c3')).toBe(path.join(reports, '20261127-030000-a1b2c3'));
  });

  test.each(['../../x', '..', '.', '', 'a/b', '/etc', 'a\\b'])('run id %j cannot put it anywhere else', (runId) => {
    expect(() => defaultReportDir(reports, runId)).toThrow(ReportPathError);
    expect(() => defaultReportDir(reports, runId)).toThrow(/would put its report outside .*; pass --out <dir>/);
  });
});

test('each --local process gets task queues of its own', () => {
  const a = localQueuePrefix();
  const b = localQueuePrefix();
  expect(a).toMatch(/^local-[0-9a-f]{8}-$/);
  expect(a).not.toBe(b);
  expect(localQueuePrefix('team-')).toMatch(/^team-local-[0-9a-f]{8}-$/);
});
