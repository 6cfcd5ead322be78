// Keeping the worker's secret values out of everything Tempered keeps of a program: its log, the
// progress and metrics it reports, and the failure messages that enter Temporal history.
//
// Scrubbing the program's environment (environment.ts) is not enough: a program can read secrets
// elsewhere (the worker's /proc/<pid>/environ where it is not isolated, a credentials file), and
// whatever it prints would otherwise be stored and quoted. So every value that looks secret is
// replaced by `[redacted]` wherever it appears in the program's output.
import { readFileSync } from 'node:fs';

/** What a secret value is replaced by. */
export const REDACTED = '[redacted]';

/**
 * Values shorter than this are not redacted: `TOKEN_TTL=3600` or `HF_HUB_DISABLE_TOKEN=1` would
 * otherwise blank every `3600` and `1` in the log. Real keys, tokens and passwords are longer.
 */
export const MIN_SECRET_CHARS = 8;

/** Variable names that hold secrets: SECRET, TOKEN, PASSWORD, PASSWD, PASSPHRASE, CREDENTIAL, PRIVATE or KEY anywhere in the name. */
const SECRET_NAME = /SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|KEY/i;

/**
 * Names that match SECRET_NAME but are well known not to hold one: Hugging Face's tokenizer
 * setting, the public key fingerprint the official Docker images set, keyring backends; an AWS
 * access key id, which names a key (AWS: "not secret"; the local MinIO's is the word `tempered`,
 * which redacting would blank in every protocol line); and TEMPORAL_TLS_KEY, which holds a path:
 * the key material is the file's content (redacted below).
 */
const NOT_SECRET = new Set(['TOKENIZERS_PARALLELISM', 'GPG_KEY', 'PYTHON_KEYRING_BACKEND', 'KEYRING_BACKEND', 'KEYTIMEOUT', 'AWS_ACCESS_KEY_ID', 'TEMPORAL_TLS_KEY']);

/** Variables naming files whose content is key material. */
const KEY_FILE_VARIABLES = ['TEMPORAL_TLS_KEY'];

/** True when a variable of this name holds a secret value (see SECRET_NAME, NOT_SECRET). */
export function looksSecret(name: string): boolean {
  return SECRET_NAME.test(name) && !NOT_SECRET.has(name.toUpperCase());
}

export interface SecretValuesOptions {
  /** More secret values, e.g. the store's resolved credentials. */
  extra?: readonly (string | undefined)[];
  /** Reads a key file; default `readFileSync(path, 'utf8')`. A file that cannot be read is skipped. */
  readFile?: (file: string) => string;
}

/**
 * The strings to redact, longest first: the value of every variable of `env` whose name looks
 * secret, the content of TEMPORAL_TLS_KEY's file, and `extra`. A multi-line value (a PEM key) is
 * redacted line by line, since programs print it that way; pieces shorter than MIN_SECRET_CHARS
 * are dropped. Each value is also matched JSON-escaped and URL-encoded, the forms a program that
 * dumps its settings prints.
 */
export function secretValues(env: NodeJS.ProcessEnv, options: SecretValuesOptions = {}): string[] {
  const values: string[] = [];
  for (const [name, value] of Object.entries(env)) if (value !== undefined && looksSecret(name)) values.push(value);
  const read = options.readFile ?? ((file: string) => readFileSync(file, 'utf8'));
  for (const name of KEY_FILE_VARIABLES) {
    const file = env[name];
    if (!file) continue;
    try {
      values.push(...read(file).split(/\r\n|\r|\n/).filter((line) => !line.startsWith('-----')));
    } catch {
      // The worker's own connection reports an unreadable key file; nothing to redact here.
    }
  }
  for (const value of options.extra ?? []) if (value) values.push(value);

  const secrets = new Set<string>();
  for (const value of values) {
    for (const piece of value.split(/\r\n|\r|\n/)) {
      const trimmed = piece.trim();
      if (trimmed.length < MIN_SECRET_CHARS) continue;
      secrets.add(trimmed);
      secrets.add(JSON.stringify(trimmed).slice(1, -1));
      secrets.add(encodeURIComponent(trimmed));
    }
  }
  return [...secrets].sort((a, b) => b.length - a.length);
}

/** Where secrets occur in `text`: merged, sorted [start, end) ranges (occurrences may overlap). */
function secretRanges(text: string, secrets: readonly string[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const secret of secrets) {
    for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, at + 1)) ranges.push([at, at + secret.length]);
  }
  if (ranges.length <= 1) return ranges;
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [ranges[0]];
  for (const [start, end] of ranges.slice(1)) {
    const last = merged[merged.length - 1];
    if (start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}

function replaceRanges(text: string, ranges: ReadonlyArray<readonly [number, number]>): string {
  let out = '';
  let from = 0;
  for (const [start, end] of ranges) {
    out += text.slice(from, start) + REDACTED;
    from = end;
  }
  return out + text.slice(from);
}

/** `text` with every occurrence of every secret replaced by `[redacted]` (overlapping ones as one). */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  if (secrets.length === 0 || text === '') return text;
  const ranges = secretRanges(text, secrets);
  return ranges.length === 0 ? text : replaceRanges(text, ranges);
}

/** Characters a stream redactor holds back at most, whatever the input (a long run of a repeated secret). */
const MAX_HELD_CHARS = 64 * 1024;

/**
 * Redacts a stream that arrives in chunks, so that a secret split across two chunks is still
 * caught: the end of a chunk that could be the start of a secret is held back until the next chunk
 * (or `end`) shows whether it is one. Since no secret holds a line break, complete lines are never
 * held back: progress lines pass at once.
 */
export class StreamRedactor {
  private held = '';

  constructor(private readonly secrets: readonly string[]) {}

  /** The redacted text that is certain now. */
  push(chunk: string): string {
    if (this.secrets.length === 0) return chunk;
    const text = this.held + chunk;
    let cut = text.length - this.possibleSecretStart(text);
    const ranges = secretRanges(text, this.secrets);
    // An occurrence reaching into the held-back end is held back whole: it may go on.
    for (const [start, end] of ranges) if (start < cut && end > cut) cut = start;
    if (text.length - cut > MAX_HELD_CHARS) cut = text.length;
    this.held = text.slice(cut);
    return replaceRanges(text.slice(0, cut), ranges.filter(([, end]) => end <= cut));
  }

  /** The rest, at the end of the stream. */
  end(): string {
    const rest = this.held;
    this.held = '';
    return redactSecrets(rest, this.secrets);
  }

  /** Length of the longest end of `text` that is a proper beginning of some secret. */
  private possibleSecretStart(text: string): number {
    let longest = 0;
    for (const secret of this.secrets) {
      const first = secret.charCodeAt(0);
      // Earliest position first, so the first hit is the longest; only where the first character matches.
      for (let at = Math.max(0, text.length - secret.length + 1); text.length - at > longest; at++) {
        if (text.charCodeAt(at) === first && secret.startsWith(text.slice(at))) {
          longest = text.length - at;
          break;
        }
      }
    }
    return longest;
  }
}
