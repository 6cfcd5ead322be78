import { decodeText, decodeUtf8, firstInvalidUtf8Offset } from '../../../activities/data/decode';
import { InvalidUtf8Error } from '../../../activities/data/errors';

const bytes = (...values: number[]) => Uint8Array.from(values);

describe('firstInvalidUtf8Offset', () => {
  it('is -1 for valid UTF-8', () => {
    expect(firstInvalidUtf8Offset(new TextEncoder().encode('héllo → 😀'))).toBe(-1);
  });

  it('points at a byte that can never appear, at a stray continuation byte, or at an interrupted sequence', () => {
    expect(firstInvalidUtf8Offset(bytes(0x61, 0x62, 0xff))).toBe(2);
    expect(firstInvalidUtf8Offset(bytes(0x61, 0xc3, 0xa9, 0x80))).toBe(3);
    expect(firstInvalidUtf8Offset(bytes(0x61, 0xe2, 0x82, 0x41))).toBe(1);
  });

  it('points at a sequence truncated by the end of the file', () => {
    expect(firstInvalidUtf8Offset(bytes(0x61, 0x62, 0xe2, 0x82))).toBe(2);
  });
});

describe('decodeUtf8 / decodeText', () => {
  it('drops a BOM', () => {
    expect(decodeUtf8(bytes(0xef, 0xbb, 0xbf, 0x68, 0x69), 'f')).toBe('hi');
  });

  it('throws InvalidUtf8Error with file and offset under the strict policy', () => {
    expect(() => decodeText(bytes(0x61, 0xa3), 'mail.txt', 'utf-8')).toThrow(InvalidUtf8Error);
    expect(() => decodeText(bytes(0x61, 0xa3), 'mail.txt', 'utf-8')).toThrow('"mail.txt" is not valid UTF-8: invalid byte sequence at byte offset 1');
  });

  it('falls back to Windows-1252, including the 0x80–0x9F range', () => {
    expect(decodeText(bytes(0x93, 0x68, 0x69, 0x94, 0x20, 0x80, 0xa3, 0xe9), 'f', 'utf-8-or-windows-1252')).toEqual({
      text: '“hi” €£é',
      fellBack: true,
    });
    expect(decodeText(bytes(0xc3, 0xa9), 'f', 'utf-8-or-windows-1252')).toEqual({ text: 'é', fellBack: false });
  });
});
