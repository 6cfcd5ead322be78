import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../support/cli';

// Tempered on every supported Node major besides the one the tests run on (the `node` dev
// dependency): each is installed from the npm registry by npm into a per-machine cache, then the
// built CLI validates a spec and runs a small pipeline with in-process workers on the real servers,
// with no runtime warning on stderr.

const run = promisify(execFile);
const CACHE = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tempered', 'node-versions');
const OTHER_MAJORS = [22, 26].filter((major) => major !== Number(process.versions.node.split('.')[0]));

async function nodeBinary(major: number): Promise<string> {
  const prefix = path.join(CACHE, String(major));
  const binary = path.join(prefix, 'node_modules', '.bin', 'node');
  const present = await access(binary).then(() => true, () => false);
  if (!present) {
    await mkdir(prefix, { recursive: true });
    await writeFile(path.join(prefix, 'package.json'), JSON.stringify({ name: `node-${major}`, private: true }));
    await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', `node@${major}`], { cwd: prefix, timeout: 300_000 });
  }
  return binary;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tempered-node-versions-'));
  await writeFile(path.join(dir, 'a.txt'), 'A document with enough words in it to survive the cleaning stage.');
  await writeFile(path.join(dir, 'b.txt'), 'Another document, about ships and whales, long enough to be kept too.');
  await writeFile(path.join(dir, 'spec.yaml'), 'apiVersion: tempered.dev/v1\nname: node-versions\nstages:\n  collect: { type: collect, sources: [{ path: "*.txt" }] }\n  clean: { type: clean, input: collect }\n');
});

test.each(OTHER_MAJORS)('Node %i: the CLI validates and runs a pipeline without runtime warnings', async (major) => {
  const node = await nodeBinary(major);
  const { stdout: version } = await run(node, ['--version']);
  expect(version.trim()).toMatch(new RegExp(`^v${major}\\.`));
  const cli = path.join(ROOT, 'dist', 'cli', 'main.js');
  const env = { ...process.env, TEMPERED_STORE: `s3://node-${major}-${randomBytes(4).toString('hex')}` };
  const validate = await run(node, [cli, 'validate', path.join(ROOT, 'pipelines/examples/demo.yaml')], { env });
  expect(validate.stdout).toContain('valid, 19 stages');
  expect(validate.stderr).toBe('');
  const result = await run(node, [cli, 'run', path.join(dir, 'spec.yaml'), '--local', '--json'], { env, timeout: 120_000 });
  const summary = JSON.parse(result.stdout) as { status: string; stages: Record<string, { metrics: { records?: number } }> };
  expect(summary.status).toBe('succeeded');
  expect(summary.stages.collect.metrics.records).toBe(2);
  expect(result.stderr).not.toMatch(/warning/i);
}, 600_000);
