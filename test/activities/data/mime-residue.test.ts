import { declaredBoundaries, findMimeResidue, hasQuotedPrintableResidue } from '../../../activities/data/mime-residue';

const NONE = { partHeaders: false, boundaries: false, quotedPrintable: false, base64: false, entities: false };

describe('findMimeResidue', () => {
  it('finds part headers, declared boundaries, quoted-printable, base64 runs and entities', () => {
    const base64 = Buffer.from('x'.repeat(300)).toString('base64').match(/.{1,76}/g)!.join('\n');
    expect(findMimeResidue('a\nContent-Type: text/plain\nb')).toEqual({ ...NONE, partHeaders: true });
    expect(findMimeResidue('a\n--=_b1\nb', ['=_b1'])).toEqual({ ...NONE, boundaries: true });
    expect(findMimeResidue('a =3D b')).toEqual({ ...NONE, quotedPrintable: true });
    expect(findMimeResidue('trailing space=20\nnext')).toEqual({ ...NONE, quotedPrintable: true });
    expect(findMimeResidue('caf=E9=20bar')).toEqual({ ...NONE, quotedPrintable: true });
    expect(findMimeResidue('a line that was soft-bro=\nken')).toEqual({ ...NONE, quotedPrintable: true });
    expect(findMimeResidue(`text\n${base64}\nmore`)).toEqual({ ...NONE, base64: true });
    expect(findMimeResidue('Tom &amp; Jerry &rarr;')).toEqual({ ...NONE, entities: true });
  });

  it('leaves alone what text has of its own', () => {
    const armored = ['-----BEGIN PGP SIGNATURE-----', 'Version: GnuPG v1.0.6', '', ...Array(4).fill('iQEVAwUBPW5AmaHbXyzZsAb3AQH+qQgA1vnUjJUwGDa1yCRQd3vZAnhkCF0KDBBA'), 'T1Y/CN0DNYA=', '-----END PGP SIGNATURE-----'];
    const texts = [
      'see http://example.org/list.asp?sid=\nand http://example.org/?a=specialoffers&e=',
      'YXRjaC5jb20=',
      'if (a != b) x[]=',
      '-=-=-=-=-=-=-=-=-=-=\n=PRINT THIS NOW FOR YOUR FUTURE REFERENCE=',
      'page?id=2010868 and width=20px',
      'AT&T, R&D, Q&A, ?a=1&region=us and &bogus;',
      '-- \nsigned off\n-----------------------',
      armored.join('\n'),
    ];
    for (const text of texts) expect([text, findMimeResidue(text, ['b1'])]).toEqual([text, NONE]);
  });

  it('checks the text of a clearsigned message, not only its armor', () => {
    const clearsigned = ['-----BEGIN PGP SIGNED MESSAGE-----', 'Hash: SHA1', '', 'left encoded=3D', '-----BEGIN PGP SIGNATURE-----', 'iQA=', '-----END PGP SIGNATURE-----'];
    expect(hasQuotedPrintableResidue(clearsigned.join('\n'))).toBe(true);
  });
});

describe('declaredBoundaries', () => {
  it('collects quoted and bare boundary parameters, once each', () => {
    const raw = 'Content-Type: multipart/mixed; boundary="----=_Part 1"\n\n--x\nContent-Type: multipart/alternative;\n\tboundary=inner-2\n\n--inner-2\n--inner-2--\n';
    expect(declaredBoundaries(raw)).toEqual(['----=_Part 1', 'inner-2']);
  });
});
