import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pythonRunEnv } from '../../infra/python-env';
import { ExportError } from './errors';

/** Exit code of tempered_torch for input no retry can fix (finetune.EXIT_BAD_INPUT). */
const EXIT_BAD_INPUT = 3;

const run = promisify(execFile);

/**
 * `python -m tempered_torch.<module> <args>` with Tempered's Python environment: its result line
 * (`{"tempered": ..., ...}`, without the `tempered` key). Exit 3 (bad input) throws ExportError,
 * which is not retried; any other failure a plain Error with the end of its stderr.
 */
export async function runExportModule<T>(python: string, module: string, args: string[], cwd?: string): Promise<T> {
  let stdout: string;
  try {
    ({ stdout } = await run(python, ['-m', `tempered_torch.${module}`, ...args], { env: pythonRunEnv(), cwd, maxBuffer: 64 * 1024 * 1024 }));
  } catch (err) {
    const failed = err as { code?: number | string; signal?: string; stderr?: string };
    const tail = (failed.stderr ?? '').trim().split('\n').slice(-5).join('\n');
    if (failed.code === EXIT_BAD_INPUT) throw new ExportError(tail.replace(/^tempered_torch: /, ''));
    const how = failed.signal ? `was killed by ${failed.signal}${failed.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `failed (exit ${failed.code})`;
    throw new Error(`tempered_torch.${module} ${how}${tail ? `:\n${tail}` : ''}`);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('{"tempered"'));
  if (!line) throw new Error(`tempered_torch.${module} printed no result line; stdout: ${JSON.stringify(stdout.slice(-500))}`);
  const { tempered: _kind, ...result } = JSON.parse(line) as Record<string, unknown>;
  return result as T;
}
