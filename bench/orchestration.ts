import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createStore } from '../activities/store';
import { newRunId, workflowIdOf } from '../cli/runs';
import { loadSpecText } from '../pipelines/load';
import { planPipeline } from '../pipelines/plan';
import { benchServers, percentile } from './servers';

// Orchestration overhead per stage: a Tempered pipeline of N sequential no-op stages against a bare
// Temporal workflow calling N no-op activities in sequence, same server, same worker, same run.
// Usage: npm run build && node dist/bench/orchestration.js [repeats=15] [stages=20]

async function main(): Promise<void> {
  const repeats = Number(process.argv[2] ?? 15);
  const stageCount = Number(process.argv[3] ?? 20);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const servers = await benchServers();
  try {
    const store = createStore({ kind: 's3', bucket: 'bench', prefix: '', region: 'us-east-1', endpoint: servers.minio.endpoint, forcePathStyle: true });
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./bench-workflows'), logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error } });
    const connection = await NativeConnection.connect({ address: servers.temporal.address });
    const worker = await Worker.create({
      connection,
      taskQueue: 'cpu',
      workflowBundle: bundle,
      activities: { ...createActivities({ store }), bareNoop: async (i: number) => i },
    });
    const running = worker.run();
    const client = new Client({ connection: await Connection.connect({ address: servers.temporal.address }) });

    const yaml = ['apiVersion: tempered.dev/v1', 'name: bench', 'stages:',
      ...Array.from({ length: stageCount }, (_, i) => `  s${i}: { type: noop${i > 0 ? `, after: [s${i - 1}]` : ''} }`)].join('\n');
    const plan = planPipeline(loadSpecText(yaml, 'bench.yaml'));

    const timeTempered = async () => {
      const runId = newRunId();
      const t0 = performance.now();
      await client.workflow.execute('pipelineWorkflow', { taskQueue: 'cpu', workflowId: workflowIdOf('bench', runId), args: [{ runId, plan }] });
      return (performance.now() - t0) / stageCount;
    };
    const timeBare = async () => {
      const t0 = performance.now();
      await client.workflow.execute('bareWorkflow', { taskQueue: 'cpu', workflowId: `bare-${newRunId()}`, args: [stageCount] });
      return (performance.now() - t0) / stageCount;
    };
    await timeTempered(); // warm-up: bucket creation, first workflow task, JIT
    await timeBare();
    const tempered: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < repeats; i++) {
      // Interleaved, so drift in machine load hits both alike.
      tempered.push(await timeTempered());
      bare.push(await timeBare());
    }
    const row = (name: string, xs: number[]) => ({ name, p50: percentile(xs, 50), p95: percentile(xs, 95) });
    const rows = [row('tempered', tempered), row('bare temporal', bare)];
    console.log(`\nper-stage wall time, ${stageCount} sequential no-op stages, ${repeats} runs each`);
    for (const r of rows) console.log(`  ${r.name.padEnd(14)} p50 ${r.p50.toFixed(1)} ms   p95 ${r.p95.toFixed(1)} ms`);
    console.log(`  ratio (p50)    ${(rows[0].p50 / rows[1].p50).toFixed(2)}x`);
    console.log(JSON.stringify({ benchmark: 'orchestration', stageCount, repeats, tempered: rows[0], bare: rows[1], ratioP50: rows[0].p50 / rows[1].p50 }));

    worker.shutdown();
    await running;
    await client.connection.close();
    await connection.close();
    await store.close();
  } finally {
    await servers.stop();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
