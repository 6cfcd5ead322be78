import { Option, type Command } from 'commander';
import { checkRunArgument } from '../../pipelines/run-id';
import * as path from 'node:path';
import { integerArgument, log, openStore, stateDirOf, UsageError, withClient, withStore } from './shared';

export function registerModels(cli: Command): void {
  const models = cli.command('models').description('the model registry in the store: versions, champion and previous aliases');
  const registry = () => import('../../activities/registry/model-registry');
  models
    .command('register')
    .description("register a model stage's outputs from a run as the next version")
    .argument('<name>', 'model name, e.g. spam-classifier')
    .requiredOption('--run <run>', 'run id or workflow id', checkRunArgument)
    .requiredOption('--stage <stage>', 'a finetune, distill or quantize stage of that run')
    .option('--promote', 'make it the champion too')
    .action(async (name: string, opts: { run: string; stage: string; promote?: boolean }) =>
      withClient(cli, async (client) => {
        const [{ getRunSummary, resolveWorkflowId }, { promote, registerVersion }] = await Promise.all([import('../runs'), registry()]);
        const summary = await getRunSummary(client, await resolveWorkflowId(client, opts.run));
        const stage = summary.stages[opts.stage];
        if (!stage?.manifest || (stage.status !== 'succeeded' && stage.status !== 'cached')) {
          throw new UsageError(`run ${summary.runId} has no finished stage "${opts.stage}"; finished stages: ${Object.entries(summary.stages).filter(([, s]) => s.manifest).map(([n]) => n).join(', ')}`);
        }
        const store = await openStore(stateDirOf(cli));
        try {
          const manifest = await store.readJson<import('../../workflows/types').StageManifest>(stage.manifest);
          const version = await registerVersion(store, name, { outputs: manifest.outputs, metrics: manifest.metrics, lineage: { runId: summary.runId, pipeline: summary.pipeline, stage: opts.stage } });
          if (opts.promote) await promote(store, name, version.version, 'registered with --promote');
          console.log(`registered ${name} version ${version.version}${opts.promote ? ' as champion' : ''}`);
        } finally {
          await store.close();
        }
      }),
    );
  models
    .command('list')
    .description('registered models with their champion')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) =>
      withStore(cli, async (store) => {
        const [{ getAliases, listModels, listVersions }, { printJson }] = await Promise.all([registry(), import('../output')]);
        const rows = [];
        for (const name of await listModels(store)) rows.push({ name, versions: (await listVersions(store, name)).length, ...(await getAliases(store, name)) });
        if (opts.json) return printJson(rows.map(({ history: _, ...r }) => r));
        if (rows.length === 0) return console.log('no models registered; "tempered models register <name> --run <run> --stage <stage>" adds one');
        console.log(`${'MODEL'.padEnd(28)} VERSIONS  CHAMPION  PREVIOUS`);
        for (const r of rows) console.log(`${r.name.padEnd(28)} ${String(r.versions).padStart(8)}  ${String(r.champion ?? '-').padStart(8)}  ${String(r.previous ?? '-').padStart(8)}`);
      }),
    );
  models
    .command('show')
    .description("a model's versions, metrics, lineage and alias history")
    .argument('<name>')
    .option('--json', 'print as JSON')
    .action(async (name: string, opts: { json?: boolean }) =>
      withStore(cli, async (store) => {
        const [{ getAliases, getVersion, listModels, listVersions }, { printJson }] = await Promise.all([registry(), import('../output')]);
        const aliases = await getAliases(store, name);
        const versions = await Promise.all((await listVersions(store, name)).map((v) => getVersion(store, name, v)));
        if (versions.length === 0) {
          const known = await listModels(store);
          throw new UsageError(`no model "${name}"; ${known.length > 0 ? `registered: ${known.join(', ')}` : 'none is registered yet'} ("tempered models list" shows them)`);
        }
        if (opts.json) return printJson({ name, ...aliases, versions });
        for (const v of versions) {
          const tag = v.version === aliases.champion ? ' champion' : v.version === aliases.previous ? ' previous' : '';
          const m = v.metrics as Record<string, unknown>;
          console.log(`v${v.version}${tag}  ${v.createdAt}  run ${v.lineage.runId} stage ${v.lineage.stage}${typeof m.macroF1 === 'number' ? `  macro-F1 ${m.macroF1}` : ''}`);
        }
        for (const h of aliases.history) console.log(`  ${h.at} ${h.action} -> v${h.champion}${h.reason ? ` (${h.reason})` : ''}`);
      }),
    );
  models
    .command('promote')
    .description('make a version the champion (the old champion becomes previous)')
    .argument('<name>')
    .argument('<version>', 'version number', integerArgument(1))
    .option('--reason <text>', 'why')
    .action(async (name: string, version: number, opts: { reason?: string }) =>
      withStore(cli, async (store) => {
        const { promote } = await registry();
        const a = await promote(store, name, version, opts.reason);
        console.log(`${name}: champion v${a.champion}, previous ${a.previous === undefined ? '-' : `v${a.previous}`}`);
      }),
    );
  models
    .command('export')
    .description('write a registered model in a format serving tools load: a Hugging Face checkpoint, PEFT adapters or GGUF')
    .argument('<model>', 'name[@champion|@previous|@<version>] (default the champion); LoRA adapters need their base: a relative base path is found from the current directory')
    .addOption(new Option('--format <format>', 'hf (checkpoint directory; adapters merged), peft (LoRA adapters) or gguf (llama.cpp / Ollama)').choices(['hf', 'peft', 'gguf']).makeOptionMandatory())
    .addOption(new Option('--type <type>', 'gguf weight type (default f16)').choices(['f16', 'q8_0']))
    .requiredOption('--out <dir|s3://bucket/prefix/>', 'a new or empty directory, or an S3 prefix')
    .option('--json', 'print one JSON document: the files written and their sha256')
    .action(async (reference: string, opts: { format: 'hf' | 'peft' | 'gguf'; type?: 'f16' | 'q8_0'; out: string; json?: boolean }) =>
      withStore(cli, async (store) => {
        const [{ resolveReference }, { exportModel }, { ensurePythonEnv }] = await Promise.all([registry(), import('../../activities/export'), import('../../infra/python-env')]);
        const version = await resolveReference(store, reference);
        const env = await ensurePythonEnv({ log });
        const result = await exportModel(store, version.outputs, {
          format: opts.format,
          ggufType: opts.type,
          out: opts.out.startsWith('s3://') ? opts.out : path.resolve(opts.out),
          python: env.python,
          source: { model: version.name, version: version.version, lineage: version.lineage },
        });
        if (opts.json) {
          const { printJson } = await import('../output');
          return printJson({ model: version.name, version: version.version, ...result });
        }
        const bytes = result.files.reduce((n, f) => n + f.bytes, 0);
        console.log(`exported ${version.name} v${version.version} (${result.engine}${result.architecture ? `, ${result.architecture}` : ''}) as ${opts.format}${opts.type ? ` ${opts.type}` : ''} to ${result.out}: ${result.files.length} files, ${(bytes / 1048576).toFixed(1)} MiB`);
        for (const note of result.notes) console.log(`  ${note}`);
      }),
    );
  models
    .command('rollback')
    .description('restore the previous champion')
    .argument('<name>')
    .option('--reason <text>', 'why')
    .action(async (name: string, opts: { reason?: string }) =>
      withStore(cli, async (store) => {
        const { rollback } = await registry();
        const a = await rollback(store, name, opts.reason);
        console.log(`${name}: champion v${a.champion} again, previous v${a.previous}`);
      }),
    );
}
