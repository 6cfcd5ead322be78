import { CommandSettingError, isolationPrefix, parseInitReport, parseIsolationMode, probeIsolation } from '../../../activities/command';
import { warnUnisolated } from '../../../activities/command/isolation';

describe('isolationPrefix', () => {
  test('root sheds its capabilities through setpriv; another user loses them at exec', () => {
    expect(isolationPrefix(0, '/usr/bin/node')).toEqual([
      'unshare', '--user', '--map-root-user', '--pid', '--fork', '--mount-proc', '--kill-child',
      'setpriv', '--bounding-set=-all', '--inh-caps=-all', '--ambient-caps=-all',
      '/usr/bin/node', '-e', expect.any(String), '--',
    ]);
    expect(isolationPrefix(1000, '/usr/bin/node')).toEqual([
      'unshare', '--user', '--map-current-user', '--pid', '--fork', '--mount-proc', '--kill-child',
      '/usr/bin/node', '-e', expect.any(String), '--',
    ]);
  });
});

describe('parseInitReport', () => {
  test.each([
    ['{"exitCode":0,"signal":null}', { exitCode: 0, signal: null }],
    ['{"exitCode":null,"signal":"SIGKILL"}', { exitCode: null, signal: 'SIGKILL' }],
    ['{"spawnError":"ENOENT"}', { spawnError: 'ENOENT' }],
    ['', undefined],
    ['{"exitCode":"0"}', undefined],
  ])('%j', (text, expected) => expect(parseInitReport(text)).toEqual(expected));
});

describe('parseIsolationMode', () => {
  test('auto when unset, else the value; anything else is refused, naming the setting', () => {
    expect(parseIsolationMode(undefined)).toBe('auto');
    expect(parseIsolationMode(' OFF ')).toBe('off');
    expect(parseIsolationMode('required')).toBe('required');
    expect(() => parseIsolationMode('yes')).toThrow(CommandSettingError);
    expect(() => parseIsolationMode('yes')).toThrow(/TEMPERED_COMMAND_ISOLATION="yes".*auto \(the default\), required or off/);
  });
});

describe('probeIsolation', () => {
  test('without unshare on PATH, programs run unisolated, saying why', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(await probeIsolation()).toEqual({ kind: 'none', reason: expect.stringMatching(/unshare \(util-linux\) is not installed|not Linux/) });
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('warnUnisolated', () => {
  test('warns once per process, saying why and what still holds', () => {
    const warnings: string[] = [];
    warnUnisolated('unshare (util-linux) is not installed', (m) => warnings.push(m));
    warnUnisolated('again', (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/without a PID namespace \(unshare \(util-linux\) is not installed\).*\/proc\/<pid>\/environ.*still redacted.*TEMPERED_COMMAND_ISOLATION=off/);
  });
});
