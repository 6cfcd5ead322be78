import { Option, type Command } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import { integerArgument, log, openStore, stateDirOf } from './shared';

export function registerServe(cli: Command): void {
  cli
    .command('serve')
    .description('serve a registered model over HTTP (OpenAI-compatible completions and chat, a classification endpoint, /healthz, /metrics), following its champion')
    .argument('<model>', 'name[@champion|@previous|@<version>] (default the champion); a name or alias is looked up again every --poll and a promotion or rollback is swapped in without failing a request')
    .option('--host <host>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--port <port>', 'port (0: any free one, printed)', integerArgument(0, 65535), 8080)
    .option('--poll <seconds>', 'how often the registry alias is looked up again (0: never)', integerArgument(0, 86_400), 10)
    .addOption(new Option('--gguf-type <type>', 'weights language models are served with (q8_0 measured 1.3x the tokens/s of f16 at half the size: README)').choices(['f16', 'q8_0']).default('q8_0'))
    .option('--parallel <n>', 'language models: requests generated at once in one batch; more wait', integerArgument(1, 64), 4)
    .option('--context <tokens>', 'language models: tokens each request may hold, prompt and reply', integerArgument(64, 131_072), 2048)
    .option('--threads <n>', 'CPU threads (default: llama.cpp and torch choose)', integerArgument(1, 1024))
    .option('--gpu', 'language models: run on CUDA (node-llama-cpp\'s prebuilt CUDA binary); torch classifiers use CUDA whenever torch sees it')
    .option('--cache-dir <dir>', 'where GGUF conversions and downloaded models are kept', path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tempered', 'serve'))
    .action(async (reference: string, opts: { host: string; port: number; poll: number; ggufType: 'f16' | 'q8_0'; parallel: number; context: number; threads?: number; gpu?: boolean; cacheDir: string }) => {
      const [{ ModelSlot }, { loadServedModel }, { startHttpServer }, { ensurePythonEnv }, { resolveReference }] = await Promise.all([
        import('../serve/model-slot'),
        import('../serve/load'),
        import('../serve/http'),
        import('../../infra/python-env'),
        import('../../activities/registry/model-registry'),
      ]);
      const store = await openStore(stateDirOf(cli));
      let python: Promise<string> | undefined;
      const load = (version: import('../../activities/registry/model-registry').ModelVersion) =>
        loadServedModel(store, version, {
          python: () =>
            (python ??= ensurePythonEnv({ log }).then(
              (env) => env.python,
              (err: unknown) => {
                python = undefined; // the next load tries again
                throw err;
              },
            )),
          cacheDir: path.resolve(opts.cacheDir),
          ggufType: opts.ggufType,
          parallel: opts.parallel,
          contextSize: opts.context,
          threads: opts.threads,
          gpu: Boolean(opts.gpu),
          specDir: process.cwd(),
          log,
        });
      const slot = new ModelSlot(() => resolveReference(store, reference), reference, load, {
        loaded: (served, previous) =>
          log(`serving ${served.version.name} v${served.version.version} on ${served.model.engine} (${previous ? `was v${previous.version.version}; ` : ''}loaded in ${served.loadSeconds.toFixed(1)} s)`),
        loadFailed: (version, err) => {
          log(`could not load ${version ? `${version.name} v${version.version}` : reference}, still serving ${slot.served ? `v${slot.served.version.version}` : 'nothing'}: ${(err as Error).message}`);
        },
      });
      const served = await slot.start(opts.poll * 1000);
      const http = await startHttpServer(slot, { host: opts.host, port: opts.port, log });
      log(`listening on ${http.url} (${served.model.kind === 'language' ? 'POST /v1/completions, /v1/chat/completions' : 'POST /v1/classify'}; GET /healthz, /metrics)${slot.follows && opts.poll > 0 ? `; following ${reference} every ${opts.poll} s` : ''}`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      log('stopping: finishing requests in flight');
      await http.close();
      await slot.close();
      await store.close();
    });
}
