import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pythonRunEnv } from '../../infra/python-env';
import { ExportError } from './errors';

// A Hugging Face Llama checkpoint directory as one GGUF file for llama.cpp / Ollama, through
// `python -m tempered_torch.export_gguf` (gguf-py's writer and quantizer; how the tensors, tokenizer
// and metadata map is written down in python/tempered_torch/export_gguf.py).

/** The tensor type of the weight matrices: f16, or q8_0 (8 bits per weight, a scale per 32). */
export type GgufTensorType = 'f16' | 'q8_0';

/** What exportGguf wrote: tempered_torch.export_gguf's result line. */
export interface GgufExport {
  /** The GGUF file, as given. */
  file: string;
  type: GgufTensorType;
  /** general.architecture: `llama`, the only one exported. */
  architecture: string;
  tensors: number;
  /** Size of the file. */
  bytes: number;
  /** Tensors per GGML type, e.g. `{ F32: 61, Q8_0: 211 }` (norms stay F32, as llama.cpp keeps them). */
  tensorTypes: Record<string, number>;
}

/** Exit code of tempered_torch for input no retry can fix (finetune.EXIT_BAD_INPUT). */
const EXIT_BAD_INPUT = 3;

const run = promisify(execFile);

/**
 * Writes the checkpoint in `hfDir` (safetensors, or a folder with one GGUF file) to `outFile` as
 * GGUF of `type`, with `python`, Tempered's Python environment's interpreter. A model it cannot
 * export (another architecture, a tokenizer GGUF cannot describe) throws ExportError, which is not
 * retried; any other failure a plain Error.
 */
export async function exportGguf(python: string, hfDir: string, outFile: string, type: GgufTensorType): Promise<GgufExport> {
  let stdout: string;
  try {
    ({ stdout } = await run(python, ['-m', 'tempered_torch.export_gguf', hfDir, outFile, '--type', type], { env: pythonRunEnv(), maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const failed = err as { code?: number | string; signal?: string; stderr?: string };
    const tail = (failed.stderr ?? '').trim().split('\n').slice(-5).join('\n');
    if (failed.code === EXIT_BAD_INPUT) throw new ExportError(tail.replace(/^tempered_torch: /, ''));
    const how = failed.signal ? `was killed by ${failed.signal}${failed.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `failed (exit ${failed.code})`;
    throw new Error(`tempered_torch.export_gguf ${how} on ${hfDir}${tail ? `:\n${tail}` : ''}`);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('{"tempered"'));
  if (!line) throw new Error(`tempered_torch.export_gguf printed no result line for ${hfDir}; stdout: ${JSON.stringify(stdout.slice(-500))}`);
  const { tempered: _kind, ...result } = JSON.parse(line) as GgufExport & { tempered: string };
  return result;
}
