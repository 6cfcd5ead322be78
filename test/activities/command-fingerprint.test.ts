import { chmodSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fingerprintCommand } from '../../activities/command-fingerprint';
import { RACY_WINDOW_MS } from '../../activities/data/source-fingerprint';
import { CommandOptionsSchema } from '../../pipelines/stage-types';

// A cached command stage (`cache: true`) is keyed by its program and the files its command line
// names, so an edited script is run again rather than served its old result.

let base: string;
const bin = () => path.join(base, 'bin');
const settledClock = { now: () => Date.now() + 10 * RACY_WINDOW_MS, sleep: () => Promise.reject(new Error('nothing is racy')) };
const fp = (command: string[], extra: Record<string, unknown> = {}) =>
  fingerprintCommand(CommandOptionsSchema.parse({ command, ...extra }), base, bin(), settledClock);
const old = (file: string, seconds = 1_600_000_000) => utimesSync(file, seconds, seconds);

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'tempered-command-fp-'));
  mkdirSync(bin());
  writeFileSync(path.join(bin(), 'trainer'), '#!/bin/sh\necho v1\n');
  chmodSync(path.join(bin(), 'trainer'), 0o755);
  writeFileSync(path.join(base, 'train.py'), 'print(1)\n');
  writeFileSync(path.join(base, 'settings.json'), '{"lr":1}');
  for (const f of [path.join(bin(), 'trainer'), path.join(base, 'train.py'), path.join(base, 'settings.json')]) old(f);
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

test('same program and files: same fingerprint', async () => {
  const command = ['trainer', 'train.py', '--config=settings.json', '{outputs}/model.bin'];
  expect(await fp(command)).toBe(await fp(command));
});

test('an edited script, a file named in --flag=value, or another program on PATH changes it', async () => {
  const command = ['trainer', 'train.py', '--config=settings.json'];
  const before = await fp(command);
  writeFileSync(path.join(base, 'train.py'), 'print(2)\n');
  old(path.join(base, 'train.py'), 1_600_000_100);
  const script = await fp(command);
  expect(script).not.toBe(before);

  writeFileSync(path.join(base, 'settings.json'), '{"lr":2}');
  old(path.join(base, 'settings.json'), 1_600_000_100);
  const settings = await fp(command);
  expect(settings).not.toBe(script);

  writeFileSync(path.join(bin(), 'trainer'), '#!/bin/sh\necho v2\n');
  old(path.join(bin(), 'trainer'), 1_600_000_100);
  expect(await fp(command)).not.toBe(settings);
});

test('arguments resolve against the stage cwd', async () => {
  mkdirSync(path.join(base, 'sub'));
  writeFileSync(path.join(base, 'sub', 'train.py'), 'print("sub")\n');
  old(path.join(base, 'sub', 'train.py'));
  expect(await fp(['trainer', 'train.py'], { cwd: 'sub' })).not.toBe(await fp(['trainer', 'train.py']));
});
