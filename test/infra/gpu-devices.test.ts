import { countListedGpus, detectGpuDevices, GpuDevicesError, parseGpuDevices } from '../../infra/gpu-devices';

describe('parseGpuDevices', () => {
  test('a count names devices 0..n-1', () => {
    expect(parseGpuDevices('4')).toEqual(['0', '1', '2', '3']);
    expect(parseGpuDevices(2)).toEqual(['0', '1']);
    expect(parseGpuDevices(' 1 ')).toEqual(['0']);
  });

  test('a list names device ids as CUDA_VISIBLE_DEVICES takes them; a trailing comma makes a one-device list', () => {
    expect(parseGpuDevices('0,2,5')).toEqual(['0', '2', '5']);
    expect(parseGpuDevices(' 3, 1 ')).toEqual(['3', '1']);
    expect(parseGpuDevices('5,')).toEqual(['5']);
    expect(parseGpuDevices('GPU-8f3a2c1e-0b1d-4c7e-9a55-0123456789ab,MIG-GPU-8f3a/1/0,')).toEqual(['GPU-8f3a2c1e-0b1d-4c7e-9a55-0123456789ab', 'MIG-GPU-8f3a/1/0']);
    expect(parseGpuDevices(['1', '2'])).toEqual(['1', '2']);
  });

  test('bad values say what is wrong and how to write it', () => {
    const cases: Array<[string, RegExp]> = [
      ['0', /TEMPERED_GPUS="0" is a count of 0: a gpu worker needs 1 to 256 devices; write a count \("4": devices 0..3\) or a comma-separated list/],
      ['all', /TEMPERED_GPUS="all" is neither a count nor a list/],
      ['0,,1', /has "", which is not a device index/],
      ['0,x', /has "x", which is not a device index or a GPU-\/MIG- UUID/],
      ['1,1', /names device 1 twice/],
      [',', /names no device/],
    ];
    for (const [value, message] of cases) {
      expect(() => parseGpuDevices(value)).toThrow(GpuDevicesError);
      expect(() => parseGpuDevices(value)).toThrow(message);
    }
  });
});

describe('detectGpuDevices', () => {
  const noSmi = () => undefined;
  const smi = 'GPU 0: NVIDIA H200 (UUID: GPU-aaa)\nGPU 1: NVIDIA H200 (UUID: GPU-bbb)\n  MIG 1g.18gb     Device  0: (UUID: MIG-ccc)\n';

  test('the option first, then TEMPERED_GPUS, then CUDA_VISIBLE_DEVICES, then nvidia-smi, then one device', () => {
    const env = { TEMPERED_GPUS: '0,2', CUDA_VISIBLE_DEVICES: '3,4,5' };
    expect(detectGpuDevices(3, { env, listGpus: () => smi })).toEqual({ devices: ['0', '1', '2'], source: 'option' });
    expect(detectGpuDevices(undefined, { env, listGpus: () => smi })).toEqual({ devices: ['0', '2'], source: 'TEMPERED_GPUS' });
    expect(detectGpuDevices(undefined, { env: { CUDA_VISIBLE_DEVICES: '3,4,5' }, listGpus: () => smi })).toEqual({ devices: ['3', '4', '5'], source: 'CUDA_VISIBLE_DEVICES' });
    expect(detectGpuDevices(undefined, { env: {}, listGpus: () => smi })).toEqual({ devices: ['0', '1'], source: 'nvidia-smi' });
    expect(detectGpuDevices(undefined, { env: {}, listGpus: noSmi })).toEqual({ devices: ['0'], source: 'default' });
  });

  test('CUDA_VISIBLE_DEVICES is always a list; empty or -1 (no GPU) does not count', () => {
    expect(detectGpuDevices(undefined, { env: { CUDA_VISIBLE_DEVICES: '3' }, listGpus: noSmi }).devices).toEqual(['3']);
    expect(detectGpuDevices(undefined, { env: { CUDA_VISIBLE_DEVICES: '' }, listGpus: noSmi }).source).toBe('default');
    expect(detectGpuDevices(undefined, { env: { CUDA_VISIBLE_DEVICES: '-1' }, listGpus: noSmi }).source).toBe('default');
    expect(() => detectGpuDevices(undefined, { env: { CUDA_VISIBLE_DEVICES: '0,0' }, listGpus: noSmi })).toThrow(/^CUDA_VISIBLE_DEVICES="0,0" names device 0 twice/);
  });

  test('a bad TEMPERED_GPUS is an error, not a silent default', () => {
    expect(() => detectGpuDevices(undefined, { env: { TEMPERED_GPUS: 'four' }, listGpus: noSmi })).toThrow(GpuDevicesError);
  });

  test('counts the GPUs of nvidia-smi -L, not their MIG instances', () => {
    expect(countListedGpus(smi)).toBe(2);
    expect(countListedGpus('')).toBe(0);
  });
});
