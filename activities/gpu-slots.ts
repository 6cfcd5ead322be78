// A gpu worker's devices as slots (ARCHITECTURE.md, invariant 7). Each stage attempt on the `gpu`
// queue takes `resources.gpu` devices before it runs and gives them back however it ends; its
// programs see only those (`CUDA_VISIBLE_DEVICES`).
//
// Why here and not in a Temporal slot supplier: the worker's tuner reserves a task slot before it
// polls, without knowing which task (and so how many GPUs) it will get; only the activity knows.
//
// Two rules keep it live:
// - all or nothing: an attempt takes its N devices at once, never holding some while it waits for
//   more, so attempts cannot wait on each other in a cycle;
// - first come, first served: the attempt at the head of the line is served before later ones,
//   even when a later one would fit now, so a stream of 1-GPU stages cannot starve a 4-GPU one.
// Holders never wait on anything in here, so the head of the line always gets its devices once
// enough holders finish.

/** Devices an attempt holds; `release()` gives them back (a second call does nothing). */
export interface GpuLease {
  /** Device ids as `CUDA_VISIBLE_DEVICES` names them, in the worker's order. */
  readonly devices: readonly string[];
  release(): void;
}

/** How `acquire` waits. */
export interface AcquireOptions {
  /** Aborting it leaves the line; `acquire` rejects with the signal's reason. Default none. */
  signal?: AbortSignal;
  /** Called when the attempt has to wait, and again whenever the number of free devices changes while it waits. */
  onWait?(wait: { wanted: number; free: number; total: number }): void;
}

/** The failure type of `NotEnoughGpusError` in Temporal (what `tempered status` looks for). */
export const NOT_ENOUGH_GPUS = 'NotEnoughGpusError';

/** A stage asks for more GPUs than this worker has: retryable, so that a bigger worker can take it. */
export class NotEnoughGpusError extends Error {
  override readonly name = NOT_ENOUGH_GPUS;
  readonly nonRetryable = false;

  constructor(
    readonly wanted: number,
    readonly devices: readonly string[],
  ) {
    super(
      `asks for ${wanted} GPUs (resources.gpu: ${wanted}) but this worker has ${devices.length} (devices ${devices.join(',')}); ` +
        `the attempt is retried so that a gpu worker with at least ${wanted} GPUs can take it: start one ("TEMPERED_GPUS=<count or ids> tempered worker --queue gpu" on such a node), or lower resources.gpu`,
    );
  }
}

interface Waiter {
  wanted: number;
  grant(devices: string[]): void;
  notify(): void;
}

/** A worker's GPU devices, handed out in whole requests, first come first served. */
export class GpuSlots {
  readonly devices: readonly string[];
  private readonly free: Set<string>;
  private readonly line: Waiter[] = [];

  constructor(devices: readonly string[]) {
    if (devices.length === 0) throw new Error('a gpu worker needs at least one device');
    if (new Set(devices).size !== devices.length) throw new Error(`GPU device ids repeat: ${devices.join(',')}`);
    this.devices = [...devices];
    this.free = new Set(devices);
  }

  /** Devices no attempt holds now. */
  get freeCount(): number {
    return this.free.size;
  }

  /** Attempts waiting in line. */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * Takes `wanted` devices (the lowest free in the worker's order), waiting in line until they are
   * free. Throws `NotEnoughGpusError` at once when the worker has fewer than `wanted` in all.
   */
  acquire(wanted: number, options: AcquireOptions = {}): Promise<GpuLease> {
    if (!Number.isInteger(wanted) || wanted < 1) return Promise.reject(new RangeError(`GPUs wanted must be a positive integer, found ${wanted}`));
    if (wanted > this.devices.length) return Promise.reject(new NotEnoughGpusError(wanted, this.devices));
    const { signal, onWait } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.line.length === 0 && wanted <= this.free.size) return Promise.resolve(this.lease(this.take(wanted)));

    return new Promise<GpuLease>((resolve, reject) => {
      let lastFree = -1;
      const waiter: Waiter = {
        wanted,
        grant: (devices) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.lease(devices));
        },
        notify: () => {
          if (this.free.size === lastFree) return;
          lastFree = this.free.size;
          onWait?.({ wanted, free: lastFree, total: this.devices.length });
        },
      };
      const onAbort = () => {
        const at = this.line.indexOf(waiter);
        if (at >= 0) this.line.splice(at, 1);
        reject(signal!.reason);
        // Leaving the head of the line may let the next one in.
        this.serve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.line.push(waiter);
      waiter.notify();
    });
  }

  /** Runs `fn` holding `wanted` devices and releases them however `fn` ends. */
  async withDevices<T>(wanted: number, options: AcquireOptions, fn: (devices: readonly string[]) => Promise<T>): Promise<T> {
    const lease = await this.acquire(wanted, options);
    try {
      return await fn(lease.devices);
    } finally {
      lease.release();
    }
  }

  private take(wanted: number): string[] {
    const taken = this.devices.filter((d) => this.free.has(d)).slice(0, wanted);
    for (const d of taken) this.free.delete(d);
    return taken;
  }

  private lease(devices: string[]): GpuLease {
    let held = true;
    return {
      devices,
      release: () => {
        if (!held) return;
        held = false;
        for (const d of devices) this.free.add(d);
        this.serve();
      },
    };
  }

  /** Grants the head of the line while it fits; tells the rest how many are free. */
  private serve(): void {
    while (this.line.length > 0 && this.line[0].wanted <= this.free.size) {
      const head = this.line.shift()!;
      head.grant(this.take(head.wanted));
    }
    for (const waiter of this.line) waiter.notify();
  }
}

/** The environment variables that confine a stage's processes to its devices; none without devices. */
export function deviceEnvironment(devices: readonly string[] | undefined): { CUDA_VISIBLE_DEVICES?: string } {
  return devices ? { CUDA_VISIBLE_DEVICES: devices.join(',') } : {};
}
