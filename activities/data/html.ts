// HTML to text for mail bodies and scraped pages: drop markup, keep the words and a hint of layout.

const COMMENT = /<!--[\s\S]*?(?:-->|$)/g;
/** Elements whose content is code or styling, not text. */
const INVISIBLE = /<(script|style|head|noscript|template)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi;
const DECLARATION = /<![^>]*>|<\?[^>]*>/g;
/** A tag: name right after `<` or `</` (so `<a@b.com>` and `<http://x>` are not tags), attributes may quote `>`. */
const TAG = /<\/?([a-zA-Z][a-zA-Z0-9-]*)(?:\s(?:"[^"]*"|'[^']*'|[^'">])*)?\/?>/g;
/** Elements that break lines: replacing them by a newline keeps paragraphs apart. */
const BLOCK = new Set([
  'address', 'article', 'aside', 'blockquote', 'br', 'dd', 'div', 'dl', 'dt', 'footer', 'form', 'h1', 'h2',
  'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre', 'section', 'table', 'tbody',
  'thead', 'tfoot', 'title', 'tr', 'ul', 'body', 'html',
]);
/** Cell boundaries separate words, inline tags (b, i, span, a, font) do not. */
const CELL = new Set(['td', 'th']);

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®', trade: '™',
  hellip: '…', mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«',
  raquo: '»', bull: '•', middot: '·', euro: '€', pound: '£', yen: '¥', cent: '¢', sect: '§', para: '¶',
  deg: '°', plusmn: '±', times: '×', divide: '÷', frac12: '½', frac14: '¼', frac34: '¾', iexcl: '¡',
  iquest: '¿', shy: '\u00ad', acute: '´', uml: '¨', szlig: 'ß', agrave: 'à', aacute: 'á', acirc: 'â',
  auml: 'ä', aring: 'å', ccedil: 'ç', egrave: 'è', eacute: 'é', ecirc: 'ê', euml: 'ë', igrave: 'ì',
  iacute: 'í', icirc: 'î', iuml: 'ï', ntilde: 'ñ', ograve: 'ò', oacute: 'ó', ocirc: 'ô', ouml: 'ö',
  oslash: 'ø', ugrave: 'ù', uacute: 'ú', ucirc: 'û', uuml: 'ü', Auml: 'Ä', Ouml: 'Ö', Uuml: 'Ü',
  Eacute: 'É', Ntilde: 'Ñ',
};
const ENTITY = /&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]{1,31}));/g;

/** Replaces named (common ones) and numeric character references; unknown names stay as written. */
export function decodeEntities(text: string): string {
  return text.replace(ENTITY, (whole, decimal: string | undefined, hex: string | undefined, name: string | undefined) => {
    if (name !== undefined) return NAMED_ENTITIES[name] ?? whole;
    const code = decimal !== undefined ? Number(decimal) : parseInt(hex!, 16);
    const valid = code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
    return valid ? String.fromCodePoint(code) : '\ufffd';
  });
}

/** Text of an HTML fragment or document: comments, scripts, styles and tags removed, entities decoded. */
export function stripHtml(text: string): string {
  if (!text.includes('<') && !text.includes('&')) return text;
  const withoutMarkup = text
    .replace(COMMENT, '')
    .replace(INVISIBLE, ' ')
    .replace(DECLARATION, '')
    .replace(TAG, (_tag, name: string) => {
      const lower = name.toLowerCase();
      return BLOCK.has(lower) ? '\n' : CELL.has(lower) ? ' ' : '';
    });
  // Entities last, so an escaped `&lt;script&gt;` survives as text instead of being read as a tag.
  return decodeEntities(withoutMarkup);
}
