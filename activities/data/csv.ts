import { MalformedRecordError } from './errors';

/** One CSV row and the 1-based line it starts on (rows may span lines inside quotes). */
export interface CsvRow {
  line: number;
  fields: string[];
}

/**
 * Parses RFC 4180 CSV: comma-separated, fields optionally double-quoted, `""` inside quotes is a
 * quote, quoted fields may hold commas and newlines, lines end in LF, CRLF or CR. Blank lines are
 * skipped. A stray quote inside an unquoted field is kept literally, as most producers intend.
 * Throws MalformedRecordError naming `file` and the line for an unterminated quote or text after a
 * closing quote.
 */
export function parseCsv(text: string, file: string): CsvRow[] {
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let i = 0;
  const n = text.length;

  const endRow = (): void => {
    fields.push(field);
    field = '';
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ line: rowLine, fields });
    fields = [];
  };
  const skipNewline = (): void => {
    if (text[i] === '\r' && text[i + 1] === '\n') i++;
    i++;
    line++;
    rowLine = line;
  };

  while (i < n) {
    const c = text[i];
    if (c === '"' && field === '') {
      const quoteLine = line;
      i++;
      for (;;) {
        if (i >= n) {
          throw new MalformedRecordError(
            file,
            quoteLine,
            'quoted field is never closed',
            'close the field with a double quote, and write quotes inside it as ""',
          );
        }
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n' || (q === '\r' && text[i + 1] !== '\n')) line++;
        field += q;
        i++;
      }
      const after = text[i];
      if (i < n && after !== ',' && after !== '\n' && after !== '\r') {
        throw new MalformedRecordError(
          file,
          line,
          `unexpected ${JSON.stringify(after)} after a closing quote`,
          'quote the whole field and write quotes inside it as ""',
        );
      }
    } else if (c === ',') {
      fields.push(field);
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      endRow();
      skipNewline();
    } else {
      let end = i + 1;
      while (end < n) {
        const d = text[end];
        if (d === ',' || d === '\n' || d === '\r') break;
        end++;
      }
      field += text.slice(i, end);
      i = end;
    }
  }
  if (field !== '' || fields.length > 0) endRow();
  return rows;
}
