// The extension's compute engine: one WorkerPool over dist/worker.js, started on first use,
// resized when `graft.engine.workers` changes, terminated on deactivate.
import * as vscode from 'vscode';
import { WorkerPool, type RunOptions, type TaskInput, type TaskOutput, type TaskRunner } from '../core/engine/pool';
import type { GraftTasks } from '../worker/tasks';

export class Engine implements TaskRunner<GraftTasks>, vscode.Disposable {
  private pool: WorkerPool<GraftTasks> | undefined;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscription = vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('graft.engine.workers') && this.pool) {
        this.log.info('graft.engine.workers changed: the engine restarts with the new size when it is next used.');
        const old = this.pool;
        this.pool = undefined;
        void old.dispose();
      }
    });
  }

  get concurrency(): number {
    return this.ensurePool().concurrency;
  }

  run<K extends keyof GraftTasks & string>(kind: K, input: TaskInput<GraftTasks, K>, options?: RunOptions): Promise<TaskOutput<GraftTasks, K>> {
    return this.ensurePool().run(kind, input, options);
  }

  private ensurePool(): WorkerPool<GraftTasks> {
    if (!this.pool) {
      const configured = vscode.workspace.getConfiguration('graft').get<number>('engine.workers', 0);
      this.pool = new WorkerPool<GraftTasks>({
        workerScript: vscode.Uri.joinPath(this.extensionUri, 'dist', 'worker.js').fsPath,
        size: configured > 0 ? configured : undefined,
      });
      this.log.info(`Compute engine started with ${this.pool.concurrency} worker thread(s).`);
    }
    return this.pool;
  }

  dispose(): void {
    this.subscription.dispose();
    void this.pool?.dispose();
    this.pool = undefined;
  }
}
