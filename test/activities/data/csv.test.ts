import { parseCsv } from '../../../activities/data/csv';
import { MalformedRecordError } from '../../../activities/data/errors';

describe('parseCsv', () => {
  it('handles quotes, doubled quotes, commas and newlines inside quotes, CRLF and blank lines', () => {
    const text = 'a,b,c\r\n"x, y","he said ""hi""",\n\n"multi\nline",z,""\n';
    expect(parseCsv(text, 'f.csv')).toEqual([
      { line: 1, fields: ['a', 'b', 'c'] },
      { line: 2, fields: ['x, y', 'he said "hi"', ''] },
      { line: 4, fields: ['multi\nline', 'z', ''] },
    ]);
  });

  it('keeps a stray quote inside an unquoted field', () => {
    expect(parseCsv('5" disk,ok', 'f.csv')).toEqual([{ line: 1, fields: ['5" disk', 'ok'] }]);
  });

  it('reports an unterminated quote at the line where the field opens', () => {
    const parse = () => parseCsv('a,b\nc,"never\nclosed\n', 'f.csv');
    expect(parse).toThrow(MalformedRecordError);
    expect(parse).toThrow('f.csv:2: quoted field is never closed');
  });

  it('reports text after a closing quote', () => {
    expect(() => parseCsv('"a"b,c', 'f.csv')).toThrow('f.csv:1: unexpected "b" after a closing quote');
  });
});
