// Worker-thread entry: runs the kernels of src/worker/tasks.ts for the WorkerPool.
import { parentPort, workerData } from 'node:worker_threads';
import { CancelledError, type TaskContext } from '../core/engine/task';
import type { SerializedError, WorkerReply, WorkerRequest, WorkerStartData } from '../core/engine/protocol';
import { selectKernels } from '../core/kernels';
import { transferablesOf, workerTasks } from './tasks';

const port = parentPort;
if (!port) throw new Error('src/worker/main.ts must run on a worker thread.');

const start = (workerData ?? {}) as WorkerStartData;
if (start.kernels) selectKernels(start.kernels);

const cancelled = new Set<number>();
const PROGRESS_INTERVAL_MS = 100;

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'cancel') {
    cancelled.add(request.id);
    return;
  }
  void runTask(request.id, request.kind, request.input, request.progress);
});

async function runTask(id: number, kind: string, input: unknown, reportProgress: boolean): Promise<void> {
  let lastProgress = 0;
  const ctx: TaskContext = {
    progress(fraction) {
      if (!reportProgress) return;
      const now = Date.now();
      if (now - lastProgress < PROGRESS_INTERVAL_MS && fraction < 1) return;
      lastProgress = now;
      post({ type: 'progress', id, fraction });
    },
    get cancelled() {
      return cancelled.has(id);
    },
    throwIfCancelled() {
      if (cancelled.has(id)) throw new CancelledError();
    },
  };
  try {
    const handler = (workerTasks as Record<string, (input: unknown, ctx: TaskContext) => Promise<unknown>>)[kind];
    if (!handler) throw new Error(`Unknown compute task "${kind}". The worker bundle is out of date: rebuild the extension.`);
    const output = await handler(input, ctx);
    port!.postMessage({ type: 'result', id, output } satisfies WorkerReply, transferablesOf(output));
  } catch (error) {
    post({ type: 'error', id, error: serializeError(error) });
  } finally {
    cancelled.delete(id);
  }
}

function post(reply: WorkerReply): void {
  port!.postMessage(reply);
}

function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const details = (error as Error & { details?: unknown }).details;
    return { name: error.name, message: error.message, stack: error.stack, details };
  }
  return { name: 'Error', message: String(error) };
}
