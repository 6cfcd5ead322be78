// Running a command stage's program: no shell, its own process group (so cancellation reaches the
// processes it starts, e.g. data-loader workers), where possible in its own PID namespace
// (isolation.ts), output redacted of secret values (redact.ts) and streamed line by line to a log
// file and through the protocol parser, never held whole in memory.
import { spawn } from 'node:child_process';
import { createWriteStream, fstatSync } from 'node:fs';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parseInitReport } from './isolation';
import { LineSplitter, LineTail, parseProtocolLine, type ProgramMessage } from './protocol';
import { ProgramNotExecutableError, ProgramNotFoundError } from './errors';
import { StreamRedactor } from './redact';

/** Process groups are POSIX; on Windows only the program itself is signalled. */
const USE_PROCESS_GROUPS = process.platform !== 'win32';

export interface RunProgramOptions {
  /** Program and arguments, already expanded. */
  argv: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Aborting it stops the program: SIGTERM to its process group, SIGKILL after `killGraceMs`. */
  signal: AbortSignal;
  /** Every line of stdout and stderr is appended to this file. */
  logFile: string;
  /** Called for each protocol line on stdout, in order. */
  onMessage(message: ProgramMessage): void;
  /** How long a program has to exit after SIGTERM before it is killed. */
  killGraceMs: number;
  /** Lines kept of each stream for error messages. Default 50. */
  tailLines?: number;
  /** Put before `argv` to start the program isolated (isolation.ts); its INIT reports on fd 3. Default none. */
  isolationPrefix?: readonly string[];
  /** Replaced by `[redacted]` in everything read from the program, before anything sees it. Default none. */
  secrets?: readonly string[];
}

/** How the program ended. */
export interface ProgramExit {
  /** Exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** True when the program was stopped because `signal` aborted. */
  cancelled: boolean;
  durationMs: number;
  /** Last non-protocol lines of stdout. */
  stdoutTail: string[];
  /** Last lines of stderr. */
  stderrTail: string[];
  /** Size of the log file. */
  logBytes: number;
  /** The log file's identity: what is at its path later is the log only if it is still this file. */
  logFileId: FileId;
}

/** A file's identity on its file system. */
export interface FileId {
  dev: number;
  ino: number;
}

/**
 * Runs the program to its end. Rejects with `ProgramNotFoundError` / `ProgramNotExecutableError`
 * if it cannot start; otherwise resolves however it ended (the caller judges the exit).
 */
export async function runProgram(options: RunProgramOptions): Promise<ProgramExit> {
  const program = options.argv[0];
  const isolated = (options.isolationPrefix ?? []).length > 0;
  const [launcher, ...args] = [...(options.isolationPrefix ?? []), ...options.argv];
  // Created exclusively, not following links: nothing may sit at the log's path beforehand.
  const log = createWriteStream(options.logFile, { flags: 'wx', mode: 0o600 });
  const [logFd] = (await once(log, 'open')) as [number];
  const { dev, ino } = fstatSync(logFd);
  let logError: Error | undefined;
  log.on('error', (err) => (logError ??= err));

  const started = performance.now();
  const child = spawn(launcher, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: isolated ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
    detached: USE_PROCESS_GROUPS,
    windowsHide: true,
  });
  const throwCannotStart = (code: string | undefined, err: Error): never => {
    log.end();
    if (code === 'ENOENT') throw new ProgramNotFoundError(program, options.cwd);
    if (code === 'EACCES' || code === 'ENOEXEC' || code === 'EISDIR') throw new ProgramNotExecutableError(program, code);
    throw err;
  };
  try {
    await once(child, 'spawn');
  } catch (err) {
    throwCannotStart((err as NodeJS.ErrnoException).code, err as Error);
  }
  let initReport = '';
  if (isolated) child.stdio[3]!.on('data', (chunk: Buffer) => (initReport += chunk.toString()));
  child.on('error', () => undefined); // a failed kill(); the exit is what matters
  const pid = child.pid!;
  liveGroups.add(pid);
  installExitHook();

  const kill = (signal: NodeJS.Signals): void => {
    try {
      if (USE_PROCESS_GROUPS) process.kill(-pid, signal);
      else child.kill(signal);
    } catch {
      // ESRCH: the group is already gone.
    }
  };

  const tailLines = options.tailLines ?? 50;
  const stdoutTail = new LineTail(tailLines);
  const stderrTail = new LineTail(tailLines);
  const write = (line: string): void => {
    if (!logError) log.write(`${line}\n`);
  };
  const stdout = new LineSplitter((line) => {
    write(line);
    const message = parseProtocolLine(line);
    if (message) options.onMessage(message);
    else stdoutTail.push(line);
  });
  const stderr = new LineSplitter((line) => {
    write(line);
    stderrTail.push(line);
  });
  const secrets = options.secrets ?? [];
  // A slow disk slows the program down (its pipe fills) instead of growing this process's memory.
  const streams = [child.stdout!, child.stderr!];
  const relieve = (): void => {
    if (!log.writableNeedDrain || streams.some((s) => s.isPaused())) return;
    for (const s of streams) s.pause();
    log.once('drain', () => streams.forEach((s) => s.resume()));
  };
  // bytes -> text -> redacted text -> lines: a secret split across chunks is still caught.
  const consume = (stream: Readable, splitter: LineSplitter): void => {
    const decoder = new StringDecoder('utf8');
    const redactor = new StreamRedactor(secrets);
    stream.on('data', (chunk: Buffer) => {
      splitter.push(redactor.push(decoder.write(chunk)));
      relieve();
    });
    stream.on('end', () => {
      splitter.push(redactor.push(decoder.end()));
      splitter.push(redactor.end());
      splitter.end();
    });
  };
  consume(child.stdout!, stdout);
  consume(child.stderr!, stderr);

  let cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    cancelled = true;
    kill('SIGTERM');
    killTimer = setTimeout(() => kill('SIGKILL'), options.killGraceMs);
  };
  options.signal.addEventListener('abort', onAbort, { once: true });
  if (options.signal.aborted) onAbort();

  // Processes the program left behind would hold its pipes open, and the stage would never end.
  child.once('exit', () => kill('SIGKILL'));
  let [exitCode, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  const durationMs = Math.round(performance.now() - started);
  options.signal.removeEventListener('abort', onAbort);
  clearTimeout(killTimer);
  liveGroups.delete(pid);
  if (isolated) {
    // INIT's report is how the program ended; without one (INIT was killed) the launcher's exit is.
    const report = parseInitReport(initReport);
    if (report && 'spawnError' in report) throwCannotStart(report.spawnError, new Error(`command program ${JSON.stringify(program)} could not start: ${report.spawnError}`));
    else if (report) [exitCode, signal] = [report.exitCode, report.signal];
  }

  log.end();
  if (!log.closed) await once(log, 'close').catch(() => undefined);
  if (logError) throw logError;
  return { exitCode, signal, cancelled, durationMs, stdoutTail: stdoutTail.lines(), stderrTail: stderrTail.lines(), logBytes: log.bytesWritten, logFileId: { dev, ino } };
}

/** Process groups of running programs, killed if the worker exits while they run. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) {
      try {
        if (USE_PROCESS_GROUPS) process.kill(-pid, 'SIGKILL');
        else process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}
