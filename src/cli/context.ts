// What every `graft` subcommand gets: output streams and a lazily started worker pool.
import * as path from 'node:path';
import { defaultPoolSize, WorkerPool, type TaskRunner } from '../core/engine/pool';
import type { GraftTasks } from '../worker/tasks';

/** Wrong arguments: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True once the reader of stdout went away: the command's outcome no longer matters. */
  readonly closed?: boolean;
}

export interface CliContext extends CliIO {
  cwd: string;
  /** The compute engine; started on first use (with `size` workers if given), shut down when the command returns. */
  runner(size?: number): TaskRunner<GraftTasks>;
  /** Creates the runner and starts its threads now, to load while the command plans its work. */
  startRunner?(size?: number): void;
  /** Aborted on Ctrl-C. */
  signal: AbortSignal;
}

export interface CliCommand {
  name: string;
  summary: string;
  usage: string;
  /** Returns the process exit code. Throw UsageError for bad arguments. */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** The bundled worker sits beside the bundled CLI and extension in dist/. */
export function bundledWorkerScript(): string {
  return path.join(__dirname, 'worker.js');
}

export function createContext(io: CliIO, signal: AbortSignal, workerScript = bundledWorkerScript()): CliContext & { dispose(): Promise<void> } {
  let pool: WorkerPool<GraftTasks> | undefined;
  const runner = (size?: number) => (pool ??= new WorkerPool<GraftTasks>({ workerScript, size: size ?? defaultPoolSize({ reserveMainThread: false }) }));
  return {
    ...io,
    cwd: process.cwd(),
    signal,
    runner,
    startRunner: (size?: number) => runner(size).prestart(),
    async dispose() {
      await pool?.dispose();
    },
  };
}

/**
 * stdout and stderr of this process. When the reader of stdout goes away (`graft inspect x | head`
 * exits), writes fail with EPIPE: the rest of the output is dropped, `onClosed` is called (to stop
 * the work) and no stack trace is printed.
 */
export function processIO(onClosed: () => void): CliIO {
  let closed = false;
  const close = (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    if (!closed) {
      closed = true;
      onClosed();
    }
  };
  process.stdout.on('error', close);
  process.stderr.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  return {
    get closed() {
      return closed;
    },
    stdout: (text) => {
      if (!closed) process.stdout.write(text);
    },
    stderr: (text) => {
      process.stderr.write(text);
    },
  };
}
