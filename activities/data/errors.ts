// Failures of the data stages. Every one is caused by the spec or the data, so retrying cannot
// help: each is marked non-retryable, keeps its context in readonly fields, and says how to fix it.

const quote = (value: unknown): string => JSON.stringify(value);

/** A source matched no files, or the files held no records. */
export class EmptySourceError extends Error {
  override readonly name = 'EmptySourceError';
  readonly nonRetryable = true;
  constructor(
    readonly source: string,
    readonly resolved: string,
    reason: string,
    fix: string,
  ) {
    super(`source ${quote(source)} ${reason} (resolved to ${quote(resolved)}); ${fix}`);
  }
}

/** A filter removed every record: the stages after it would have nothing to work on. */
export class NoRecordsLeftError extends Error {
  override readonly name = 'NoRecordsLeftError';
  readonly nonRetryable = true;
  constructor(
    readonly input: number,
    reason: string,
    fix: string,
  ) {
    super(`kept none of its ${input} record${input === 1 ? '' : 's'}: ${reason}; ${fix}`);
  }
}

/** An npm: source names a package that is not installed. */
export class PackageNotFoundError extends Error {
  override readonly name = 'PackageNotFoundError';
  readonly nonRetryable = true;
  constructor(
    readonly source: string,
    readonly packageName: string,
    readonly searched: readonly string[],
  ) {
    super(
      `source ${quote(source)}: package ${quote(packageName)} is not installed (searched from ${searched
        .map(quote)
        .join(', ')}); add it to the project's dependencies or fix the package name`,
    );
  }
}

/** A file is not valid UTF-8. */
export class InvalidUtf8Error extends Error {
  override readonly name = 'InvalidUtf8Error';
  readonly nonRetryable = true;
  constructor(
    readonly file: string,
    readonly byteOffset: number,
  ) {
    super(
      `${quote(file)} is not valid UTF-8: invalid byte sequence at byte offset ${byteOffset}; ` +
        `re-encode the file as UTF-8 (e.g. iconv -f windows-1252 -t utf-8) or set collect encoding "utf-8-or-windows-1252"`,
    );
  }
}

/** A JSONL line or CSV row cannot be parsed. */
export class MalformedRecordError extends Error {
  override readonly name = 'MalformedRecordError';
  readonly nonRetryable = true;
  constructor(
    readonly file: string,
    readonly line: number,
    readonly problem: string,
    fix: string,
  ) {
    super(`${file}:${line}: ${problem}; ${fix}`);
  }
}

/** A record lacks a field the collect options name (textField, labelField, idField). */
export class MissingFieldError extends Error {
  override readonly name = 'MissingFieldError';
  readonly nonRetryable = true;
  constructor(
    readonly file: string,
    readonly line: number,
    readonly field: string,
    readonly option: string,
    found: string,
  ) {
    super(
      `${file}:${line}: field ${quote(field)} (collect ${option}) ${found}; ` +
        `set ${option} to the field that holds it, or fix the data`,
    );
  }
}

/** labelFromPath did not match a file's path. */
export class LabelFromPathError extends Error {
  override readonly name = 'LabelFromPathError';
  readonly nonRetryable = true;
  constructor(
    readonly path: string,
    readonly regex: string,
  ) {
    super(
      `labelFromPath ${quote(regex)} does not match ${quote(path)}; ` +
        `make the regex match every collected path (its "label" group, or first group, becomes the label) or narrow the source glob`,
    );
  }
}

/** Two records share an id, so lineage and augmentation ids would be ambiguous. */
export class DuplicateIdError extends Error {
  override readonly name = 'DuplicateIdError';
  readonly nonRetryable = true;
  constructor(
    readonly id: string,
    readonly first: string,
    readonly second: string,
  ) {
    super(
      `record id ${quote(id)} occurs twice, at ${first} and at ${second}; ` +
        `make idField unique, or make sure no file is matched by two sources`,
    );
  }
}

/** An option value is invalid in a way the schema cannot express (cross-field rules, regexes). */
export class InvalidOptionError extends Error {
  override readonly name = 'InvalidOptionError';
  readonly nonRetryable = true;
  constructor(
    readonly option: string,
    readonly value: unknown,
    problem: string,
    fix: string,
  ) {
    super(`${option} ${quote(value)} ${problem}; ${fix}`);
  }
}

/** Split ratios do not sum to 1. */
export class InvalidRatiosError extends Error {
  override readonly name = 'InvalidRatiosError';
  readonly nonRetryable = true;
  constructor(readonly ratios: { readonly train: number; readonly validation: number; readonly test: number }) {
    const sum = ratios.train + ratios.validation + ratios.test;
    super(
      `split ratios ${quote(ratios)} sum to ${Number(sum.toFixed(9))}, not 1; ` +
        `adjust train/validation/test so they add up to 1 (e.g. 0.7/0.1/0.2)`,
    );
  }
}

/** backTranslation names a translator the worker has not registered. */
export class UnknownTranslatorError extends Error {
  override readonly name = 'UnknownTranslatorError';
  readonly nonRetryable = true;
  constructor(
    readonly translator: string,
    readonly registered: readonly string[],
  ) {
    super(
      `augment backTranslation.translator ${quote(translator)} is not registered; ` +
        `use one of ${registered.map(quote).join(', ')} or register it with the worker`,
    );
  }
}

/** A translator broke its contract (wrong number of outputs). */
export class TranslatorOutputError extends Error {
  override readonly name = 'TranslatorOutputError';
  readonly nonRetryable = true;
  constructor(
    readonly translator: string,
    readonly expected: number,
    readonly received: number,
  ) {
    super(
      `translator ${quote(translator)} returned ${received} texts for ${expected} inputs; ` +
        `a translator must return exactly one output per input, in order`,
    );
  }
}
