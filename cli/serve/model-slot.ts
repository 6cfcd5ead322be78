import type { ModelVersion } from '../../activities/registry/model-registry';
import type { ServedModel } from './engine';

// The model a server answers with, following a registry reference. `name` or `name@champion`
// (and `@previous`) is looked up again every poll; when it names another version, that version is
// loaded beside the one serving, then swapped in at once: requests already running finish on the
// old model, which is disposed when the last of them ends. No request is refused or fails for a
// swap. A version that fails to load is logged and tried again later, while the old one serves.
// A broken model (its process died) is loaded again at the next poll.

export interface Served {
  model: ServedModel;
  version: ModelVersion;
  loadedAt: Date;
  loadSeconds: number;
}

interface Entry extends Served {
  leases: number;
  retired: boolean;
}

export interface SlotEvents {
  loaded?: (served: Served, previous: Served | undefined) => void;
  loadFailed?: (version: ModelVersion | undefined, err: unknown) => void;
}

/** Longest wait before a version that failed to load is tried again. */
const MAX_RETRY_MS = 5 * 60_000;

export class ModelSlot {
  private current?: Entry;
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private failures = new Map<string, { count: number; until: number }>();
  private closed = false;
  /** Versions loaded (the first and every swap) and loads that failed, since start. */
  readonly counts = { loads: 0, loadFailures: 0 };

  constructor(
    /** What the reference names now (the registry: `resolveReference(store, reference)`). */
    private readonly resolve: () => Promise<ModelVersion>,
    readonly reference: string,
    private readonly load: (version: ModelVersion) => Promise<ServedModel>,
    private readonly events: SlotEvents = {},
  ) {}

  /** Whether the reference moves with the aliases (a numbered one does not). */
  get follows(): boolean {
    return !/@v?\d+$/.test(this.reference);
  }

  /** The model serving now, if any. */
  get served(): Served | undefined {
    return this.current;
  }

  /** Loads the version the reference names now; throws what keeps it from serving. */
  async start(pollMs: number): Promise<Served> {
    await this.refresh(true);
    // A pinned version is looked up too: the same version comes back, but a broken model is reloaded.
    if (pollMs > 0) this.schedule(pollMs);
    return this.current!;
  }

  private schedule(pollMs: number): void {
    this.timer = setTimeout(() => {
      void this.refresh(false).finally(() => {
        if (!this.closed) this.schedule(pollMs);
      });
    }, pollMs);
    this.timer.unref();
  }

  /** Looks the reference up again and swaps in what it names now. One at a time. */
  refresh(strict = false): Promise<void> {
    this.refreshing ??= this.swapIfMoved(strict).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async swapIfMoved(strict: boolean): Promise<void> {
    let version: ModelVersion | undefined;
    try {
      version = await this.resolve();
      const current = this.current;
      if (current && current.version.version === version.version && !current.model.broken) return;
      const key = `${version.version}:${current?.model.broken ? 'reload' : ''}`;
      const failed = this.failures.get(key);
      if (!strict && failed && Date.now() < failed.until) return;
      const started = performance.now();
      let model: ServedModel;
      try {
        model = await this.load(version);
      } catch (err) {
        this.counts.loadFailures++;
        const count = (failed?.count ?? 0) + 1;
        this.failures.set(key, { count, until: Date.now() + Math.min(MAX_RETRY_MS, 5000 * 2 ** (count - 1)) });
        throw err;
      }
      this.failures.delete(key);
      if (this.closed) return void (await model.dispose());
      const next: Entry = { model, version, loadedAt: new Date(), loadSeconds: (performance.now() - started) / 1000, leases: 0, retired: false };
      this.current = next;
      this.counts.loads++;
      this.events.loaded?.(next, current);
      if (current) await this.retire(current);
    } catch (err) {
      if (strict) throw err;
      this.events.loadFailed?.(version, err);
    }
  }

  /** Runs `fn` on the model serving now; a swap meanwhile lets it finish on this one. */
  async use<T>(fn: (served: Served) => Promise<T>): Promise<T> {
    const entry = this.current;
    if (!entry) throw new Error('no model is loaded yet');
    entry.leases++;
    try {
      return await fn(entry);
    } finally {
      entry.leases--;
      if (entry.retired && entry.leases === 0) await entry.model.dispose();
    }
  }

  private async retire(entry: Entry): Promise<void> {
    entry.retired = true;
    if (entry.leases === 0) await entry.model.dispose();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.refreshing;
    if (this.current) await this.retire(this.current);
    this.current = undefined;
  }
}
