// The line protocol between a `command` stage and the program it runs.
//
// A program reports to Tempered by printing single-line JSON objects on stdout:
//
//   {"tempered":"progress","step":10,"totalSteps":100,"loss":2.31}
//       The object, minus "tempered", becomes the stage's heartbeat details (the latest line wins),
//       so `tempered status` and `run --wait` show it. `step`, `totalSteps`, `loss` and
//       `tokensPerSec` are drawn as a progress bar; any other JSON values are kept as they are.
//   {"tempered":"metrics","accuracy":0.97,"f1":0.95}
//       Merged into the stage's final metrics (a later line overrides an earlier one key by key).
//   {"tempered":"checkpoint","step":50,"dir":"..."}
//       A complete checkpoint on disk (the torch engine uploads it; a command stage ignores it).
//
// Everything else on stdout and stderr is ordinary output: stored as the stage's `log` artifact,
// and its last lines quoted when the program fails. Flush stdout after each protocol line
// (Python: `print(json.dumps(...), flush=True)`; PYTHONUNBUFFERED=1 is set by default).
import { StringDecoder } from 'node:string_decoder';

/** A protocol line longer than this is treated as ordinary output: details and metrics stay small. */
export const MAX_PROTOCOL_LINE_CHARS = 16 * 1024;

/** What a protocol line says. */
export type ProgramMessage =
  | { kind: 'progress'; details: Record<string, unknown> }
  | { kind: 'metrics'; values: Record<string, unknown> }
  | { kind: 'checkpoint'; details: Record<string, unknown> };

/** The message a line of the program's stdout carries, or undefined for an ordinary line. */
export function parseProtocolLine(line: string): ProgramMessage | undefined {
  const text = line.trim();
  // Cheap checks first: most lines are plain log output, and JSON log lines rarely mention us.
  if (text.length > MAX_PROTOCOL_LINE_CHARS || !text.startsWith('{') || !text.endsWith('}') || !text.includes('"tempered"')) {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { tempered: kind, ...rest } = parsed as Record<string, unknown>;
  if (kind === 'progress') return { kind: 'progress', details: rest };
  if (kind === 'metrics') return { kind: 'metrics', values: rest };
  if (kind === 'checkpoint') return { kind: 'checkpoint', details: rest };
  return undefined; // an unknown kind is left to a later version of the protocol, not an error
}

/**
 * Splits a byte stream into lines, for a program's stdout or stderr. `\n`, `\r\n` and a lone `\r`
 * end a line (progress bars such as tqdm redraw with `\r`); a line that never ends is cut every
 * `maxLineChars` so a program printing binary cannot make the worker hold it whole.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineChars = 64 * 1024,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 /* \n */) {
        this.onLine(text.slice(start, i));
        start = i + 1;
      } else if (c === 13 /* \r */) {
        if (i === text.length - 1) break; // a \n may follow in the next chunk
        this.onLine(text.slice(start, i));
        if (text.charCodeAt(i + 1) === 10) i++;
        start = i + 1;
      }
    }
    this.pending = text.slice(start);
    while (this.pending.length > this.maxLineChars) {
      this.onLine(this.pending.slice(0, this.maxLineChars));
      this.pending = this.pending.slice(this.maxLineChars);
    }
  }

  /** Emits the last line if the stream did not end with a newline. */
  end(): void {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    const line = rest.endsWith('\r') ? rest.slice(0, -1) : rest;
    if (rest !== '') this.onLine(line);
  }
}

/** The last `maxLines` lines of a stream, each cut to `maxLineChars`: what an error message quotes. */
export class LineTail {
  private readonly buffer: string[] = [];

  constructor(
    readonly maxLines = 50,
    readonly maxLineChars = 500,
  ) {}

  push(line: string): void {
    this.buffer.push(line.length > this.maxLineChars ? `${line.slice(0, this.maxLineChars)}…` : line);
    if (this.buffer.length > this.maxLines) this.buffer.shift();
  }

  lines(): string[] {
    return [...this.buffer];
  }
}
