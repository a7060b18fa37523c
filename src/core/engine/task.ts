// What a kernel running on a worker thread sees of its task: progress reporting and cancellation.
// Kernels are plain async functions so they can also run inline (tests, the CLI's --no-workers).

export class CancelledError extends Error {
  constructor(message = 'Cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

export interface TaskContext {
  /** Fraction done, 0..1. Cheap to call often: the pool throttles what crosses threads. */
  progress(fraction: number): void;
  /** True once the caller cancelled; long loops should check between chunks. */
  readonly cancelled: boolean;
  /** Throws CancelledError when cancelled. */
  throwIfCancelled(): void;
}

export type TaskHandler<I, O> = (input: I, ctx: TaskContext) => Promise<O>;

/** A context for running a kernel on the calling thread. */
export function inlineContext(signal?: AbortSignal, onProgress?: (fraction: number) => void): TaskContext {
  return {
    progress: (f) => onProgress?.(f),
    get cancelled() {
      return signal?.aborted ?? false;
    },
    throwIfCancelled() {
      if (signal?.aborted) throw new CancelledError();
    },
  };
}
