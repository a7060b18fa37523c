// `graft`: the command line over Graft's core, for headless and remote use.
import packageJson from '../../package.json';
import { CancelledError } from '../core/engine/task';
import { diffCommand } from './commands/diff';
import { inspectCommand } from './commands/inspect';
import { lineageCommand } from './commands/lineage';
import { mergeCommand } from './commands/merge';
import { validateCommand } from './commands/validate';
import { createContext, UsageError, type CliCommand, type CliIO } from './context';

const COMMANDS: CliCommand[] = [validateCommand, inspectCommand, lineageCommand, diffCommand, mergeCommand];

function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'graft: model lineage and surgery from the command line',
    '',
    'Usage: graft <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `graft <command> --help` for a command\'s options.',
  ].join('\n');
}

export async function runCli(argv: string[], io: CliIO, signal = new AbortController().signal): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(helpText() + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version') {
    io.stdout(`${packageJson.version}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`graft: unknown command "${name}".\n\n${helpText()}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(command.usage + '\n');
    return 0;
  }
  const ctx = createContext(io, signal);
  try {
    return await command.run(args, ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`graft ${command.name}: ${error.message}\n\n${command.usage}\n`);
      return 2;
    }
    if (error instanceof CancelledError) {
      io.stderr(`graft ${command.name}: cancelled.\n`);
      return 130;
    }
    io.stderr(`graft ${command.name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await ctx.dispose();
  }
}

if (require.main === module) {
  const controller = new AbortController();
  process.on('SIGINT', () => controller.abort());
  const io: CliIO = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
  void runCli(process.argv.slice(2), io, controller.signal).then((code) => {
    process.exitCode = code;
  });
}
