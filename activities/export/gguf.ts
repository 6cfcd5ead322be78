import { runExportModule } from './python';

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

/**
 * Writes the checkpoint in `hfDir` (safetensors, or a folder with one GGUF file) to `outFile` as
 * GGUF of `type`, with `python`, Tempered's Python environment's interpreter. A model it cannot
 * export (another architecture, a tokenizer GGUF cannot describe) throws ExportError, which is not
 * retried; any other failure a plain Error.
 */
export async function exportGguf(python: string, hfDir: string, outFile: string, type: GgufTensorType): Promise<GgufExport> {
  return runExportModule<GgufExport>(python, 'export_gguf', [hfDir, outFile, '--type', type]);
}
