// `file://` backend: one directory on one machine. Used for single-machine runs and fast unit tests.
import { randomUUID } from 'node:crypto';
import { link, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { validateKey, validatePrefix } from './artifact-key';
import type { FileStoreConfig } from './config';
import { BaseArtifactStore } from './artifact-store';
import { ArtifactNotFoundError, ForeignArtifactError, StoreConfigError } from './errors';

/** Temp files sit beside their target (same filesystem, so rename is atomic) and are never listed. */
const TEMP_PREFIX = '.tempered-tmp-';

export class FileArtifactStore extends BaseArtifactStore {
  readonly root: string;
  /** Absolute directory holding the artifacts. */
  readonly dir: string;

  /** `dir` must be absolute; it is created on first write. */
  constructor(dir: string) {
    super();
    if (!path.isAbsolute(dir)) {
      throw new StoreConfigError(`file store directory "${dir}" must be an absolute path`, 'TEMPERED_STORE');
    }
    this.dir = path.resolve(dir);
    this.root = pathToFileURL(this.dir).href.replace(/\/$/, '');
  }

  get config(): FileStoreConfig {
    return { kind: 'file', dir: this.dir };
  }

  uriFor(key: string): string {
    return pathToFileURL(this.pathFor(key)).href;
  }

  keyFromUri(uri: string): string {
    let file: string;
    try {
      file = fileURLToPath(uri);
    } catch {
      throw new ForeignArtifactError(uri, this.root);
    }
    const relative = path.relative(this.dir, file);
    if (relative === '' || relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
      throw new ForeignArtifactError(uri, this.root);
    }
    return validateKey(relative.split(path.sep).join('/'));
  }

  async stat(key: string): Promise<{ bytes: number } | undefined> {
    try {
      const info = await stat(this.pathFor(key));
      return info.isFile() ? { bytes: info.size } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    // Start at the deepest directory the prefix names, instead of walking the whole store.
    const start = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const keys: string[] = [];
    const walk = async (keyDir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(path.join(this.dir, keyDir), { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const entry of entries) {
        if (entry.name.startsWith(TEMP_PREFIX)) continue;
        const key = keyDir === '' ? entry.name : `${keyDir}/${entry.name}`;
        if (entry.isFile() && key.startsWith(prefix)) keys.push(key);
        else if (entry.isDirectory() && (key.startsWith(prefix) || prefix.startsWith(`${key}/`))) await walk(key);
      }
    };
    await walk(start);
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathFor(key), { force: true });
  }

  protected async writeObject(key: string, body: Readable | Buffer): Promise<void> {
    // rename() replaces an existing object atomically.
    await this.publish(key, body, (temp, target) => rename(temp, target));
  }

  protected async createObject(key: string, body: Buffer): Promise<boolean> {
    // link() fails if the name exists, unlike rename(): the complete file appears, or nothing.
    try {
      await this.publish(key, body, (temp, target) => link(temp, target));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  }

  /** Writes `body` to a synced temp file beside `key`'s path, then gives it its name with `name`. */
  private async publish(key: string, body: Readable | Buffer, name: (temp: string, target: string) => Promise<void>): Promise<void> {
    const target = this.pathFor(key);
    await mkdir(path.dirname(target), { recursive: true });
    const temp = path.join(path.dirname(target), `${TEMP_PREFIX}${randomUUID()}`);
    try {
      const file = await open(temp, 'wx');
      try {
        // Plain awaited writes: backpressure for free, and the handle stays ours to sync and close.
        for await (const chunk of Buffer.isBuffer(body) ? [body] : body) await file.writeFile(chunk as Buffer);
        // Flush before naming it so a crash cannot leave a committed name over missing data.
        await file.sync();
      } finally {
        await file.close();
      }
      await name(temp, target);
    } finally {
      await rm(temp, { force: true }); // after a rename there is nothing left to remove
    }
  }

  protected async openObject(key: string): Promise<Readable> {
    try {
      const file = await open(this.pathFor(key), 'r');
      return file.createReadStream();
    } catch (err) {
      if (isMissing(err)) throw new ArtifactNotFoundError(this.uriFor(key));
      throw err;
    }
  }

  private pathFor(key: string): string {
    return path.join(this.dir, validateKey(key));
  }
}

/** ENOTDIR too: a key below a path that is a file (`a/b` when `a` is an artifact) does not exist. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
