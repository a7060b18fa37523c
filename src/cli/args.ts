// Argument helpers shared by the `graft` subcommands.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { describeFsError } from '../core/files';
import { isSafetensorsError, openCheckpoint, SafetensorsError, type CheckpointLayout } from '../core/safetensors';
import { UsageError, type CliContext } from './context';

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs (strict, positionals allowed), with its errors turned into usage errors. */
export function parseCommandLine<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** The one path argument, resolved and checked to exist (a missing path is a usage error). */
export async function pathArgument(positionals: string[], ctx: CliContext, what: string): Promise<string> {
  if (positionals.length === 0) throw new UsageError(`missing the ${what}.`);
  if (positionals.length > 1) throw new UsageError(`expected one ${what}, got ${positionals.length}: ${positionals.join(' ')}.`);
  return existingPath(positionals[0], ctx);
}

/**
 * `arg` resolved against the working folder; a path that cannot be reached is a usage error that
 * says why (missing, permission denied, ...).
 */
export async function existingPath(arg: string, ctx: CliContext): Promise<string> {
  const target = path.resolve(ctx.cwd, arg);
  try {
    await fsp.stat(target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `"${arg}" does not exist.` : `cannot open "${arg}": ${describeFsError(error)}.`);
  }
  return target;
}

/** A path as the user should see it: relative to the working folder, with forward slashes. */
export function displayPath(p: string, cwd: string): string {
  return (path.relative(cwd, p) || '.').split(path.sep).join('/');
}

/**
 * Opens the checkpoint `target` (already resolved) that the user named `arg`; a failure names
 * the argument, since a command may take several, and says what the command reads.
 */
export async function openCheckpointArgument(target: string, arg: string): Promise<CheckpointLayout> {
  try {
    return await openCheckpoint(target);
  } catch (error) {
    let reason = error instanceof Error ? error.message : String(error);
    // An I/O error already says "Cannot open <file>": keep only why, the argument is named below.
    const quoted = reason.indexOf(`"${target}": `);
    if (isSafetensorsError(error) && error.rule === 'io' && reason.startsWith('Cannot ') && quoted > 0) reason = reason.slice(quoted + target.length + 4);
    const otherFile = !/\.(safetensors|json)$/i.test(target) && (await fsp.stat(target).then((s) => s.isFile(), () => false));
    const hint = otherFile ? `${/[.!?]$/.test(reason) ? '' : '.'} It does not look like a safetensors file: Graft reads .safetensors files, *.safetensors.index.json sets and folders holding them.` : '';
    const message = `cannot open "${arg}": ${reason}${hint}`;
    // Keep the rule (io, no-weights, ...) for `--json` and callers.
    throw isSafetensorsError(error) ? new SafetensorsError(message, error.details) : new Error(message);
  }
}
