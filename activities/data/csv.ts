import { CsvError, parse } from 'csv-parse/sync';
import { MalformedRecordError } from './errors';

/** One CSV record: its values by column name and the 1-based line it starts on. */
export interface CsvRecord {
  line: number;
  fields: Record<string, string>;
}

/** A CSV file read against its header. `columns` is empty when the file holds no header. */
export interface CsvTable {
  columns: string[];
  /** 1-based line of the header (blank lines before it are skipped). */
  headerLine: number;
  records: CsvRecord[];
}

const countMatches = (value: string, pattern: RegExp): number => value.match(pattern)?.length ?? 0;
const lineBreaks = (values: readonly unknown[]): number =>
  values.reduce<number>((sum, v) => sum + (typeof v === 'string' ? countMatches(v, /\r\n|\n|\r/g) : 0), 0);
const crlfPairs = (values: readonly unknown[]): number =>
  values.reduce<number>((sum, v) => sum + (typeof v === 'string' ? countMatches(v, /\r\n/g) : 0), 0);

const QUOTING_FIX = 'quote fields that contain commas, quotes or newlines, and write quotes inside them as ""';

/**
 * Reads RFC 4180 CSV with csv-parse: the first non-blank line is the header, fields may be quoted,
 * `""` inside quotes is a quote, quoted fields may hold commas and newlines, lines end in LF, CRLF or
 * CR, blank lines are skipped and a BOM is dropped. Nothing is relaxed: a stray quote, text after a
 * closing quote, an unclosed quote, a row whose field count differs from the header's, or a column
 * name used twice throws MalformedRecordError naming `file` and the line.
 */
export function parseCsv(text: string, file: string): CsvTable {
  const headerLine = 1 + lineBreaks([/^\ufeff?(?:\r\n|\n|\r)*/.exec(text)?.[0] ?? '']);
  let columns: string[] = [];
  // csv-parse counts CR and LF inside a quoted field as a line each, so every CRLF there adds one
  // line too many to `lines` for the rest of the file; this is the running correction.
  let overcount = 0;
  try {
    const records = parse<CsvRecord, Record<string, string>>(text, {
      bom: true,
      columns: (header: string[]) => {
        // csv-parse would let a repeated name silently keep the last value.
        const repeated = header.find((name, i) => header.indexOf(name) !== i);
        if (repeated !== undefined) {
          throw new MalformedRecordError(
            file,
            headerLine,
            `column ${JSON.stringify(repeated)} appears more than once in the header`,
            'give every column a distinct name',
          );
        }
        overcount += crlfPairs(header);
        columns = header;
        return header;
      },
      // csv-parse reports the line a record ends on; its newlines take it back to where it starts.
      on_record: (fields, { lines }) => {
        const values = Object.values(fields);
        overcount += crlfPairs(values);
        return { line: lines - overcount - lineBreaks(values), fields };
      },
      // Without a list csv-parse keeps the first line ending it meets, so in a file that mixes them
      // rows would silently merge. CRLF comes first so it is not read as two endings.
      record_delimiter: ['\r\n', '\n', '\r'],
      skip_empty_lines: true,
    });
    return { columns, headerLine, records };
  } catch (error) {
    if (!(error instanceof CsvError)) throw error;
    throw malformed(error, file, (typeof error.lines === 'number' ? error.lines : 0) - overcount);
  }
}

/** csv-parse's error as ours, at `line` (where csv-parse stopped), with the usual fix. */
function malformed(error: CsvError, file: string, line: number): MalformedRecordError {
  switch (error.code) {
    case 'CSV_RECORD_INCONSISTENT_COLUMNS': {
      const fields = Array.isArray(error.record) ? (error.record as unknown[]) : [];
      const expected = Array.isArray(error.columns) ? error.columns.length : 'a different number';
      const start = line - crlfPairs(fields) - lineBreaks(fields);
      return new MalformedRecordError(file, start, `row has ${fields.length} fields but the header has ${expected}`, QUOTING_FIX);
    }
    case 'CSV_QUOTE_NOT_CLOSED':
      return new MalformedRecordError(
        file,
        line,
        'a quoted field is still open at the end of the file',
        `find the quote that opens it above this line; ${QUOTING_FIX}`,
      );
    case 'CSV_INVALID_CLOSING_QUOTE':
      return new MalformedRecordError(file, line, 'text follows the closing quote of a field', QUOTING_FIX);
    case 'INVALID_OPENING_QUOTE':
      return new MalformedRecordError(file, line, 'a quote appears inside an unquoted field', QUOTING_FIX);
    default:
      return new MalformedRecordError(file, line, `is not valid CSV (${error.message})`, QUOTING_FIX);
  }
}
