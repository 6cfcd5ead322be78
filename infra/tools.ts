import { spawn } from 'node:child_process';
import { access, mkdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

// The local servers are built from their Go modules at pinned versions, once per user, and never
// downloaded as prebuilt binaries (DESIGN, "Temporal"; "Storage").

/** A Go-built binary: the local servers, and kustomize for the deploy manifests' test. */
export interface GoTool {
  name: 'temporal' | 'minio' | 'kustomize';
  /** `go install` target, pinned. */
  module: string;
  version: string;
}

export const TOOLS: Record<GoTool['name'], GoTool> = {
  // v1.5.1 is the last tag of the Temporal CLI without a `replace` directive: later tags cannot be go-installed.
  temporal: { name: 'temporal', module: 'github.com/temporalio/cli/cmd/temporal', version: 'v1.5.1' },
  // MinIO publishes no semver tags; this pseudo-version is the 2026-02-12 main commit.
  minio: { name: 'minio', module: 'github.com/minio/minio', version: 'v0.0.0-20260212201848-7aac2a2c5b7c' },
  // Renders deploy/k8s (test/deploy). v5.8.3 needs a newer Go than 1.26; v5.8.2 builds with it.
  kustomize: { name: 'kustomize', module: 'sigs.k8s.io/kustomize/kustomize/v5', version: 'v5.8.2' },
};

/** Per-user cache the binaries are built into. Default `~/.cache/tempered/tools`; `TEMPERED_TOOLS_DIR` overrides. */
export function toolsDir(): string {
  return process.env.TEMPERED_TOOLS_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tempered', 'tools');
}

/** Where `tool`'s binary lives once built. */
export function toolBinary(tool: GoTool): string {
  return path.join(toolsDir(), `${tool.name}-${tool.version}`, tool.name);
}

/** Raised when a server binary cannot be built: names the command and what to do. */
export class ToolBuildError extends Error {
  override readonly name = 'ToolBuildError';
  constructor(
    readonly tool: string,
    message: string,
  ) {
    super(message);
  }
}

/** Returns the tool's binary, building it with `go install` first if it is not in the cache. */
export async function ensureTool(tool: GoTool, log: (line: string) => void = () => {}): Promise<string> {
  const binary = toolBinary(tool);
  if (await exists(binary)) return binary;
  const target = `${tool.module}@${tool.version}`;
  log(`building ${tool.name} ${tool.version} from its Go module (once per machine; several minutes)...`);
  await mkdir(path.dirname(binary), { recursive: true });
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('go', ['install', target], {
      env: { ...process.env, GOBIN: path.dirname(binary), CGO_ENABLED: process.env.CGO_ENABLED ?? '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new ToolBuildError(
          tool.name,
          err.code === 'ENOENT'
            ? `cannot build ${tool.name}: "go" is not on PATH. Install Go 1.24+ (e.g. apt-get install golang) or set TEMPORAL_ADDRESS / TEMPERED_STORE to use existing servers`
            : `cannot run "go install ${target}": ${err.message}`,
        ),
      ),
    );
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new ToolBuildError(tool.name, `"go install ${target}" exited with ${code}:\n${stderr.trim()}`)),
    );
  });
  log(`built ${tool.name} in ${Math.round((Date.now() - started) / 1000)} s: ${binary}`);
  return binary;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
