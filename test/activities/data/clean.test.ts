import { cleanRecords, collapseWhitespace } from '../../../activities/data/clean';
import { InvalidOptionError } from '../../../activities/data/errors';
import { createRandom } from '../../../activities/data/random';
import type { DataRecord } from '../../../activities/data/record';
import { CleanOptionsSchema, type CleanOptions } from '../../../pipelines/stage-types';

/** Schema defaults plus overrides; by default only the step under test is on. */
const only = (raw: Record<string, unknown>): CleanOptions =>
  CleanOptionsSchema.parse({ normalize: 'none', exactDedup: false, nearDedup: false, redact: false, ...raw });
const records = (...texts: string[]): DataRecord[] => texts.map((text, i) => ({ id: `r${i}`, text }));
const texts = (result: { records: DataRecord[] }): string[] => result.records.map((r) => r.text);

/** `count` words drawn from a 500-word vocabulary with a seeded stream. */
function randomWords(seed: number, count: number): string[] {
  const random = createRandom(seed);
  return Array.from({ length: count }, () => `w${random.int(500)}`);
}

describe('collapseWhitespace', () => {
  it('collapses space/tab runs, trims lines, keeps at most one blank line, trims the text', () => {
    expect(collapseWhitespace('  a \t b\r\n\n\n\nc  \n d \u00a0')).toBe('a b\n\nc\nd');
  });
});

describe('cleanRecords', () => {
  it('normalizes Unicode with NFKC and counts changed records', async () => {
    const result = await cleanRecords(records('ｆｕｌｌ\u3000ｗｉｄｔｈ \ufb01ne', 'plain'), only({ normalize: 'NFKC' }));
    expect(texts(result)).toEqual(['full width fine', 'plain']);
    expect(result.metrics.normalized).toBe(1);
  });

  it('strips an RFC 822 header block, including folded lines and the mbox From line', async () => {
    const mail = [
      'From someone@example.com  Thu Aug 22 12:36:23 2002',
      'Return-Path: <someone@example.com>',
      'Received: from localhost (localhost [127.0.0.1])',
      '\tby phobos.example.com (Postfix) with ESMTP id D03E543C36',
      '',
      '    for <zzzz@localhost>; Thu, 22 Aug 2002', // body that merely looks like a continuation
      'X-Fake: still body',
      '',
      'Bye.',
    ].join('\n');
    const prose = 'Note: this is not a mail\n\nIt only has a colon.';
    const result = await cleanRecords(records(mail, prose), only({ stripMailHeaders: true }));
    expect(texts(result)).toEqual([
      'for <zzzz@localhost>; Thu, 22 Aug 2002\nX-Fake: still body\n\nBye.',
      'Note: this is not a mail\n\nIt only has a colon.',
    ]);
    expect(result.metrics.strippedHeaders).toBe(1);
  });

  it('keepHeaders: [subject] keeps a mail\'s decoded Subject in meta.subject, on one line and redacted like the text; mails without one are dropped', async () => {
    const mail = ['From: a@example.org', 'Subject: =?utf-8?q?Caf=C3=A9_at_noon?=', '  mail me at bob@example.org', 'Content-Type: text/plain', '', 'See you.'].join('\n');
    const noSubject = ['From: a@example.org', 'Content-Type: text/plain', '', 'No subject here.'].join('\n');
    const result = await cleanRecords([{ id: 'm', text: mail, meta: { source: 'x' } }, { id: 'n', text: noSubject }], only({ stripMailHeaders: true, keepHeaders: ['subject'], redact: true }));
    expect(result.records.map((r) => [r.text, r.meta])).toEqual([
      ['See you.', { source: 'x', subject: 'Café at noon mail me at <EMAIL>' }],
    ]);
    // Records without the field are dropped: keepHeaders promises it to the stages after.
    expect(result.metrics.keptHeaders).toEqual({ subject: 1 });
    expect(result.metrics.missingHeaders).toBe(1);
    expect(result.metrics.redacted.emails).toBe(1);
  });

  it('strips HTML tags, scripts, styles and comments and decodes entities', async () => {
    const html =
      '<html><head><title>T</title><style>p{color:red}</style></head><body>' +
      '<p>Hello&nbsp;<b>wor</b>ld &amp; friends &#8364;5 &#x41;<!-- hidden --></p>' +
      '<script>alert("x")</script><table><tr><td>a</td><td>b</td></tr></table><p>Bye</p></body></html>';
    const result = await cleanRecords(
      records(html, 'Write to <john@example.org> or see <http://example.org>', '&lt;script&gt; is text'),
      only({ stripHtml: true }),
    );
    expect(texts(result)).toEqual([
      'Hello world & friends €5 A\n\na b\n\nBye',
      'Write to <john@example.org> or see <http://example.org>',
      '<script> is text',
    ]);
    expect(result.metrics.strippedHtml).toBe(2);
  });

  it('redacts e-mails, phones, IPs and Luhn-valid card numbers and counts each replacement', async () => {
    const input = [
      'Mail john.doe+tag@example.co.uk or JANE@EXAMPLE.ORG.',
      'Call +44 20 7946 0958, (202) 555-0143, 202-555-0143 or 1-800-555-0199.',
      'Hosts 10.0.0.1, 2001:db8::8a2e:370:7334 and ::1 are down.',
      'Cards 4111 1111 1111 1111 and 378282246310005 and 5500-0000-0000-0004.',
    ];
    const result = await cleanRecords(records(...input), only({ redact: {} }));
    expect(texts(result)).toEqual([
      'Mail <EMAIL> or <EMAIL>.',
      'Call <PHONE>, <PHONE>, <PHONE> or <PHONE>.',
      'Hosts <IP>, <IP> and <IP> are down.',
      'Cards <CARD> and <CARD> and <CARD>.',
    ]);
    expect(result.metrics.redacted).toEqual({ emails: 2, phones: 4, ips: 3, cards: 3 });
  });

  it('leaves look-alikes alone: years, versions, dates, times, short numbers, Luhn-invalid cards', async () => {
    const input = [
      'In 2002 we shipped version 1.2.3 on 2002-08-22 at 12:30:45.',
      'Room 555, ticket 1234567890, std::vector and Foo::Bar, user@localhost.',
      'Not a card: 4111 1111 1111 1112 nor 1234567812345678 nor 999.1.1.1.',
    ];
    const result = await cleanRecords(records(...input), only({ redact: {} }));
    expect(texts(result)).toEqual(input);
    expect(result.metrics.redacted).toEqual({ emails: 0, phones: 0, ips: 0, cards: 0 });
  });

  it('redacts only the kinds that are switched on', async () => {
    const text = 'a@b.com 10.0.0.1 4111111111111111 +1 202 555 0143';
    const result = await cleanRecords(records(text), only({ redact: { emails: false, ips: false } }));
    expect(texts(result)).toEqual(['a@b.com 10.0.0.1 <CARD> <PHONE>']);
  });

  it('drops records outside the length bounds, counting code points', async () => {
    const result = await cleanRecords(records('abc', 'abcd', '😀😀😀', 'abcdefghijk', '  abcd  '), only({ minChars: 4, maxChars: 10 }));
    expect(texts(result)).toEqual(['abcd', 'abcd']);
    expect(result.metrics.removed).toEqual({ binary: 0, tooShort: 2, tooLong: 1, exactDuplicate: 0, nearDuplicate: 0 });
  });

  it('drops exact duplicates after cleaning, keeping the first', async () => {
    const result = await cleanRecords(records('a b c', 'x', 'a  b\tc', 'x'), only({ exactDedup: true }));
    expect(result.records.map((r) => r.id)).toEqual(['r0', 'r1']);
    expect(result.metrics.removed.exactDuplicate).toBe(2);
  });

  it('merges a mail with its one-word-changed copy and keeps unrelated texts', async () => {
    const words = randomWords(1, 150);
    const copy = [...words];
    copy[75] = 'changed';
    const unrelated = randomWords(2, 150);
    const result = await cleanRecords(
      records(words.join(' '), unrelated.join(' '), copy.join(' ')),
      only({ nearDedup: {} }),
    );
    expect(result.records.map((r) => r.id)).toEqual(['r0', 'r1']);
    expect(result.metrics.removed.nearDuplicate).toBe(1);
  });

  it('does not merge texts that share only half their words', async () => {
    const words = randomWords(3, 100);
    const half = [...words.slice(0, 50), ...randomWords(4, 50)];
    const result = await cleanRecords(records(words.join(' '), half.join(' ')), only({ nearDedup: {} }));
    expect(result.records).toHaveLength(2);
  });

  it('reports every count with the defaults on', async () => {
    const result = await cleanRecords(
      records('  Hello   world, mail me at a@b.org  ', 'Hello world, mail me at a@b.org', ''),
      CleanOptionsSchema.parse({}),
    );
    expect(result.records).toEqual([{ id: 'r0', text: 'Hello world, mail me at <EMAIL>' }]);
    expect(result.metrics).toEqual({
      input: 3,
      output: 1,
      removed: { binary: 0, tooShort: 1, tooLong: 0, exactDuplicate: 1, nearDuplicate: 0 },
      strippedControl: 0,
      redacted: { emails: 2, phones: 0, ips: 0, cards: 0 },
      normalized: 0,
      strippedHeaders: 0,
      mime: { parsed: 0, htmlOnly: 0, droppedAttachments: 0, legacyCharset: 0, undeclaredCharset: 0, relabelledQuotedPrintable: 0, repairedMultipart: 0 },
      strippedHtml: 0,
      collapsedWhitespace: 1,
      nearDuplicateCandidatePairs: 0,
    });
  });

  it('drops binary records (NUL bytes, controls, undecodable bytes) with a counted reason', async () => {
    const nul = '\0'.repeat(4096);
    const controls = 'ab\x01\x02\x03\x1b\x7f\x85';
    const undecodable = '\ufffd\ufffdPNG\ufffd\ufffd\x1a\0\0\0';
    const result = await cleanRecords(records(nul, 'a real mail', controls, undecodable), CleanOptionsSchema.parse({}));
    expect(texts(result)).toEqual(['a real mail']);
    expect(result.metrics.removed.binary).toBe(3);
    expect(result.metrics.output).toBe(1);
  });

  it('strips stray control characters from text it keeps, so no NUL survives; whitespace controls stay', async () => {
    const result = await cleanRecords(
      records('hello\0 wor\x1bld, a long enough line of text', 'tab\there\nline\r\nform\ffeed', 'caf\u00e9 \ufffd ok here'),
      only({ collapseWhitespace: false }),
    );
    expect(texts(result)).toEqual(['hello world, a long enough line of text', 'tab\there\nline\r\nform\ffeed', 'caf\u00e9 \ufffd ok here']);
    expect(result.metrics.strippedControl).toBe(1);
    expect(result.metrics.removed.binary).toBe(0);
    expect(texts(result).join('')).not.toMatch(/[\0-\x08\x0e-\x1f\x7f-\x9f]/);
  });

  it('says so when every record was binary', async () => {
    await expect(cleanRecords(records('\0\0\0\0', '\x01\x02'), CleanOptionsSchema.parse({}))).rejects.toThrow(/2 binary \(control characters or undecodable bytes, not text\).*check collect's sources/);
  });

  it('is deterministic', async () => {
    const input = records(...Array.from({ length: 30 }, (_, i) => randomWords(i % 10, 40).join(' ')));
    expect(await cleanRecords(input, CleanOptionsSchema.parse({}))).toEqual(await cleanRecords(input, CleanOptionsSchema.parse({})));
  });

  it('rejects bands that do not divide numPermutations before doing any work', async () => {
    const options = CleanOptionsSchema.parse({ nearDedup: { bands: 30 } });
    await expect(cleanRecords(records('x'), options)).rejects.toThrow(InvalidOptionError);
    await expect(cleanRecords(records('x'), options)).rejects.toThrow(
      'nearDedup.bands 30 does not divide nearDedup.numPermutations (128); choose a divisor of 128, e.g. 32',
    );
  });
});
