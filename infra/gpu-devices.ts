// Which GPUs a gpu worker hands out as slots (activities/gpu-slots.ts).
import { spawnSync } from 'node:child_process';

/** The worker setting: a count (`4`: devices 0..3) or a list of device ids (`0,2,5`; one device: `5,`). */
export const GPUS_VARIABLE = 'TEMPERED_GPUS';

/** The most devices a count may name; a list may name any. */
const MAX_GPU_COUNT = 256;

/** A bad TEMPERED_GPUS / `gpus` value: the worker does not start. */
export class GpuDevicesError extends Error {
  override readonly name = 'GpuDevicesError';

  constructor(
    readonly value: string,
    readonly problem: string,
    readonly setting: string = GPUS_VARIABLE,
  ) {
    super(`${setting}=${JSON.stringify(value)} ${problem}; write a count ("4": devices 0..3) or a comma-separated list of device ids ("0,2,5"; one device: "5,")`);
  }
}

/**
 * Device ids from a count or a list. A bare integer is a count (`4` → `0,1,2,3`); anything with a
 * comma is a list of the ids `CUDA_VISIBLE_DEVICES` takes (indices, `GPU-<uuid>`, `MIG-<uuid>`).
 */
export function parseGpuDevices(value: string | number | readonly string[], setting: string = GPUS_VARIABLE): string[] {
  if (Array.isArray(value)) return checkList(value.join(','), value as string[], setting);
  const text = String(value).trim();
  if (/^\d+$/.test(text)) {
    const count = Number(text);
    if (count < 1 || count > MAX_GPU_COUNT) throw new GpuDevicesError(text, `is a count of ${count}: a gpu worker needs 1 to ${MAX_GPU_COUNT} devices`, setting);
    return Array.from({ length: count }, (_, i) => String(i));
  }
  if (!text.includes(',')) throw new GpuDevicesError(text, 'is neither a count nor a list', setting);
  return parseDeviceList(text, setting);
}

/** `0,2,5` as ids; one trailing comma is allowed (it marks a one-device list in TEMPERED_GPUS: "5,"). */
function parseDeviceList(text: string, setting: string): string[] {
  return checkList(text, text.replace(/,\s*$/, '').split(',').map((id) => id.trim()), setting);
}

function checkList(value: string, ids: string[], setting: string): string[] {
  if (ids.length === 0 || ids.every((id) => id === '')) throw new GpuDevicesError(value, 'names no device', setting);
  const bad = ids.find((id) => !/^(\d+|(GPU|MIG)-[A-Za-z0-9/-]+)$/.test(id));
  if (bad !== undefined) throw new GpuDevicesError(value, `has ${JSON.stringify(bad)}, which is not a device index or a GPU-/MIG- UUID`, setting);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated !== undefined) throw new GpuDevicesError(value, `names device ${repeated} twice`, setting);
  return ids;
}

/** Where a worker's device list came from, for its start-up line. */
export interface GpuDevices {
  devices: string[];
  source: 'option' | typeof GPUS_VARIABLE | 'CUDA_VISIBLE_DEVICES' | 'nvidia-smi' | 'default';
}

/** How `detectGpuDevices` looks; tests replace the probe. */
export interface DetectOptions {
  env?: NodeJS.ProcessEnv;
  /** Lists the node's GPUs as `nvidia-smi -L` does; undefined when it cannot. Default: runs `nvidia-smi -L`. */
  listGpus?: () => string | undefined;
}

/**
 * The gpu worker's devices, first of: the `gpus` option; TEMPERED_GPUS; CUDA_VISIBLE_DEVICES when
 * set and not empty (the worker was confined to those: its stages get subsets of them); the GPUs
 * `nvidia-smi -L` lists (when it is on PATH and answers within 5 s); else one device, `0`.
 */
export function detectGpuDevices(option?: number | string | readonly string[], options: DetectOptions = {}): GpuDevices {
  const env = options.env ?? process.env;
  if (option !== undefined) return { devices: parseGpuDevices(option), source: 'option' };
  const setting = env[GPUS_VARIABLE]?.trim();
  if (setting) return { devices: parseGpuDevices(setting), source: GPUS_VARIABLE };
  const visible = env.CUDA_VISIBLE_DEVICES?.trim();
  // "-1" (or any negative index) hides every GPU: nothing to hand out, so it is not a list to use.
  // It is always a list: "3" is device 3, not three devices.
  if (visible && !/^-\d/.test(visible)) return { devices: parseDeviceList(visible, 'CUDA_VISIBLE_DEVICES'), source: 'CUDA_VISIBLE_DEVICES' };
  const listed = (options.listGpus ?? nvidiaSmiList)();
  const count = listed ? countListedGpus(listed) : 0;
  if (count > 0) return { devices: parseGpuDevices(count), source: 'nvidia-smi' };
  return { devices: ['0'], source: 'default' };
}

/** GPUs in `nvidia-smi -L` output: its `GPU <i>: <name> (UUID: …)` lines (MIG instances are indented under them). */
export function countListedGpus(output: string): number {
  return output.split('\n').filter((line) => /^GPU \d+:/.test(line)).length;
}

function nvidiaSmiList(): string | undefined {
  const result = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
  return result.status === 0 ? result.stdout : undefined;
}
