// `graft`: the command line over Graft's core, for headless and remote use.
import packageJson from '../../package.json';
import { CancelledError } from '../core/engine/task';
import { safetensorsRuleOf } from '../core/safetensors/errors';
import { escapeControl } from '../core/text';
import { diffCommand } from './commands/diff';
import { inspectCommand } from './commands/inspect';
import { lineageCommand } from './commands/lineage';
import { loraCommand } from './commands/lora';
import { mergeCommand } from './commands/merge';
import { patchCommand } from './commands/patch';
import { transferCommand } from './commands/transfer';
import { validateCommand } from './commands/validate';
import { createContext, processIO, UsageError, type CliCommand, type CliIO } from './context';
import { errorMessage, writeJson } from './output';

const COMMANDS: CliCommand[] = [validateCommand, inspectCommand, lineageCommand, diffCommand, mergeCommand, patchCommand, transferCommand, loraCommand];

/** What `--json` prints when a command does not produce its report: always one JSON object. */
export interface CliFailure {
  error: string;
  /** usage: wrong arguments (exit 2); cancelled (exit 130); error: anything else (exit 1). */
  kind: 'usage' | 'cancelled' | 'error';
  /** The safetensors rule broken (io for file system errors), when there is one. */
  rule?: string;
  exit: number;
}

/** `--json` anywhere before a `--` that ends the options. */
function jsonRequested(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

function helpText(): string {
  const width = COMMANDS.reduce((w, c) => Math.max(w, c.name.length), 0);
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
  const json = jsonRequested(args);
  const fail = (failure: CliFailure, text: string): number => {
    if (json) writeJson(io.stdout, failure);
    else io.stderr(text);
    return failure.exit;
  };
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const message = `unknown command "${escapeControl(name)}".`;
    return fail({ error: message, kind: 'usage', exit: 2 }, `graft: ${message}\n\n${helpText()}\n`);
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(command.usage + '\n');
    return 0;
  }
  const ctx = createContext(io, signal);
  try {
    return await command.run(args, ctx);
  } catch (error) {
    // The reader of our output went away (`| head`): nothing left to say, and no one to say it to.
    if (io.closed) return 0;
    const message = errorMessage(error);
    if (error instanceof UsageError) {
      return fail({ error: message, kind: 'usage', exit: 2 }, `graft ${command.name}: ${message}\n\n${command.usage}\n`);
    }
    if (error instanceof CancelledError) {
      return fail({ error: 'cancelled', kind: 'cancelled', exit: 130 }, `graft ${command.name}: cancelled.\n`);
    }
    const rule = safetensorsRuleOf(error);
    return fail({ error: message, kind: 'error', ...(rule ? { rule } : {}), exit: 1 }, `graft ${command.name}: ${message}\n`);
  } finally {
    await ctx.dispose();
  }
}

if (require.main === module) {
  const controller = new AbortController();
  process.on('SIGINT', () => controller.abort());
  const io: CliIO = processIO(() => controller.abort());
  void runCli(process.argv.slice(2), io, controller.signal).then((code) => {
    process.exitCode = code;
  });
}
