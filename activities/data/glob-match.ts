// Matches S3 keys against a source's `include` glob. Local files are globbed by tinyglobby; keys
// come from a listing, so only a matcher is needed. (With `picomatch` as a direct dependency this
// file could go.)

const REGEX_SPECIAL = /[\\^$.|+()[\]{}*?]/;

/** Compiles a glob (`*`, `?`, `**`, `[abc]`, `[!abc]`, `{a,b}`) to an anchored RegExp over `/` paths. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atSegmentStart = i === 0 || glob[i - 1] === '/';
        const atSegmentEnd = i + 2 === glob.length || glob[i + 2] === '/';
        if (atSegmentStart && atSegmentEnd) {
          // `**/` matches zero or more whole directories; a trailing `**` matches everything below.
          if (glob[i + 2] === '/') {
            source += '(?:[^/]*/)*';
            i += 2;
          } else {
            source += '.*';
            i += 1;
          }
          continue;
        }
      }
      source += '[^/]*';
    } else if (c === '?') {
      source += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        source += '\\[';
        continue;
      }
      const body = glob.slice(i + 1, close);
      const negated = body[0] === '!';
      const members = (negated ? body.slice(1) : body).replace(/[\\\]^]/g, '\\$&');
      source += `[${negated ? '^' : ''}${members}]`;
      i = close;
    } else if (c === '{') {
      braceDepth++;
      source += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      source += ')';
    } else if (c === ',' && braceDepth > 0) {
      source += '|';
    } else {
      source += REGEX_SPECIAL.test(c) ? `\\${c}` : c;
    }
  }
  return new RegExp(`^${source}$`);
}
