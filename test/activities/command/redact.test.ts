import { looksSecret, MIN_SECRET_CHARS, redactSecrets, secretValues, StreamRedactor } from '../../../activities/command';

describe('looksSecret', () => {
  test.each(['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'TEMPORAL_API_KEY', 'HF_TOKEN', 'DB_PASSWORD', 'pg_passwd', 'GITHUB_PRIVATE_KEY', 'MY_CREDENTIALS', 'WANDB_API_KEY'])(
    '%s holds a secret',
    (name) => expect(looksSecret(name)).toBe(true),
  );
  test.each(['PATH', 'HOME', 'AWS_REGION', 'TOKENIZERS_PARALLELISM', 'GPG_KEY', 'AWS_ACCESS_KEY_ID', 'TEMPORAL_TLS_KEY', 'TEMPORAL_ADDRESS'])('%s does not', (name) =>
    expect(looksSecret(name)).toBe(false),
  );
});

describe('secretValues', () => {
  test('takes the values of secret-looking variables, long enough to be secrets, longest first', () => {
    const values = secretValues({ AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG', HF_TOKEN: 'hf_abcdefgh', TOKEN_TTL: '3600', PATH: '/usr/bin:/bin', AWS_REGION: 'eu-west-1' });
    expect(values).toContain('wJalrXUtnFEMI/K7MDENG');
    expect(values).toContain('hf_abcdefgh');
    expect(values).toContain('wJalrXUtnFEMI%2FK7MDENG'); // as it appears in a URL
    expect(values).not.toContain('3600'); // shorter than MIN_SECRET_CHARS
    expect(values).not.toContain('/usr/bin:/bin');
    expect(values.every((v) => v.length >= MIN_SECRET_CHARS)).toBe(true);
    expect([...values].sort((a, b) => b.length - a.length)).toEqual(values);
  });

  test("redacts the TLS key file's content line by line, the store's credentials, and multi-line values", () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
    const values = secretValues(
      { TEMPORAL_TLS_KEY: '/etc/tempered/client.key', NPM_TOKEN: 'line-one-secret\nline-two-secret' },
      { extra: ['minio-secret-123', undefined], readFile: (file) => (file === '/etc/tempered/client.key' ? pem : '') },
    );
    expect(values).toEqual(expect.arrayContaining(['MIIEvQIBADANBgkqhkiG9w0BAQEFAASC', 'BKcwggSjAgEAAoIBAQC7', 'minio-secret-123', 'line-one-secret', 'line-two-secret']));
    expect(values).not.toContain('-----BEGIN PRIVATE KEY-----');
    expect(values).not.toContain('/etc/tempered/client.key'); // a path, not key material
  });

  test('an unreadable key file is skipped', () => {
    expect(secretValues({ TEMPORAL_TLS_KEY: '/no/such/file' })).toEqual([]);
  });
});

describe('redactSecrets', () => {
  test('replaces every occurrence of every secret, overlapping ones as one', () => {
    expect(redactSecrets('key=s3cr3t-value and again s3cr3t-value.', ['s3cr3t-value'])).toBe('key=[redacted] and again [redacted].');
    expect(redactSecrets('xxABCDEFGHIJyy', ['ABCDEFGH', 'EFGHIJ'])).toBe('xx[redacted]yy');
    expect(redactSecrets('nothing here', ['s3cr3t-value'])).toBe('nothing here');
    expect(redactSecrets('s3cr3t-value', [])).toBe('s3cr3t-value');
  });
});

describe('StreamRedactor', () => {
  const secret = 'AKIAverySecretValue42';

  /** Feeds `text` cut at `cuts` and returns what came out, with how much was out after each push. */
  function feed(text: string, cuts: number[], secrets = [secret]) {
    const redactor = new StreamRedactor(secrets);
    let out = '';
    let from = 0;
    for (const cut of [...cuts, text.length]) {
      out += redactor.push(text.slice(from, cut));
      from = cut;
    }
    return out + redactor.end();
  }

  test('catches a secret split across chunks at every position', () => {
    const text = `before ${secret} after\n`;
    for (let cut = 1; cut < text.length; cut++) expect(feed(text, [cut])).toBe('before [redacted] after\n');
    expect(feed(text, Array.from({ length: text.length - 1 }, (_, i) => i + 1))).toBe('before [redacted] after\n'); // one character a chunk
  });

  test('holds back only what could start a secret: complete lines pass at once', () => {
    const redactor = new StreamRedactor([secret]);
    expect(redactor.push('{"tempered":"progress","step":1}\n')).toBe('{"tempered":"progress","step":1}\n');
    expect(redactor.push('loss 0.5 AKIAvery')).toBe('loss 0.5 ');
    expect(redactor.push('Secret')).toBe('');
    expect(redactor.push('Value42 done')).toBe('[redacted] done');
    expect(redactor.push(' AKIA')).toBe(' ');
    expect(redactor.end()).toBe('AKIA'); // the stream ended: not a secret after all
  });

  test('a prefix of a secret that turns out not to be one is released unchanged', () => {
    expect(feed('AKIAvery AKIAverySecretValue4', [12])).toBe('AKIAvery AKIAverySecretValue4');
  });

  test('a secret that overlaps itself across a chunk boundary is redacted whole', () => {
    expect(feed('xx abcabcabc yy', [7, 9], ['abcabc'])).toBe('xx [redacted] yy');
  });

  test('with no secrets, text passes unchanged', () => {
    expect(feed('anything at all', [3, 5], [])).toBe('anything at all');
  });
});
