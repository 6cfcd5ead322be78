// What `tempered serve` serves: one registered model, loaded by the engine that runs it best.
//   language models (torch causal-lm / sft,  GGUF on llama.cpp (node-llama-cpp): the file Tempered's
//   tfjs causal-lm as GPT-2)                 own exporter writes, continuous batching over parallel
//                                            sequences, CPU or CUDA from prebuilt binaries
//   torch classifiers                        the torch engine, kept loaded in one Python process
//                                            (python/tempered_torch/serve.py), requests batched
//   tfjs classifiers                         tfjs in this process, the evaluate stage's own code
// Every engine answers what the evaluate stage would: a served label is the label it counted.

/** Why a request cannot be answered as asked: the client's fault (HTTP 400). */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    message: string,
    readonly param?: string,
    readonly status = 400,
    readonly code = 'invalid_request',
  ) {
    super(message);
  }
}

/** A model that cannot be served (wrong kind, missing parts): not retried, said at startup. */
export class ServeError extends Error {
  override readonly name = 'ServeError';
}

export interface GenerateOptions {
  maxTokens: number;
  temperature: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  /** Each piece of text as it is generated (streaming). */
  onText?: (text: string) => void;
  /** The client went away: stop generating. */
  signal?: AbortSignal;
}

export interface Generation {
  text: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: 'stop' | 'length';
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface Prediction {
  label: string;
  /** Probability of every label. */
  scores: Record<string, number>;
}

interface Common {
  /** e.g. `llama.cpp (GGUF q8_0, cpu)`. */
  engine: string;
  /** Set when the model can no longer answer (its process died): the server reloads it. */
  broken?: string;
  dispose(): Promise<void>;
}

export interface LanguageModel extends Common {
  kind: 'language';
  complete(prompt: string, options: GenerateOptions): Promise<Generation>;
  chat(messages: ChatMessage[], options: GenerateOptions): Promise<Generation>;
}

export interface Classifier extends Common {
  kind: 'classifier';
  labels: string[];
  classify(texts: string[]): Promise<Prediction[]>;
}

export type ServedModel = LanguageModel | Classifier;

/** The label with the highest score (the first of equals, as argmax). */
export function argmaxLabel(labels: string[], scores: ArrayLike<number>): string {
  let best = 0;
  for (let i = 1; i < labels.length; i++) if (scores[i] > scores[best]) best = i;
  return labels[best];
}
