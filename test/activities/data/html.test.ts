import { decodeEntities, stripHtml } from '../../../activities/data/html';

describe('decodeEntities', () => {
  it('decodes common named and numeric references and keeps unknown names', () => {
    expect(decodeEntities('&lt;a&gt; &quot;x&quot; &eacute; &#233; &#xE9; &bogus; &#0; &#x110000;')).toBe(
      '<a> "x" é é é &bogus; \ufffd \ufffd',
    );
  });
});

describe('decodeEntities with the full HTML table', () => {
  it('decodes every named reference ending in `;` and numeric ones as HTML does', () => {
    expect(decodeEntities('&rarr; &amp; &#8217; &hearts; &NotEqual; &#150;')).toBe('→ & ’ ♥ ≠ –');
  });

  it('leaves ampersands of text that is not HTML alone: no `;`, no reference', () => {
    const text = 'AT&T, R&D, http://x.org/?a=1&region=us&copy=2 &amp without semicolon';
    expect(decodeEntities(text)).toBe(text);
  });
});

describe('stripHtml', () => {
  it('leaves text without markup untouched', () => {
    expect(stripHtml('plain 3 < 4 text')).toBe('plain 3 < 4 text');
  });

  it('keeps words split by inline tags together and removes unclosed scripts to the end', () => {
    expect(stripHtml('V<b></b>iagra <span class="x">now</span><script>var a = "<p>";')).toBe('Viagra now ');
  });

  it('handles attributes that contain `>` inside quotes', () => {
    expect(stripHtml('<a title="a > b" href=\'x\'>link</a>')).toBe('link');
  });
});
