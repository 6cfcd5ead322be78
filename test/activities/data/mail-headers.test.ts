import { stripMailHeaders } from '../../../activities/data/mail-headers';

describe('stripMailHeaders', () => {
  it('returns the body after the first blank line, with CRLF line ends', () => {
    expect(stripMailHeaders('Subject: hi\r\nX-Spam-Level: ***\r\n\r\nbody\r\n')).toBe('body\r\n');
  });

  it('returns an empty body for a message that is all headers', () => {
    expect(stripMailHeaders('From: a@b.org\nTo: c@d.org')).toBe('');
  });

  it('does not take prose, a leading continuation line or an unknown-field block for headers', () => {
    expect(stripMailHeaders('Dear friend: hello\n\nbody')).toBeUndefined();
    expect(stripMailHeaders(' Subject: indented\n\nbody')).toBeUndefined();
    expect(stripMailHeaders('Title: A\nAuthor: B\n\nbody')).toBeUndefined();
    expect(stripMailHeaders('\nSubject: after a blank line')).toBeUndefined();
  });
});
