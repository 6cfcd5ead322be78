import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { loadSpecFile } from '../../pipelines/load';
import { planPipeline } from '../../pipelines/plan';

const dir = path.join(__dirname, '../../pipelines/examples');

describe.each(readdirSync(dir).filter((f) => f.endsWith('.yaml')))('shipped spec %s', (file) => {
  test('parses, validates and plans', async () => {
    const plan = planPipeline(await loadSpecFile(path.join(dir, file)));
    expect(plan.stages.length).toBeGreaterThan(0);
  });
});
