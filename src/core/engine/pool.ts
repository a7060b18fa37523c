// A pool of worker threads running the kernels registered in src/worker/tasks.ts.
// Bounded queue, per-task cancellation, errors re-thrown on the caller's side with their name,
// workers started lazily and replaced when one dies. Memory stays bounded by
// (workers x what one kernel holds), which is why callers feed work through `map`.

import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { KernelChoice } from '../kernels';
import type { WorkerReply, WorkerRequest, WorkerStartData } from './protocol';
import { CancelledError, inlineContext, type TaskHandler } from './task';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaskMap = Record<string, TaskHandler<any, any>>;
export type TaskInput<M extends TaskMap, K extends keyof M> = Parameters<M[K]>[0];
export type TaskOutput<M extends TaskMap, K extends keyof M> = Awaited<ReturnType<M[K]>>;

type Combined<T extends readonly TaskMap[]> = T extends readonly [infer Head, ...infer Rest extends readonly TaskMap[]] ? Head & Combined<Rest> : unknown;

/** One registry from several domains' maps; a kernel name registered twice is a programming error, not an override. */
export function combineTaskMaps<T extends readonly TaskMap[]>(...maps: T): Combined<T> {
  const combined: TaskMap = {};
  for (const map of maps) {
    for (const [name, handler] of Object.entries(map)) {
      if (Object.prototype.hasOwnProperty.call(combined, name)) throw new Error(`Worker task "${name}" is registered twice; kernel names must be unique across task maps.`);
      combined[name] = handler;
    }
  }
  return combined as Combined<T>;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  /** ArrayBuffers moved (not copied) to the worker with the input. */
  transfer?: ArrayBuffer[];
}

/** What core orchestration code needs of a pool; also met by InlineRunner for tests. */
export interface TaskRunner<M extends TaskMap> {
  readonly concurrency: number;
  run<K extends keyof M & string>(kind: K, input: TaskInput<M, K>, options?: RunOptions): Promise<TaskOutput<M, K>>;
}

export class QueueFullError extends Error {
  constructor(limit: number) {
    super(`The compute queue is full (${limit} tasks waiting). Wait for running work to finish or cancel it.`);
    this.name = 'QueueFullError';
  }
}

export interface WorkerPoolOptions {
  /** Absolute path of the bundled worker entry (dist/worker.js). */
  workerScript: string;
  /** Number of threads; defaults to defaultPoolSize(). */
  size?: number;
  /** Tasks that may wait for a thread before run() rejects. */
  maxQueue?: number;
  /** How long a running task may ignore a cancel before its thread is replaced. */
  cancelGraceMs?: number;
  /** The compute kernels the threads use; by default each thread's own default (GRAFT_KERNELS, else WebAssembly). */
  kernels?: KernelChoice;
}

interface Pending {
  id: number;
  kind: string;
  input: unknown;
  options: RunOptions;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  slot?: Slot;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  task?: Pending;
  killTimer?: NodeJS.Timeout;
}

/**
 * Threads for the machine: one per core, less one for a main thread that has other work (the
 * extension host); a CLI main thread only waits, so it leaves every core to the workers.
 */
export function defaultPoolSize(options: { reserveMainThread?: boolean } = {}): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, cores - (options.reserveMainThread === false ? 0 : 1)));
}

export class WorkerPool<M extends TaskMap> implements TaskRunner<M> {
  readonly concurrency: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly maxQueue: number;
  private readonly cancelGraceMs: number;
  private nextId = 1;
  private disposed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    this.concurrency = Math.max(1, options.size ?? defaultPoolSize());
    this.maxQueue = options.maxQueue ?? 4096;
    this.cancelGraceMs = options.cancelGraceMs ?? 2000;
  }

  run<K extends keyof M & string>(kind: K, input: TaskInput<M, K>, options: RunOptions = {}): Promise<TaskOutput<M, K>> {
    if (this.disposed) return Promise.reject(new Error('The compute engine has shut down.'));
    if (options.signal?.aborted) return Promise.reject(new CancelledError());
    if (this.queue.length >= this.maxQueue) return Promise.reject(new QueueFullError(this.maxQueue));
    return new Promise((resolve, reject) => {
      const task: Pending = { id: this.nextId++, kind, input, options, resolve: resolve as (v: unknown) => void, reject };
      if (options.signal) {
        task.onAbort = () => this.cancel(task);
        options.signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.queue.push(task);
      this.pump();
    });
  }

  /**
   * Starts every thread now instead of at the first tasks, so that loading the worker bundle and
   * compiling its kernels overlaps the caller's planning.
   */
  prestart(): void {
    while (!this.disposed && this.slots.length < this.concurrency) this.spawn();
  }

  /** Number of tasks waiting for a thread (not counting running ones). */
  get queued(): number {
    return this.queue.length;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    for (const task of this.queue.splice(0)) this.settle(task, new CancelledError('The compute engine shut down.'));
    const running = this.slots.splice(0);
    for (const slot of running) {
      if (slot.task) this.settle(slot.task, new CancelledError('The compute engine shut down.'));
      slot.task = undefined;
      clearTimeout(slot.killTimer);
    }
    // terminate() of an unref'd worker does not keep the process alive while it completes; and
    // nothing may unref it again meanwhile (onReply ignores threads no longer in the pool).
    await Promise.all(running.map((s) => (s.worker.ref(), s.worker.terminate())));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.task);
      if (!slot && this.slots.length < this.concurrency) slot = this.spawn();
      if (!slot) return;
      const task = this.queue.shift()!;
      slot.task = task;
      task.slot = slot;
      // A busy worker keeps the process alive (the CLI awaits it); an idle one must not.
      slot.worker.ref();
      const request: WorkerRequest = { type: 'run', id: task.id, kind: task.kind, input: task.input, progress: task.options.onProgress !== undefined };
      slot.worker.postMessage(request, task.options.transfer ?? []);
    }
  }

  private spawn(): Slot {
    const workerData: WorkerStartData = { kernels: this.options.kernels };
    const worker = new Worker(this.options.workerScript, { workerData });
    const slot: Slot = { worker };
    worker.on('message', (reply: WorkerReply) => this.onReply(slot, reply));
    worker.on('error', (error) => this.onWorkerDeath(slot, error));
    worker.on('exit', (code) => {
      if (this.slots.includes(slot)) this.onWorkerDeath(slot, new Error(`A compute worker exited unexpectedly (code ${code}).`));
    });
    // Idle workers must not keep the CLI process alive.
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    // A reply that arrives after its thread left the pool (disposed, or replaced after a cancel it
    // ignored) belongs to a task already settled, and must not unref a thread being terminated.
    if (!this.slots.includes(slot)) return;
    const task = slot.task;
    if (!task || task.id !== reply.id) return;
    if (reply.type === 'progress') {
      task.options.onProgress?.(reply.fraction);
      return;
    }
    slot.task = undefined;
    slot.worker.unref();
    if (reply.type === 'result') this.settle(task, undefined, reply.output);
    else this.settle(task, reviveError(reply.error));
    this.pump();
  }

  private onWorkerDeath(slot: Slot, error: Error): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    this.slots.splice(index, 1);
    clearTimeout(slot.killTimer);
    if (slot.task) this.settle(slot.task, error);
    slot.task = undefined;
    void slot.worker.terminate();
    if (!this.disposed) this.pump();
  }

  private cancel(task: Pending): void {
    const queuedAt = this.queue.indexOf(task);
    if (queuedAt >= 0) {
      this.queue.splice(queuedAt, 1);
      this.settle(task, new CancelledError());
      return;
    }
    const slot = task.slot;
    if (!slot || slot.task !== task) return;
    const request: WorkerRequest = { type: 'cancel', id: task.id };
    slot.worker.postMessage(request);
    // A kernel stuck in a tight loop never sees the cancel: replace its thread.
    slot.killTimer = setTimeout(() => {
      if (slot.task === task) this.onWorkerDeath(slot, new CancelledError());
    }, this.cancelGraceMs);
    slot.killTimer.unref();
  }

  private settle(task: Pending, error?: unknown, output?: unknown): void {
    if (task.onAbort) task.options.signal?.removeEventListener('abort', task.onAbort);
    if (task.slot) clearTimeout(task.slot.killTimer);
    if (error !== undefined) task.reject(error);
    else task.resolve(output);
  }
}

function reviveError(data: { name: string; message: string; stack?: string; details?: unknown }): Error {
  const error = data.name === 'CancelledError' ? new CancelledError(data.message) : new Error(data.message);
  error.name = data.name;
  if (data.stack) error.stack = data.stack;
  if (data.details !== undefined) (error as Error & { details?: unknown }).details = data.details;
  return error;
}

/** Runs kernels on the calling thread: for tests and for tiny jobs not worth a thread hop. */
export class InlineRunner<M extends TaskMap> implements TaskRunner<M> {
  readonly concurrency = 1;
  constructor(private readonly tasks: M) {}

  async run<K extends keyof M & string>(kind: K, input: TaskInput<M, K>, options: RunOptions = {}): Promise<TaskOutput<M, K>> {
    return this.tasks[kind](input, inlineContext(options.signal, options.onProgress));
  }
}

/**
 * Runs `fn` over `items` with at most `limit` in flight, preserving order of results.
 * This is how callers keep the pool's queue (and memory) bounded.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>, signal?: AbortSignal): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      if (signal?.aborted) throw new CancelledError();
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  });
  await Promise.all(lanes);
  return results;
}
