import { mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../../infra/servers';
import { tempered } from '../support/cli';

// Command-line conventions: argument errors exit 2 with one line and that command's usage.

const noServers = { TEMPORAL_ADDRESS: undefined, TEMPERED_STORE: undefined };

test.each([
  [['lst'], /unknown command 'lst'/, 'usage: tempered [options] [command]'],
  [['run'], /missing required argument 'spec'/, 'usage: tempered run [options] <spec>'],
  [['run', 'x.yaml', '--bogus'], /unknown option '--bogus'/, 'usage: tempered run [options] <spec>'],
  [['list', '--limit', 'abc'], /'abc' is invalid\. expected a whole number/, 'usage: tempered list [options]'],
  [['worker', '--queue', 'tpu'], /argument 'tpu' is invalid\. Allowed choices are cpu, gpu, all/, 'usage: tempered worker [options]'],
  [['schedule', 'create'], /missing required argument 'spec'/, 'usage: tempered schedule create [options] <spec>'],
  [['models', 'promote', 'spam', 'two'], /'two' is invalid for argument 'version'/, 'usage: tempered models promote [options] <name> <version>'],
])('tempered %j: exit 2, the problem in one line, and only that command\'s usage', async (args, problem, usage) => {
  const result = await tempered(args, noServers);
  expect(result.code).toBe(2);
  const lines = result.stderr.trim().split('\n').filter((line) => !line.startsWith('warning: Tempered supports Node'));
  expect(lines[0]).toMatch(problem);
  expect(lines).toContain(usage);
  expect(result.stderr).not.toContain('Commands:'); // not the whole help
  expect(result.stdout).toBe('');
});

test('--version prints the package version; --help lists the commands and exits 0', async () => {
  const version = await tempered(['--version']);
  expect(version.code).toBe(0);
  expect(version.stdout.trim()).toBe((require('../../package.json') as { version: string }).version);
  const help = await tempered(['--help']);
  expect(help.code).toBe(0);
  for (const command of ['validate', 'run', 'status', 'list', 'cancel', 'schedule', 'models', 'cycles', 'up', 'down', 'worker', 'demo']) {
    expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  }
});

test('an unreachable Temporal is named with its address and the fix within a few seconds', async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const started = Date.now();
  const result = await tempered(['status', 'some-run'], { TEMPORAL_ADDRESS: address });
  expect(Date.now() - started).toBeLessThan(10_000); // 2 s connect deadline plus start-up on a loaded machine
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(`cannot reach Temporal at ${address}`);
  expect(result.stderr).toContain('TEMPORAL_ADDRESS');
});

test('a directory given as the spec is named with the specs it holds, not EISDIR', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'spec-dir-'));
  await writeFile(path.join(dir, 'train.yaml'), 'apiVersion: tempered.dev/v1\n');
  const result = await tempered(['validate', dir]);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain(`${dir} is a directory`);
  expect(result.stderr).toContain(path.join(dir, 'train.yaml'));
  expect(result.stderr).not.toContain('EISDIR');
});
