import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { pythonRunEnv, PYTHON_DIR } from '../../infra/python-env';

// Inputs of the torch engine's integration tests, made on the spot without any download.

const run = promisify(execFile);

/** A tiny BERT checkpoint directory (python/tests/tiny_base.py): config, safetensors, tokenizer. */
export async function makeTinyBase(python: string, dir: string): Promise<void> {
  await run(python, [path.join(PYTHON_DIR, 'tests', 'tiny_base.py'), dir], { env: pythonRunEnv() });
}

/** `count` short mails under `<dir>/mail/{ham,spam}/<i>.txt`, every third spam, in the tiny base's vocabulary. */
export async function writeTinyMails(dir: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const spam = i % 3 === 0;
    await mkdir(path.join(dir, 'mail', spam ? 'spam' : 'ham'), { recursive: true });
    await writeFile(path.join(dir, 'mail', spam ? 'spam' : 'ham', `${i}.txt`), `${spam ? 'win free money prize now offer' : 'meeting notes attached team lunch report'} ${'the a '.repeat(i % 5)} number ${i}`);
  }
}
