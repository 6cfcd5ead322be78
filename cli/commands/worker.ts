import { Option, type Command } from 'commander';
import * as path from 'node:path';
import { EXAMPLES_DIR, EXIT, loadPlan, log, stateDirOf } from './shared';

export function registerWorker(cli: Command): void {
  cli
    .command('worker')
    .description('poll task queues and run stages; run one per GPU node with --queue gpu')
    .addOption(new Option('--queue <queue>', 'which queue').choices(['cpu', 'gpu', 'all']).default('all'))
    .action(async (opts: { queue: 'cpu' | 'gpu' | 'all' }) => {
      const [{ TASK_QUEUES }, { startWorkersFor }] = await Promise.all([import('../../pipelines/plan'), import('../local-run')]);
      const queues = opts.queue === 'all' ? [TASK_QUEUES.cpu, TASK_QUEUES.gpu] : [opts.queue];
      const workers = await startWorkersFor(stateDirOf(cli), queues);
      const gpus = workers.gpus ? ` (gpu devices ${workers.gpus.devices.join(',')}, from ${workers.gpus.source}; TEMPERED_GPUS sets them)` : '';
      log(`worker polling ${queues.join(', ')}${gpus}; Ctrl-C stops it after running stages finish their attempt`);
      const stop = () => void workers.shutdown();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await workers.done;
    });

  cli
    .command('demo')
    .description('start local servers and run the two-corpus demo pipeline end to end (--continual: three continual-learning cycles)')
    .option('--json', 'print the final summary as JSON')
    .option('--continual', 'run the continual demo: the mail corpus released in three slices, one scheduled retrain cycle each')
    .option('--torch', 'run the torch-engine demo: pretrained MiniLM fine-tuned on ham/spam (full and LoRA) against the same model from random weights, then distilled and quantized to int8')
    .option('--sft', 'run the torch sft demo: SmolLM2-135M-Instruct learns to write mails\' subject lines (LoRA), scored with ROUGE/BLEU against the base')
    .action(async (opts: { json?: boolean; continual?: boolean; torch?: boolean; sft?: boolean }) => {
      const stateDir = stateDirOf(cli);
      const [local, { readServers }, { formatHeadline }] = await Promise.all([import('../local-run'), import('../../infra/servers'), import('../format')]);
      await local.startLocalServers(stateDir);
      if (opts.continual) return local.continualDemo(stateDir);
      const specFile = path.join(EXAMPLES_DIR, opts.sft ? 'smollm2-sft.yaml' : opts.torch ? 'torch-demo.yaml' : 'demo.yaml');
      log(`running ${path.relative(process.cwd(), specFile)}`);
      const summary = await local.runPlan(await loadPlan(specFile), { local: true, wait: true, json: opts.json, stateDir });
      if (summary && !opts.json) {
        const servers = await readServers(stateDir);
        // The report reads the predictions, so the headline's lifts carry their intervals.
        const report = await local.writeReport(stateDir, summary);
        const headline = formatHeadline(summary, report.model.lifts);
        if (headline) log(`\n${headline}`);
        log(`\nartifacts: ${process.env.TEMPERED_STORE}/runs/${summary.pipeline}/${summary.runId}/`);
        if (servers) log(`browse them in the MinIO console ${servers.minio.consoleUrl} (user ${servers.minio.accessKeyId}, password in ${path.join(stateDir, 'servers.json')})`);
        log(`report: ${report.htmlPath}`);
      }
      if (summary?.status !== 'succeeded') process.exitCode ??= EXIT.failed;
    });
}
