// The extension's compute engine: one WorkerPool over dist/worker.js, started on first use,
// restarted when `graft.engine.workers` or `graft.engine.kernels` changes, terminated on deactivate.
import * as vscode from 'vscode';
import { WorkerPool, type RunOptions, type TaskInput, type TaskOutput, type TaskRunner } from '../core/engine/pool';
import { parseKernelChoice, type KernelChoice } from '../core/kernels';
import type { GraftTasks } from '../worker/tasks';

export class Engine implements TaskRunner<GraftTasks>, vscode.Disposable {
  private pool: WorkerPool<GraftTasks> | undefined;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscription = vscode.workspace.onDidChangeConfiguration((event) => {
      const setting = ['graft.engine.workers', 'graft.engine.kernels'].find((name) => event.affectsConfiguration(name));
      if (setting && this.pool) {
        this.log.info(`${setting} changed: the engine restarts with it when it is next used.`);
        const old = this.pool;
        this.pool = undefined;
        void old.dispose();
      }
    });
  }

  get concurrency(): number {
    return this.ensurePool().concurrency;
  }

  /** The kernels the threads run (graft.engine.kernels): what time estimates calibrate. */
  get kernels(): KernelChoice {
    return this.kernelSetting();
  }

  run<K extends keyof GraftTasks & string>(kind: K, input: TaskInput<GraftTasks, K>, options?: RunOptions): Promise<TaskOutput<GraftTasks, K>> {
    return this.ensurePool().run(kind, input, options);
  }

  private ensurePool(): WorkerPool<GraftTasks> {
    if (!this.pool) {
      const configured = vscode.workspace.getConfiguration('graft').get<number>('engine.workers', 0);
      const kernels = this.kernelSetting();
      this.pool = new WorkerPool<GraftTasks>({
        workerScript: vscode.Uri.joinPath(this.extensionUri, 'dist', 'worker.js').fsPath,
        size: configured > 0 ? configured : undefined,
        kernels,
      });
      this.log.info(`Compute engine started with ${this.pool.concurrency} worker thread(s), ${kernels} kernels.`);
    }
    return this.pool;
  }

  /** graft.engine.kernels; a value the schema does not allow is logged and the default used. */
  private kernelSetting(): KernelChoice {
    const value = vscode.workspace.getConfiguration('graft').get<string>('engine.kernels', 'webassembly');
    try {
      return parseKernelChoice(value, 'graft.engine.kernels');
    } catch (error) {
      this.log.warn(`${error instanceof Error ? error.message : String(error)} Using "webassembly".`);
      return 'webassembly';
    }
  }

  dispose(): void {
    this.subscription.dispose();
    void this.pool?.dispose();
    this.pool = undefined;
  }
}
