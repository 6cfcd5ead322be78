import { cleanRecords } from '../../../activities/data/clean';
import { decodeMail } from '../../../activities/data/mail';
import { findMimeResidue, declaredBoundaries } from '../../../activities/data/mime-residue';
import type { DataRecord } from '../../../activities/data/record';
import { CleanOptionsSchema, type CleanOptions } from '../../../pipelines/stage-types';

const mail = (...lines: string[]): string => lines.join('\r\n');
const TOP = ['Return-Path: <a@example.org>', 'From: Alice <a@example.org>', 'To: b@example.org', 'Subject: test', 'MIME-Version: 1.0'];

/** Mail decoding and HTML stripping on, every other step off. */
const mailOptions = (raw: Record<string, unknown> = {}): CleanOptions =>
  CleanOptionsSchema.parse({ stripMailHeaders: true, stripHtml: true, normalize: 'none', exactDedup: false, nearDedup: false, redact: false, ...raw });
const records = (...texts: string[]): DataRecord[] => texts.map((text, i) => ({ id: `r${i}`, text }));

describe('decodeMail', () => {
  it('takes the quoted-printable text part of a multipart/alternative and decodes it with its charset', async () => {
    const text = mail(
      ...TOP,
      'Content-Type: multipart/alternative; boundary="alt-1"',
      '',
      'This is a multi-part message in MIME format.',
      '--alt-1',
      'Content-Type: text/plain; charset="iso-8859-1"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Caf=E9 prices: 3=3D3 euros=20',
      'and a line that quoted-printable broke in two, so that none is longer than sevent=',
      'y-six characters.',
      '--alt-1',
      'Content-Type: text/html; charset="iso-8859-1"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<p>Caf=E9 <b>HTML</b> version</p>',
      '--alt-1--',
      '',
    );
    const body = await decodeMail(text);
    expect(body).toMatchObject({ parsed: true, fromHtml: false, attachments: 0 });
    expect(body!.text).toBe(
      'Café prices: 3=3 euros \nand a line that quoted-printable broke in two, so that none is longer than seventy-six characters.\n',
    );
  });

  it('decodes a base64 text part', async () => {
    const encoded = Buffer.from('Hello from base64, with ünïcödé.\nSecond line.\n', 'utf8').toString('base64');
    const body = await decodeMail(
      mail(...TOP, 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64', '', encoded.slice(0, 40), encoded.slice(40), ''),
    );
    expect(body!.text).toBe('Hello from base64, with ünïcödé.\nSecond line.\n');
  });

  it('decodes by the declared charset: 8-bit Latin-1 keeps its letters, GB2312 becomes Chinese rather than mojibake', async () => {
    // collect reads a file that is not UTF-8 as Windows-1252: "café" in Latin-1 arrives as "café",
    // and GB2312's bytes D6 D0 CE C4 ("中文") arrive as "ÖÐÎÄ".
    const latin1 = await decodeMail(mail(...TOP, 'Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: 8bit', '', 'Un café, déjà.'));
    expect(latin1).toMatchObject({ text: 'Un café, déjà.\n', legacyBytes: true });
    const gb2312 = await decodeMail(mail(...TOP, 'Content-Type: text/plain; charset=gb2312', 'Content-Transfer-Encoding: 8bit', '', 'ÖÐÎÄ'));
    expect(gb2312).toMatchObject({ text: '中文\n', legacyBytes: true });
    const base64 = await decodeMail(mail(...TOP, 'Content-Type: text/plain; charset="GB2312"', 'Content-Transfer-Encoding: base64', '', '1tDOxA=='));
    expect(base64!.text).toBe('中文');
    // A UTF-8 mail stays UTF-8.
    const utf8 = await decodeMail(mail(...TOP, 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Un café, 中文.'));
    expect(utf8).toMatchObject({ text: 'Un café, 中文.\n', legacyBytes: false });
  });

  it('reads a text part that declares no charset and is not UTF-8 as Windows-1252', async () => {
    const encoded = Buffer.from('Vir\xfcs kontrol\xfc ok \x93quoted\x94', 'latin1').toString('base64');
    const body = await decodeMail(mail(...TOP, 'Content-Type: text/plain', 'Content-Transfer-Encoding: base64', '', encoded));
    expect(body).toMatchObject({ text: 'Virüs kontrolü ok “quoted”', undeclaredAsWindows1252: true });
  });

  it('drops the attachments of a nested multipart and keeps its text', async () => {
    const body = await decodeMail(
      mail(
        ...TOP,
        'Content-Type: multipart/mixed; boundary="outer"',
        '',
        '--outer',
        'Content-Type: multipart/alternative; boundary="inner"',
        '',
        '--inner',
        'Content-Type: text/plain; charset=us-ascii',
        '',
        'The report is attached.',
        '--inner',
        'Content-Type: text/html; charset=us-ascii',
        '',
        '<p>The report is <i>attached</i>.</p>',
        '--inner--',
        '--outer',
        'Content-Type: application/pdf; name="report.pdf"',
        'Content-Transfer-Encoding: base64',
        'Content-Disposition: attachment; filename="report.pdf"',
        '',
        'JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+',
        'c3RyZWFtCnicK+QyNDJQMABhCxMjPRMjQ7NAUz0dAj4AW2gI2gplbmRzdHJlYW0KZW5kb2JqCjYgMCBv',
        'YmoKNzkKZW5kb2JqCg==',
        '--outer',
        'Content-Type: text/plain; name="notes.txt"',
        'Content-Disposition: attachment; filename="notes.txt"',
        '',
        'attached notes, not body text',
        '--outer--',
        '',
      ),
    );
    expect(body).toMatchObject({ text: 'The report is attached.\n', attachments: 2, parsed: true });
  });

  it('decodes quoted-printable in a part labelled 7bit, and a multipart whose header names a boundary the body does not use', async () => {
    const mislabelled = await decodeMail(
      mail(...TOP, 'Content-Type: text/plain', 'Content-Transfer-Encoding: 7bit', '', 'Would you li=', 'ke more=3F Reply=20', 'now.'),
    );
    expect(mislabelled).toMatchObject({ text: 'Would you like more? Reply \nnow.\n', relabelledQuotedPrintable: true });
    const mismatched = await decodeMail(
      mail(
        ...TOP,
        'Content-Type: multipart/alternative; boundary="=Multipart Boundary 0925021429"',
        '',
        'This is a multipart MIME message.',
        '',
        '--= Multipart Boundary 0925021429',
        'Content-Type: text/plain; charset="ISO-8859-1"',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        'Printer cartridges as low as $1.21=21',
        '',
        '--= Multipart Boundary 0925021429',
        'Content-Type: text/html; charset="ISO-8859-1"',
        '',
        '<p>Printer cartridges</p>',
        '',
        '--= Multipart Boundary 0925021429--',
        '',
      ),
    );
    expect(mismatched).toMatchObject({ repairedMultipart: true });
    expect(mismatched!.text.trimEnd()).toBe('This is a multipart MIME message.\n\nPrinter cartridges as low as $1.21!');
  });

  it('is undefined for a record that is not a mail', async () => {
    expect(await decodeMail('Note: this is not a mail\n\nIt only has a colon.')).toBeUndefined();
  });
});

describe('cleanRecords on mail', () => {
  it('turns an HTML-only mail into text, decoding entities (&rarr; &amp; &#8217;)', async () => {
    const html = mail(
      ...TOP,
      'Content-Type: text/html; charset=us-ascii',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<html><body><p>Next &rarr; Tom &amp; Jerry&#8217;s <a href=3D"http://x.org">show</a>=',
      '</p><p>Caf&eacute;&nbsp;open</p></body></html>',
    );
    const result = await cleanRecords(records(html), mailOptions());
    expect(result.records[0].text).toBe('Next → Tom & Jerry’s show\n\nCafé open');
    expect(result.metrics).toMatchObject({ strippedHeaders: 1, strippedHtml: 1, mime: { parsed: 1, htmlOnly: 1 } });
  });

  it('leaves a record that is not a mail untouched and counts only mails', async () => {
    const prose = 'Note: this is not a mail\n\nIt only has a colon, an =3D and a &rarr;.';
    const plain = mail(...TOP, 'Content-Type: text/plain', '', 'Body.');
    const result = await cleanRecords(records(prose, plain), mailOptions({ stripHtml: false, collapseWhitespace: false }));
    expect(result.records.map((r) => r.text)).toEqual([prose, 'Body.\n']);
    expect(result.metrics.strippedHeaders).toBe(1);
    expect(result.metrics.mime.parsed).toBe(1);
  });

  it('keeps the HTML of an HTML-only mail when stripHtml is off', async () => {
    const html = mail(...TOP, 'Content-Type: text/html', '', '<p>Tom &amp; Jerry</p>');
    const result = await cleanRecords(records(html), mailOptions({ stripHtml: false }));
    expect(result.records[0].text).toBe('<p>Tom &amp; Jerry</p>');
  });

  it('leaves no residue in the mails above', async () => {
    const qp = mail(...TOP, 'Content-Type: multipart/alternative; boundary="b1"', '', '--b1', 'Content-Type: text/plain', 'Content-Transfer-Encoding: quoted-printable', '', 'soft=', 'break =3D done=20', '--b1--');
    const result = await cleanRecords(records(qp), mailOptions());
    expect(result.records[0].text).toBe('softbreak = done');
    expect(findMimeResidue(result.records[0].text, declaredBoundaries(qp))).toEqual({
      partHeaders: false,
      boundaries: false,
      quotedPrintable: false,
      base64: false,
      entities: false,
    });
  });
});
