import * as nodeModule from 'node:module';

// Runs before any other module of the CLI loads. Node's on-disk compile cache (Node >= 22.1) lets a
// second start skip compiling the same JavaScript again — most of what `--help` and `validate`
// cost. On an unsupported Node, one line says so instead of a library's multi-line warning later.

/** The oldest Node the declared `engines` range admits (package.json). */
export const MINIMUM_NODE = [22, 12] as const;

(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < MINIMUM_NODE[0] || (major === MINIMUM_NODE[0] && minor < MINIMUM_NODE[1])) {
  process.stderr.write(
    `warning: Tempered supports Node ${MINIMUM_NODE.join('.')} or newer (22 LTS, 24 LTS, 26); this is ${process.versions.node}. ` +
      'Run it through npm ("npx tempered …", "npm run …"), which uses the Node that "npm ci" installed, or install a supported Node\n',
  );
}
