import { LineSplitter, LineTail, MAX_PROTOCOL_LINE_CHARS, parseProtocolLine } from '../../../activities/command/protocol';

describe('parseProtocolLine', () => {
  test('a progress line becomes heartbeat details without the "tempered" key', () => {
    expect(parseProtocolLine('{"tempered":"progress","step":10,"totalSteps":100,"loss":2.3}')).toEqual({
      kind: 'progress',
      details: { step: 10, totalSteps: 100, loss: 2.3 },
    });
  });

  test('a metrics line carries its values, nested ones included', () => {
    expect(parseProtocolLine('  {"tempered": "metrics", "accuracy": 0.97, "confusion": {"tp": 3}}  \r')).toEqual({
      kind: 'metrics',
      values: { accuracy: 0.97, confusion: { tp: 3 } },
    });
  });

  test('a checkpoint line names a finished checkpoint (the torch engine uploads it)', () => {
    expect(parseProtocolLine('{"tempered":"checkpoint","step":50,"dir":"/w/c/step-50"}')).toEqual({ kind: 'checkpoint', details: { step: 50, dir: '/w/c/step-50' } });
  });

  test.each([
    ['plain text', 'epoch 1: loss 0.3'],
    ['JSON log output', '{"level":"info","msg":"started"}'],
    ['an unknown kind', '{"tempered":"artifact","path":"x"}'],
    ['"tempered" that is not a kind', '{"tempered":true}'],
    ['a JSON array', '[{"tempered":"progress"}]'],
    ['broken JSON', '{"tempered":"progress",'],
    ['JSON followed by text', '{"tempered":"progress"} trailing'],
    ['an empty line', ''],
  ])('%s is an ordinary line', (_, line) => {
    expect(parseProtocolLine(line)).toBeUndefined();
  });

  test('an oversized protocol line is ordinary output, so heartbeats and metrics stay small', () => {
    const line = JSON.stringify({ tempered: 'metrics', blob: 'x'.repeat(MAX_PROTOCOL_LINE_CHARS) });
    expect(parseProtocolLine(line)).toBeUndefined();
  });
});

describe('LineSplitter', () => {
  function split(chunks: Array<string | Buffer>, maxLineChars?: number): string[] {
    const lines: string[] = [];
    const splitter = new LineSplitter((l) => lines.push(l), maxLineChars);
    for (const c of chunks) splitter.push(typeof c === 'string' ? Buffer.from(c) : c);
    splitter.end();
    return lines;
  }

  test('splits on \\n, \\r\\n and a lone \\r (progress bars), across chunk boundaries', () => {
    expect(split(['a\nb', 'c\r', '\nd\re\n', 'f'])).toEqual(['a', 'bc', 'd', 'e', 'f']);
  });

  test('keeps empty lines and drops nothing at the end', () => {
    expect(split(['x\n\ny\n'])).toEqual(['x', '', 'y']);
    expect(split(['tail\r'])).toEqual(['tail']);
  });

  test('decodes UTF-8 characters split between chunks', () => {
    const bytes = Buffer.from('naïve → ok\n');
    expect(split([bytes.subarray(0, 3), bytes.subarray(3, 9), bytes.subarray(9)])).toEqual(['naïve → ok']);
  });

  test('cuts a line that never ends, so binary output cannot grow memory', () => {
    const lines = split(['y'.repeat(25), 'z\n'], 10);
    expect(lines).toEqual(['yyyyyyyyyy', 'yyyyyyyyyy', 'yyyyyz']);
  });
});

describe('LineTail', () => {
  test('keeps the last lines, each cut to a bounded length', () => {
    const tail = new LineTail(3, 5);
    for (const line of ['1', '2', '3', '4', 'abcdefgh']) tail.push(line);
    expect(tail.lines()).toEqual(['3', '4', 'abcde…']);
  });
});
