// Messages between the extension host (WorkerPool) and the worker threads (src/worker/main.ts).
import type { KernelChoice } from '../kernels';

/** What a worker thread is started with (its workerData). */
export interface WorkerStartData {
  kernels?: KernelChoice;
}

export type WorkerRequest =
  /** `progress`: whether the caller listens to progress (each message costs a thread wake-up). */
  | { type: 'run'; id: number; kind: string; input: unknown; progress: boolean }
  | { type: 'cancel'; id: number };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  details?: unknown;
}

export type WorkerReply =
  | { type: 'progress'; id: number; fraction: number }
  | { type: 'result'; id: number; output: unknown }
  | { type: 'error'; id: number; error: SerializedError };
