import { readdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, Parser, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { SpecValidationError, type SpecProblem } from './errors';
import { checkRules } from './rules';
import { PipelineSpecSchema, STAGE_TYPES, type PipelineSpec } from './schema';
import { allowedKeysAt } from './schema-keys';
import { didYouMean } from './suggest';

/** A parsed, validated spec and where it came from. */
export interface LoadedSpec {
  spec: PipelineSpec;
  /** The spec file as given. */
  file: string;
  /** Absolute directory relative paths in the spec resolve against. */
  baseDir: string;
  /** The YAML text, for lineage and `--print`. */
  text: string;
}

type PathSegment = string | number;

/** Reads and validates a spec file. Throws SpecValidationError listing every problem. */
export async function loadSpecFile(file: string): Promise<LoadedSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') {
      const specs = (await readdir(file).catch(() => [] as string[])).filter((name) => /\.ya?ml$/.test(name)).sort();
      const hint = specs.length > 0 ? `; it holds ${specs.slice(0, 5).map((name) => path.join(file, name)).join(', ')}${specs.length > 5 ? ', …' : ''}` : '';
      throw new SpecValidationError(file, [{ path: '', message: `cannot read the spec: ${file} is a directory; pass the path of a YAML spec file${hint}` }]);
    }
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new SpecValidationError(file, [{ path: '', message: `cannot read the spec: ${reason}; pass the path of a YAML spec (see pipelines/examples/)` }]);
  }
  return loadSpecText(text, file);
}

/** Validates spec text. `file` names it in messages and fixes the base directory. */
export function loadSpecText(text: string, file: string): LoadedSpec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => lineCounter.linePos(offset);

  if (doc.errors.length > 0) {
    // The parser reports where it gave up, often lines below the mistake: name where each
    // unclosed bracket or quote opened as well.
    const opened = unclosedConstructs(text).map(({ what, offset }) => {
      const { line, col } = at(offset);
      return `${what} opened at ${line}:${col} is never closed`;
    });
    const problems = doc.errors.map((e): SpecProblem => {
      const { line, col } = at(e.pos[0]);
      const hint = opened.length > 0 ? ` (${opened.join('; ')})` : '';
      return { path: '', message: `YAML syntax: ${e.message.split('\n')[0]}${hint}`, line, column: col };
    });
    throw new SpecValidationError(file, dedupe(problems));
  }

  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    // The yaml library refuses documents whose aliases expand exponentially ("billion laughs").
    throw new SpecValidationError(file, [{ path: '', message: `YAML aliases expand too far (${(err as Error).message}); write the repeated values out, or nest aliases less deeply` }]);
  }
  const problems: SpecProblem[] = [];
  const locate = (segments: readonly PathSegment[], key = false): { line?: number; column?: number } => {
    const offset = offsetOf(doc, segments, key);
    if (offset === undefined) return {};
    const { line, col } = at(offset);
    return { line, column: col };
  };

  const parsed = PipelineSpecSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...describeIssue(issue, raw, locate));
  }
  for (const rule of checkRules(raw)) problems.push({ ...rule, path: rule.path.join('.'), ...locate(rule.path) });

  if (problems.length > 0 || !parsed.success) {
    throw new SpecValidationError(file, sortByPosition(dedupe(problems)));
  }
  return { spec: parsed.data, file, baseDir: path.resolve(path.dirname(file)), text };
}

function describeIssue(
  issue: z.core.$ZodIssue,
  raw: unknown,
  locate: (p: readonly PathSegment[], key?: boolean) => { line?: number; column?: number },
): SpecProblem[] {
  const issuePath = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const input = (issue as { input?: unknown }).input;
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeysAt(issuePath, raw);
    // `__proto__` has its own rule (rules.ts), which says why it is refused.
    return issue.keys.filter((key) => key !== '__proto__').map((key) => ({
      path: [...issuePath, key].join('.'),
      message: `unknown key "${key}"${didYouMean(key, allowed)}; allowed here: ${allowed.join(', ')}`,
      ...locate([...issuePath, key], true),
    }));
  }
  if (issue.code === 'invalid_union' && (issue as { discriminator?: string }).discriminator === 'type') {
    const found = (input as { type?: unknown } | undefined)?.type;
    const message =
      found === undefined
        ? `missing "type"; set it to one of: ${STAGE_TYPES.join(', ')}`
        : `unknown stage type ${JSON.stringify(found)}${typeof found === 'string' ? didYouMean(found, STAGE_TYPES) : ''}; known types: ${STAGE_TYPES.join(', ')}`;
    const typePath = issuePath[issuePath.length - 1] === 'type' ? issuePath : [...issuePath, 'type'];
    const where = locate(typePath);
    return [{ path: typePath.join('.'), message, ...(where.line ? where : locate(issuePath)) }];
  }
  if (issue.code === 'invalid_key') {
    // A map key the key schema refuses: a stage name, most often. Point at the key, not its value.
    const key = String(issuePath[issuePath.length - 1]);
    const what = issuePath.length === 2 && issuePath[0] === 'stages' ? 'stage name' : 'key';
    const reasons = [...new Set(issue.issues.map((i) => i.message))].join('; ');
    const joined = reasons.startsWith('is ') ? ` ${reasons}` : `: ${lowerFirst(reasons)}`;
    return [{ path: issuePath.join('.'), message: `${what} ${preview(key)}${joined}`, ...locate(issuePath, true) }];
  }
  if (issue.code === 'invalid_type' && input === undefined) {
    return [{ path: issuePath.join('.'), message: `missing required key (expected ${issue.expected})`, ...locate(issuePath.slice(0, -1)) }];
  }
  if (issue.code === 'invalid_value' && issuePath.join('.') === 'apiVersion') {
    return [{ path: 'apiVersion', message: `expected "tempered.dev/v1", found ${JSON.stringify(input)}`, ...locate(issuePath) }];
  }
  const found = input === undefined || issue.message.includes("found") ? "" : `, found ${preview(input)}`;
  const expected = issue.message.replace(/^Invalid input: /, '').replace(/, received \w+$/, '');
  return [{ path: issuePath.join('.'), message: `${lowerFirst(expected)}${found}`, ...locate(issuePath) }];
}

/** Offset of the value (or with `key`, the key) at `segments` in the YAML document. */
function offsetOf(doc: Document, segments: readonly PathSegment[], key: boolean): number | undefined {
  let node: unknown = doc.contents;
  let last: number | undefined = (node as Node | null)?.range?.[0];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    const isLast = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === segment);
      if (!pair) return last;
      if (isLast && key) return (pair.key as Node).range?.[0];
      node = pair.value;
      last = (pair.value as Node | null)?.range?.[0] ?? (pair.key as Node).range?.[0];
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      last = (node as Node | undefined)?.range?.[0] ?? last;
    } else {
      return last;
    }
  }
  return last;
}

function preview(value: unknown): string {
  // JSON would print Infinity (YAML's reading of e.g. 1e400) and NaN as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const json = JSON.stringify(value);
  return json === undefined ? String(value) : json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

function dedupe(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\0${p.message}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

function sortByPosition(problems: SpecProblem[]): SpecProblem[] {
  return [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

const CLOSERS: Record<string, string> = { '[': ']', '{': '}' };

/** Flow collections (`[`, `{`) and quoted scalars in `text` that open and never close, from the parser's concrete syntax tree. */
export function unclosedConstructs(text: string): Array<{ what: string; offset: number }> {
  const found: Array<{ what: string; offset: number }> = [];
  const visit = (token: unknown): void => {
    if (!token || typeof token !== 'object') return;
    if (Array.isArray(token)) return token.forEach(visit);
    const t = token as { type?: string; offset?: number; source?: string; start?: { source?: string; offset: number }; end?: Array<{ source?: string }> };
    if (t.type === 'flow-collection' && t.start?.source && CLOSERS[t.start.source]) {
      const closer = CLOSERS[t.start.source];
      if (!(t.end ?? []).some((e) => e.source === closer)) found.push({ what: `the "${t.start.source}"`, offset: t.start.offset });
    } else if ((t.type === 'double-quoted-scalar' || t.type === 'single-quoted-scalar') && t.source !== undefined && t.offset !== undefined) {
      const quote = t.source[0];
      if (t.source.length < 2 || !t.source.endsWith(quote)) found.push({ what: `the ${quote} quote`, offset: t.offset });
    }
    for (const value of Object.values(t)) if (value && typeof value === 'object') visit(value);
  };
  for (const token of new Parser().parse(text)) visit(token);
  return found.sort((a, b) => a.offset - b.offset);
}
