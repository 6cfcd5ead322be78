import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

// A real headless browser for tests that must see a page as a user would: Debian's chromium,
// installed from Debian's packages on first use (root only), driven through its command line.

export const CHROMIUM = '/usr/bin/chromium';

const INSTALL_HINT = `run as root: apt-get update && apt-get install -y chromium`;

/** Makes sure `/usr/bin/chromium` exists, installing Debian's package when running as root. */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  if (process.getuid?.() !== 0) {
    throw new Error(`${CHROMIUM} is missing and this test installs it only when running as root; ${INSTALL_HINT}`);
  }
  const apt = (args: string[]) => execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    apt(['update']);
    // A font, so that chart text renders on a machine that has none yet.
    apt(['install', '-y', 'chromium', 'fonts-dejavu-core']);
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? String(error);
    throw new Error(`installing chromium failed; ${INSTALL_HINT}\n${stderr}`);
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is still missing`);
  return CHROMIUM;
}

/** Flags that keep a headless run offline, quiet and independent of any profile. */
const HEADLESS_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface ChromiumResult {
  stdout: string;
  stderr: string;
}

/** Runs chromium headless once with a fresh profile, which is removed afterwards. */
export async function runChromium(args: string[], timeoutMs = 30_000): Promise<ChromiumResult> {
  const profile = await mkdtemp(path.join(tmpdir(), 'tempered-chromium-'));
  try {
    return await new Promise<ChromiumResult>((resolve, reject) => {
      execFile(
        ensureChromium(),
        [...HEADLESS_FLAGS, `--user-data-dir=${profile}`, ...args],
        { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`chromium ${args.join(' ')} failed: ${error.message}\n${stderr}`));
          else resolve({ stdout, stderr });
        },
      );
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The DOM of a page after it loaded, serialized by the browser. */
export async function dumpDom(url: string): Promise<string> {
  return (await runChromium(['--dump-dom', url])).stdout;
}

/** A PNG screenshot of the page's first `height` pixels at a `width` wide window. */
export async function screenshot(url: string, pngPath: string, width: number, height: number): Promise<void> {
  await runChromium([`--screenshot=${pngPath}`, `--window-size=${width},${height}`, '--hide-scrollbars', url]);
  if (!existsSync(pngPath)) throw new Error(`chromium did not write the screenshot ${pngPath}`);
}
