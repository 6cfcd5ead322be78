import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { inputFileName, stageInputs, type InputManifest } from '../../../activities/command';
import { FileArtifactStore, IntegrityError } from '../../../activities/store';
import type { StageResult } from '../../../workflows/types';

describe('inputFileName', () => {
  test.each([
    ['train', 'application/jsonl', 'runs/p/r/split/train.jsonl', 'train.jsonl'],
    ['records', 'application/jsonl', 'runs/p/r/clean/records-v2', 'records.jsonl'],
    ['model.json', 'application/json', 'runs/p/r/train/model.json', 'model.json'],
    ['weights', 'application/octet-stream', 'runs/p/r/train/weights', 'weights'],
    ['weights', 'application/octet-stream', 'runs/p/r/train/weights.safetensors', 'weights.safetensors'],
    ['a/b c', 'text/plain', 'k', 'a_b_c.txt'],
    ['..', 'text/plain', 'k', 'output.txt'],
  ])('%s (%s at %s) -> %s', (output, mediaType, key, expected) => {
    expect(inputFileName(output, { mediaType }, key)).toBe(expected);
  });
});

describe('stageInputs', () => {
  let root: string;
  let store: FileArtifactStore;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'tempered-stage-inputs-'));
    store = new FileArtifactStore(path.join(root, 'store'));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  const result = (outputs: StageResult['outputs']): StageResult => ({ outputs, metrics: {}, manifest: outputs[Object.keys(outputs)[0]] });

  test('downloads every upstream output and describes it in manifest.json', async () => {
    const train = await store.put('runs/p/r/split/train.jsonl', '{"id":"1","text":"hi"}\n', 'application/jsonl');
    const test = await store.put('runs/p/r/split/test.jsonl', '{"id":"2","text":"yo"}\n', 'application/jsonl');
    const model = await store.put('runs/p/r/fit/model.json', '{"w":1}', 'application/json');
    const dir = path.join(root, 'inputs');
    const progress: number[] = [];
    const staged = await stageInputs(store, { split: result({ train, test }), fit: result({ 'model.json': model }) }, dir, {
      onFile: (done) => progress.push(done),
    });

    expect(staged.map((s) => path.relative(dir, s.path))).toEqual(['split/train.jsonl', 'split/test.jsonl', 'fit/model.json']);
    expect(await readFile(path.join(dir, 'split/train.jsonl'), 'utf8')).toBe('{"id":"1","text":"hi"}\n');
    expect(await readFile(path.join(dir, 'fit/model.json'), 'utf8')).toBe('{"w":1}');
    expect(progress).toEqual([1, 2, 3]);
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as InputManifest;
    expect(manifest.inputs[0]).toEqual({
      stage: 'split',
      output: 'train',
      path: path.join(dir, 'split/train.jsonl'),
      sha256: train.sha256,
      bytes: train.bytes,
      mediaType: 'application/jsonl',
      uri: train.uri,
    });
  });

  test('two outputs that map to one file name get distinct files', async () => {
    const a = await store.put('x/data.jsonl', 'a', 'application/jsonl');
    const b = await store.put('y/data', 'b', 'application/jsonl');
    const staged = await stageInputs(store, { s: result({ data: a, 'data.jsonl': b }) }, path.join(root, 'in'));
    expect(staged.map((s) => path.basename(s.path))).toEqual(['data.jsonl', 'data-2.jsonl']);
  });

  test('an artifact changed after it was written fails with the integrity error', async () => {
    const ref = await store.put('runs/p/r/split/train.jsonl', 'original', 'application/jsonl');
    await writeFile(path.join(store.dir, 'runs/p/r/split/train.jsonl'), 'tampered');
    await expect(stageInputs(store, { split: result({ train: ref }) }, path.join(root, 'in'))).rejects.toThrow(IntegrityError);
  });

  test("an upstream command stage's directory output is staged as that directory again", async () => {
    const a = await store.put('runs/p/r/train/ckpt/config.json', '{"layers":2}', 'application/json');
    const b = await store.put('runs/p/r/train/ckpt/step-10/weights.bin', Buffer.from([1, 2, 3]), 'application/octet-stream');
    const log = await store.put('runs/p/r/train/log.txt', 'trained\n', 'text/plain');
    const dir = path.join(root, 'inputs');
    const staged = await stageInputs(store, { train: result({ 'ckpt/config.json': a, 'ckpt/step-10/weights.bin': b, log }) }, dir);

    expect(await readFile(path.join(dir, 'train', 'ckpt', 'config.json'), 'utf8')).toBe('{"layers":2}');
    expect([...(await readFile(path.join(dir, 'train', 'ckpt', 'step-10', 'weights.bin')))]).toEqual([1, 2, 3]);
    expect(await readFile(path.join(dir, 'train', 'log.txt'), 'utf8')).toBe('trained\n');
    expect(staged.find((s) => s.output === 'ckpt/step-10/weights.bin')).toMatchObject({
      directory: path.join(dir, 'train', 'ckpt'),
      path: path.join(dir, 'train', 'ckpt', 'step-10', 'weights.bin'),
      sha256: b.sha256,
    });
    expect(staged.find((s) => s.output === 'log')).not.toHaveProperty('directory');
  });

  test('an output name with a ".." segment stays inside its stage directory', async () => {
    const ref = await store.put('runs/p/r/x/evil', 'x', 'text/plain');
    const dir = path.join(root, 'inputs');
    const [staged] = await stageInputs(store, { x: result({ 'ckpt/../../escape': ref }) }, dir);
    expect(path.dirname(staged.path)).toBe(path.join(dir, 'x'));
  });
});
