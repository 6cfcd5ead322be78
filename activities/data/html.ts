// HTML to text for mail bodies and scraped pages: drop markup, keep the words and a hint of layout.

import { decodeHTML, DecodingMode } from 'entities';

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

/**
 * Decodes character references as HTML does (`entities`: the full HTML5 table, numeric references
 * with the spec's Windows-1252 remapping, invalid code points → U+FFFD), but only those ending in
 * `;`: text that is not HTML (URLs, `AT&T`, `?a=1&region=us`) keeps its ampersands; unknown
 * names stay as written.
 */
export function decodeEntities(text: string): string {
  return text.includes('&') ? decodeHTML(text, DecodingMode.Strict) : text;
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
