import * as os from 'node:os';
import { RequestError, type ChatMessage, type GenerateOptions, type Generation, type LanguageModel } from './engine';

// A GGUF language model on llama.cpp through node-llama-cpp (prebuilt binaries from its npm
// packages, never built or downloaded at run time). One context holds `parallel` sequences, which
// llama.cpp evaluates together in one batch; a request takes a free sequence, starts it empty, and
// gives it back; requests beyond `parallel` wait for one.

export type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
type Sequence = ReturnType<Awaited<ReturnType<Awaited<ReturnType<Llama['loadModel']>>['createContext']>>['getSequence']>;

// node-llama-cpp is ESM with top-level await: a real import(), which CommonJS output would turn into require().
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<NodeLlamaCpp>;

/** node-llama-cpp's module. */
export const importNodeLlamaCpp = (): Promise<NodeLlamaCpp> => importEsm('node-llama-cpp');

let runtime: Promise<{ lib: NodeLlamaCpp; llama: Llama }> | undefined;

/** The llama.cpp runtime, loaded once per process: CUDA when asked and its prebuilt binary loads. */
function llamaRuntime(gpu: boolean): Promise<{ lib: NodeLlamaCpp; llama: Llama }> {
  runtime ??= (async () => {
    const lib = await importNodeLlamaCpp();
    const llama = await lib.getLlama({ gpu: gpu ? 'cuda' : false, build: 'never', logLevel: lib.LlamaLogLevel.error });
    return { lib, llama };
  })().catch((err: unknown) => {
    runtime = undefined; // the next load tries again
    throw err;
  });
  return runtime;
}

export interface LlamaOptions {
  /** Requests generated at once (sequences of the context). */
  parallel: number;
  /** Tokens each sequence holds: prompt and reply. */
  contextSize: number;
  threads?: number;
  gpu: boolean;
  /** e.g. `GGUF q8_0`. */
  label: string;
}

export async function loadLlamaModel(file: string, options: LlamaOptions): Promise<LanguageModel> {
  const { lib, llama } = await llamaRuntime(options.gpu);
  const model = await llama.loadModel({ modelPath: file, ...(options.gpu ? {} : { gpuLayers: 0 }) });
  // Threads default to the cores this process may use: llama.cpp's own default counts the
  // machine's cores, which in a container limited to fewer oversubscribes them (measured: 12x slower).
  const threads = options.threads ?? os.availableParallelism();
  // contextSize is each sequence's (node-llama-cpp allocates it per sequence), at most what the model was trained for.
  const context = await model.createContext({ sequences: options.parallel, contextSize: Math.min(options.contextSize, model.trainContextSize), threads }).catch(async (err: unknown) => {
    await model.dispose();
    throw err;
  });
  const free: Sequence[] = Array.from({ length: options.parallel }, () => context.getSequence());
  const waiting: Array<(s: Sequence) => void> = [];
  const acquire = (): Promise<Sequence> => (free.length > 0 ? Promise.resolve(free.pop()!) : new Promise((resolve) => waiting.push(resolve)));
  const release = (sequence: Sequence) => {
    const next = waiting.shift();
    if (next) next(sequence);
    else free.push(sequence);
  };

  /**
   * Runs `generate` on a fresh sequence. Prompt tokens are the ones it evaluated as input. Reply
   * tokens: `maxTokens` when it stopped there; else the ones it reported as they came. (Neither
   * count of node-llama-cpp is exact alone: the meter's output count holds one evaluation more than
   * were generated, and a token that ends inside a UTF-8 character is never reported.)
   */
  const onSequence = async (maxTokens: number, generate: (sequence: Sequence, onToken: (tokens: unknown[]) => void) => Promise<{ text: string; stopReason: string }>): Promise<Generation> => {
    const sequence = await acquire();
    try {
      await sequence.clearHistory();
      const before = sequence.tokenMeter.usedInputTokens;
      let generated = 0;
      const { text, stopReason } = await generate(sequence, (tokens) => (generated += tokens.length));
      return {
        text,
        promptTokens: sequence.tokenMeter.usedInputTokens - before,
        completionTokens: stopReason === 'maxTokens' ? maxTokens : generated,
        finishReason: stopReason === 'maxTokens' ? 'length' : 'stop',
      };
    } finally {
      release(sequence);
    }
  };

  const sampling = (o: GenerateOptions) => ({
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    ...(o.topP !== undefined ? { topP: o.topP } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.stop?.length ? { customStopTriggers: o.stop } : {}),
    ...(o.onText ? { onTextChunk: o.onText } : {}),
    ...(o.signal ? { signal: o.signal, stopOnAbortSignal: true } : {}),
  });

  return {
    kind: 'language',
    engine: `llama.cpp (${options.label}, ${options.gpu ? 'cuda' : 'cpu'})`,
    complete(prompt, o) {
      return onSequence(o.maxTokens, async (contextSequence, onToken) => {
        const completion = new lib.LlamaCompletion({ contextSequence });
        try {
          const result = await completion.generateCompletionWithMeta(prompt, { ...sampling(o), onToken });
          return { text: result.response, stopReason: result.metadata.stopReason };
        } finally {
          completion.dispose({ disposeSequence: false });
        }
      });
    },
    chat(messages: ChatMessage[], o) {
      if (messages.length === 0 || messages.at(-1)!.role !== 'user') throw new RequestError('the last message must be the user\'s', 'messages');
      return onSequence(o.maxTokens, async (contextSequence, onToken) => {
        const chat = new lib.LlamaChat({ contextSequence });
        try {
          const history = messages.map((m) => (m.role === 'assistant' ? { type: 'model' as const, response: [m.content] } : { type: m.role, text: m.content }));
          const result = await chat.generateResponse([...history, { type: 'model', response: [] }], { ...sampling(o), onToken });
          return { text: result.response, stopReason: result.metadata.stopReason };
        } finally {
          chat.dispose({ disposeSequence: false });
        }
      });
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}
