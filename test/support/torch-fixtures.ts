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

/** A tiny Llama checkpoint directory with a ChatML chat template (python/tests/tiny_base.py llama). */
export async function makeTinyChatBase(python: string, dir: string): Promise<void> {
  await run(python, [path.join(PYTHON_DIR, 'tests', 'tiny_base.py'), dir, 'llama'], { env: pythonRunEnv() });
}

/** A tiny Llama checkpoint directory with a byte-level BPE tokenizer (GGUF's gpt2 vocabulary) and a ChatML template (python/tests/tiny_base.py bpe-llama). */
export async function makeTinyBpeBase(python: string, dir: string): Promise<void> {
  await run(python, [path.join(PYTHON_DIR, 'tests', 'tiny_base.py'), dir, 'bpe-llama'], { env: pythonRunEnv() });
}

/** `count` mails with a Subject header under `<dir>/mail/<i>.eml`, in the tiny chat base's vocabulary: the subject follows from the body. */
export async function writeTinyMailsWithSubjects(dir: string, count: number): Promise<void> {
  await mkdir(path.join(dir, 'mail'), { recursive: true });
  for (let i = 0; i < count; i++) {
    const spam = i % 3 === 0;
    const [subject, body] = spam ? ['free money offer', 'win free money prize now offer'] : ['meeting notes', 'meeting notes attached team lunch report'];
    await writeFile(path.join(dir, 'mail', `${i}.eml`), `From: a@example.org\nSubject: ${subject}\nContent-Type: text/plain\n\n${body} ${'the a '.repeat(i % 5)} number ${i}\n`);
  }
}
