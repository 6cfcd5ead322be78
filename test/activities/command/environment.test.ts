import { childEnvironment, expandCommand, parsePassEnv, ReservedNameError } from '../../../activities/command';

const tempered = {
  TEMPERED_INPUTS: '/w/inputs',
  TEMPERED_OUTPUTS: '/w/outputs',
  TEMPERED_RUN_ID: 'run-1',
  TEMPERED_STAGE: 'train',
  TEMPERED_ATTEMPT: '2',
  TEMPERED_SEED: '7',
};

describe('expandCommand', () => {
  test('replaces {inputs} and {outputs} anywhere in an argument, and nothing else', () => {
    expect(
      expandCommand(['python3', 'train.py', '--data={inputs}/split/train.jsonl', '{outputs}', '{inputs}{outputs}', "-c", "print(f'{x}')", '{seed}'], {
        inputs: '/w/inputs',
        outputs: '/w/outputs',
      }),
    ).toEqual(['python3', 'train.py', '--data=/w/inputs/split/train.jsonl', '/w/outputs', '/w/inputs/w/outputs', '-c', "print(f'{x}')", '{seed}']);
  });
});

describe('childEnvironment', () => {
  const parent = {
    PATH: '/usr/bin',
    HOME: '/home/w',
    CUDA_VISIBLE_DEVICES: '0',
    AWS_ACCESS_KEY_ID: 'AKIA',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
    AWS_PROFILE: 'ml',
    TEMPERED_STORE: 's3://bucket',
    TEMPERED_S3_ENDPOINT: 'http://127.0.0.1:9000',
    TEMPORAL_API_KEY: 'key',
    TEMPORAL_TLS_KEY: '/etc/tls.key',
  };

  test("inherits the worker's environment minus its store and Temporal settings", () => {
    const env = childEnvironment({ parent, spec: {}, passEnv: [], tempered });
    expect(env).toMatchObject({ PATH: '/usr/bin', HOME: '/home/w', CUDA_VISIBLE_DEVICES: '0' });
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL_S3', 'AWS_PROFILE', 'TEMPERED_STORE', 'TEMPERED_S3_ENDPOINT', 'TEMPORAL_API_KEY', 'TEMPORAL_TLS_KEY']) {
      expect(env).not.toHaveProperty(name);
    }
  });

  test('sets the TEMPERED_* variables and unbuffered Python output', () => {
    const env = childEnvironment({ parent, spec: {}, passEnv: [], tempered });
    expect(env).toMatchObject({ ...tempered, PYTHONUNBUFFERED: '1' });
  });

  test("the spec's env overrides inherited values and defaults", () => {
    const env = childEnvironment({ parent, spec: { CUDA_VISIBLE_DEVICES: '1', PYTHONUNBUFFERED: '0', AWS_REGION: 'eu-west-1' }, passEnv: [], tempered });
    expect(env).toMatchObject({ CUDA_VISIBLE_DEVICES: '1', PYTHONUNBUFFERED: '0', AWS_REGION: 'eu-west-1' });
  });

  test('variables the worker operator passes are kept', () => {
    const env = childEnvironment({ parent, spec: {}, passEnv: ['AWS_PROFILE'], tempered });
    expect(env.AWS_PROFILE).toBe('ml');
    expect(env).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
  });

  test('a spec cannot override a TEMPERED_* variable', () => {
    expect(() => childEnvironment({ parent, spec: { TEMPERED_OUTPUTS: '/elsewhere' }, passEnv: [], tempered })).toThrow(ReservedNameError);
    expect(() => childEnvironment({ parent, spec: { TEMPERED_OUTPUTS: '/elsewhere' }, passEnv: [], tempered })).toThrow(/env "TEMPERED_OUTPUTS"/);
  });

  test("on a gpu worker the program sees only the attempt's devices, and a spec cannot widen them", () => {
    expect(childEnvironment({ parent, spec: {}, passEnv: [], tempered, devices: ['2', '5'] }).CUDA_VISIBLE_DEVICES).toBe('2,5');
    expect(() => childEnvironment({ parent, spec: { CUDA_VISIBLE_DEVICES: '0,1,2' }, passEnv: [], tempered, devices: ['2'] })).toThrow(
      /env "CUDA_VISIBLE_DEVICES" is set by the gpu worker to the 1 device\(s\) this attempt holds \(resources.gpu\); remove it/,
    );
  });
});

test('parsePassEnv reads a comma-separated list', () => {
  expect(parsePassEnv(' AWS_PROFILE, AWS_REGION ,,')).toEqual(['AWS_PROFILE', 'AWS_REGION']);
  expect(parsePassEnv(undefined)).toEqual([]);
});
