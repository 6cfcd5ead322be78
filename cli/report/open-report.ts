import { spawn } from 'node:child_process';

/** The platform's "open with the default application" command. */
export function openCommand(file: string, platform: NodeJS.Platform = process.platform): [string, string[]] {
  if (platform === 'darwin') return ['open', [file]];
  // The empty argument is start's window title (quoted as "" on the command line), so a quoted path is not taken for it.
  if (platform === 'win32') return ['cmd', ['/c', 'start', '', file]];
  return ['xdg-open', [file]];
}

/** Opens the report in the default browser (for `--open`). Resolves once the opener started; rejects if it cannot. */
export function openReport(htmlPath: string): Promise<void> {
  const [command, args] = openCommand(htmlPath);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { detached: true, stdio: 'ignore' });
    child.once('error', (error) => reject(new Error(`cannot open ${htmlPath} with ${command}: ${error.message}; open it in a browser yourself`)));
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}
