import { describeStore, storeConfigFromEnv } from '../../../activities/store/config';
import { StoreConfigError } from '../../../activities/store/errors';
import { createStore } from '../../../activities/store';
import { FileArtifactStore } from '../../../activities/store/file-store';
import { S3ArtifactStore } from '../../../activities/store/s3-store';

const secrets = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEKEYID', AWS_SECRET_ACCESS_KEY: 'super-secret-value' };

describe('storeConfigFromEnv', () => {
  it('defaults to a file store under the working directory', () => {
    expect(storeConfigFromEnv({}, '/work/x')).toEqual({ kind: 'file', dir: '/work/x/.tempered/artifacts' });
  });

  it('reads file URLs', () => {
    expect(storeConfigFromEnv({ TEMPERED_STORE: 'file:///var/lib/tempered' })).toEqual({ kind: 'file', dir: '/var/lib/tempered' });
  });

  it('reads S3 URLs with an endpoint, region and prefix, without credentials', () => {
    const env = { ...secrets, TEMPERED_STORE: 's3://artifacts/team-a', TEMPERED_S3_ENDPOINT: 'http://127.0.0.1:9000/', AWS_REGION: 'eu-west-1' };
    const config = storeConfigFromEnv(env);
    expect(config).toEqual({
      kind: 's3',
      bucket: 'artifacts',
      prefix: 'team-a/',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
    });
    const logged = JSON.stringify(config) + describeStore(config);
    expect(logged).not.toContain(secrets.AWS_ACCESS_KEY_ID);
    expect(logged).not.toContain(secrets.AWS_SECRET_ACCESS_KEY);
    expect(describeStore(config)).toBe('s3://artifacts/team-a via http://127.0.0.1:9000 (eu-west-1)');
  });

  it('defaults to AWS S3 in us-east-1, and prefers TEMPERED_S3_ENDPOINT over the AWS variables', () => {
    expect(storeConfigFromEnv({ TEMPERED_STORE: 's3://artifacts' })).toEqual({
      kind: 's3',
      bucket: 'artifacts',
      prefix: '',
      region: 'us-east-1',
      endpoint: undefined,
      forcePathStyle: false,
    });
    const env = { TEMPERED_STORE: 's3://b1b', AWS_ENDPOINT_URL: 'http://generic:1', AWS_ENDPOINT_URL_S3: 'http://s3-specific:2' };
    expect(storeConfigFromEnv(env)).toMatchObject({ endpoint: 'http://s3-specific:2' });
    expect(storeConfigFromEnv({ ...env, TEMPERED_S3_ENDPOINT: 'https://minio:3' })).toMatchObject({ endpoint: 'https://minio:3' });
  });

  it.each([
    [{ TEMPERED_STORE: 'gs://bucket' }, 'TEMPERED_STORE', 'gs://bucket'],
    [{ TEMPERED_STORE: 'file://relative/dir' }, 'TEMPERED_STORE', 'file://relative/dir'],
    [{ TEMPERED_STORE: 's3://' }, 'TEMPERED_STORE', 's3://'],
    [{ TEMPERED_STORE: 's3://b1b', TEMPERED_S3_ENDPOINT: 'not a url' }, 'TEMPERED_S3_ENDPOINT', 'not a url'],
    [{ TEMPERED_STORE: 's3://b1b', AWS_ENDPOINT_URL: 'ftp://host' }, 'AWS_ENDPOINT_URL', 'ftp://host'],
  ])('rejects %j naming the setting', (env, setting, value) => {
    const err = (() => {
      try {
        return storeConfigFromEnv(env);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(StoreConfigError);
    expect(err).toMatchObject({ setting });
    expect((err as Error).message).toContain(value);
  });

  it('never quotes an endpoint that embeds credentials', () => {
    for (const endpoint of ['http://user:hunter2@minio:9000', 'user:hunter2@minio']) {
      expect(() => storeConfigFromEnv({ TEMPERED_STORE: 's3://b1b', TEMPERED_S3_ENDPOINT: endpoint })).toThrow(StoreConfigError);
      try {
        storeConfigFromEnv({ TEMPERED_STORE: 's3://b1b', TEMPERED_S3_ENDPOINT: endpoint });
      } catch (e) {
        expect((e as Error).message).not.toContain('hunter2');
      }
    }
  });
});

describe('createStore', () => {
  it('builds the backend the config names', async () => {
    const file = createStore({ kind: 'file', dir: '/tmp/tempered-x' });
    expect(file).toBeInstanceOf(FileArtifactStore);
    expect(file.root).toBe('file:///tmp/tempered-x');
    const s3 = createStore({ kind: 's3', bucket: 'artifacts', prefix: 'p/q/', region: 'us-east-1', endpoint: 'http://127.0.0.1:1', forcePathStyle: true });
    expect(s3).toBeInstanceOf(S3ArtifactStore);
    expect(s3.root).toBe('s3://artifacts/p/q');
    expect(s3.uriFor('runs/r/x.json')).toBe('s3://artifacts/p/q/runs/r/x.json');
    await s3.close();
  });

  it('rejects a relative file directory and a bad bucket name', () => {
    expect(() => createStore({ kind: 'file', dir: 'relative' })).toThrow(StoreConfigError);
    expect(() => createStore({ kind: 's3', bucket: 'Bad_Bucket', prefix: '', region: 'us-east-1', forcePathStyle: false })).toThrow(
      /invalid S3 bucket name "Bad_Bucket"/,
    );
  });
});
