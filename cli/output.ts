// What the CLI prints. With `--json`, stdout is exactly one JSON document (ARCHITECTURE.md,
// invariant 10): every log line, warning and progress bar goes to stderr, whoever writes it.

const realStdoutWrite = process.stdout.write.bind(process.stdout);

/**
 * Sends everything that would reach stdout through `console` or `process.stdout.write` — our own
 * code, libraries (tfjs greets on stdout), worker threads' piped output — to stderr instead.
 * `printJson` still writes to the real stdout.
 */
export function keepStdoutForJson(): void {
  for (const method of ['log', 'info', 'debug'] as const) console[method] = console.error.bind(console);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
    (process.stderr.write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest)) as typeof process.stdout.write;
}

/** Prints `value` as the command's one JSON document. */
export function printJson(value: unknown): void {
  realStdoutWrite(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Exits once everything written to stdout and stderr has reached the OS: a pipe takes 64 KiB at a
 * time, and `process.exit()` alone drops what is still queued (a cut-off JSON document). The exit
 * itself stays, because wasm threads and open handles of finished work may keep the loop alive.
 */
export async function exitAfterFlush(code: number): Promise<never> {
  // Writes complete in order: the callback of an empty write fires after every earlier one.
  const drained = (stream: NodeJS.WriteStream, write: (chunk: string, done: () => void) => unknown) =>
    new Promise<void>((resolve) => (stream.destroyed || !stream.writable ? resolve() : write('', resolve)));
  await Promise.all([
    drained(process.stdout, (chunk, done) => realStdoutWrite(chunk, done)),
    drained(process.stderr, (chunk, done) => process.stderr.write(chunk, done)),
  ]);
  process.exit(code);
}
