#!/usr/bin/env node
import './startup';
import { Command, CommanderError } from 'commander';
import { registerCycles } from './commands/cycles';
import { registerModels } from './commands/models';
import { registerRun } from './commands/run';
import { registerRunCommands } from './commands/runs';
import { registerSchedule } from './commands/schedule';
import { registerServers } from './commands/servers';
import { registerSetup } from './commands/setup';
import { EXIT, log, packageVersion } from './commands/shared';
import { registerValidate } from './commands/validate';
import { registerServe } from './commands/serve';
import { registerWorker } from './commands/worker';
import { exitAfterFlush, keepStdoutForJson } from './output';

// The `tempered` command line. Each command lives in cli/commands/ and loads what it needs (the
// Temporal client, the AWS SDK, tfjs) only when it runs, so `--help` and `validate` start fast.

/** Errors that mean the user's input (spec, arguments, names) is wrong: exit 2, message only. */
const BAD_INPUT_ERRORS = new Set(['SpecValidationError', 'UsageError', 'InvalidRunIdError', 'ScheduleInputError', 'RegistryError', 'ExportError', 'ServeError']);

export function program(): Command {
  const cli = new Command('tempered')
    .description('Declare an LLM fine-tuning pipeline in one YAML file and run it durably on Temporal.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--state-dir <dir>', 'local servers\' state (default: $TEMPERED_STATE_DIR, else the nearest .tempered folder here or above, else ./.tempered)')
    .exitOverride();
  registerValidate(cli);
  registerRun(cli);
  registerRunCommands(cli);
  registerSchedule(cli);
  registerModels(cli);
  registerCycles(cli);
  registerServers(cli);
  registerWorker(cli);
  registerServe(cli);
  registerSetup(cli);
  for (const command of allCommands(cli)) {
    command.exitOverride();
    // An argument error prints one line and this command's usage, not the whole help.
    command.configureOutput({
      outputError: (message, write) => write(`${message.trimEnd()}\nusage: ${commandPath(command)} ${command.usage()}\n(see "${commandPath(command)} --help")\n`),
    });
  }
  return cli;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export async function main(argv = process.argv): Promise<void> {
  if (argv.includes('--json')) keepStdoutForJson();
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; every argument error (commander printed it) exits 2.
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.badInput;
    } else if (err instanceof Error && BAD_INPUT_ERRORS.has(err.name)) {
      log(err.message);
      process.exitCode = EXIT.badInput;
    } else {
      log(`error: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = EXIT.failed;
    }
  }
}

if (require.main === module) {
  void main().then(() => exitAfterFlush(Number(process.exitCode ?? 0)));
}
