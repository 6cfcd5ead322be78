/** One thing wrong with a spec: where, what was expected, what was found, how to fix it. */
export interface SpecProblem {
  /** Dotted path into the spec, e.g. `stages.split.ratios`. Empty for the document itself. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the YAML file, when known. */
  readonly line?: number;
  readonly column?: number;
}

/** A spec that cannot run. Carries every problem found, not just the first. */
export class SpecValidationError extends Error {
  override readonly name = 'SpecValidationError';
  constructor(
    readonly file: string,
    readonly problems: readonly SpecProblem[],
  ) {
    super(formatProblems(file, problems));
  }
}

/** `file:line:col path: message`, one problem a line, in file order. */
export function formatProblems(file: string, problems: readonly SpecProblem[]): string {
  const lines = problems.map((p) => {
    const where = p.line !== undefined ? `${file}:${p.line}:${p.column ?? 1}` : file;
    return `${where} ${p.path || '(spec)'}: ${p.message}`;
  });
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  return `${count} in ${file}:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}
