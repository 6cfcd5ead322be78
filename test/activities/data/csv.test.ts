import { parseCsv } from '../../../activities/data/csv';
import { MalformedRecordError } from '../../../activities/data/errors';

describe('parseCsv', () => {
  it('reads quoted commas, doubled quotes and newlines inside quotes, skipping blank lines', () => {
    const text = '\ufeffa,b,c\r\n"x, y","he said ""hi""",\n\n"multi\nline",z,""\n';
    expect(parseCsv(text, 'f.csv')).toEqual({
      columns: ['a', 'b', 'c'],
      headerLine: 1,
      records: [
        { line: 2, fields: { a: 'x, y', b: 'he said "hi"', c: '' } },
        { line: 4, fields: { a: 'multi\nline', b: 'z', c: '' } },
      ],
    });
  });

  it('numbers records by the line they start on, whatever the line endings inside and between them', () => {
    const text = '\n\nid,text\r\n1,"one\r\ntwo\r\nthree"\r\n2,"a\rb"\n3,plain\r4,"x\ny"\n';
    const { headerLine, records } = parseCsv(text, 'f.csv');
    expect(headerLine).toBe(3);
    expect(records.map((r) => [r.fields.id, r.line])).toEqual([
      ['1', 4],
      ['2', 7],
      ['3', 9],
      ['4', 10],
    ]);
    expect(records[0].fields.text).toBe('one\r\ntwo\r\nthree');
  });

  it('returns no columns for an empty file and the header alone for a header-only file', () => {
    expect(parseCsv('', 'f.csv')).toEqual({ columns: [], headerLine: 1, records: [] });
    expect(parseCsv('text,label\n', 'f.csv')).toEqual({ columns: ['text', 'label'], headerLine: 1, records: [] });
  });

  it.each([
    ['a row with too many fields', 'a,b\n1,2\n"x\r\ny",2,3\n', 'f.csv:3: row has 3 fields but the header has 2'],
    ['a row with too few fields', 'a,b\n1,2\n3\n', 'f.csv:3: row has 1 fields but the header has 2'],
    ['a quote never closed', 'a,b\nc,"never\nclosed\n', 'f.csv:3: a quoted field is still open at the end of the file'],
    ['text after a closing quote', 'a,b\n"x"y,c\n', 'f.csv:2: text follows the closing quote of a field'],
    ['a stray quote in an unquoted field', 'a,b\n5" disk,ok\n', 'f.csv:2: a quote appears inside an unquoted field'],
    ['a repeated column name', 'a,b,a\n1,2,3\n', 'f.csv:1: column "a" appears more than once in the header'],
  ])('rejects %s with MalformedRecordError naming file and line', (_, text, message) => {
    const parse = () => parseCsv(text, 'f.csv');
    expect(parse).toThrow(MalformedRecordError);
    expect(parse).toThrow(message);
  });

  it('keeps counting lines correctly past CRLFs inside quotes when reporting an error', () => {
    expect(() => parseCsv('a,b\r\n"1\r\n2",x\r\n"3"z,y\r\n', 'f.csv')).toThrow('f.csv:4: text follows the closing quote');
  });
});
