// Plans and runs recipe files with the same core as `graft merge`, on the extension's worker pool:
// a cancellable progress notification (tensors, bytes, ETA), cancel removes the partial output,
// a recipe problem opens the recipe at its line, and the finished model is revealed in the
// lineage tree under its parents. Writing is refused in Restricted Mode.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CancelledError } from '../../core/engine/task';
import { formatBytes, parseByteSize } from '../../core/format';
import { DEFAULT_SHARD_BYTES, executeMerge, parseRecipeText, planMerge, RecipeError, type MergePlan, type MergeProgress, type MergeResult, type RecipeProblem } from '../../core/merge';
import { estimateMerge, type MergeEstimate } from '../../core/merge/estimate';
import { catalogResolver } from '../../core/merge/resolve';
import type { Engine } from '../engine';
import type { ModelIndex } from '../lineage/modelIndex';

/** Why writing is refused in Restricted Mode; shown on every refused run. */
export const RESTRICTED_MESSAGE = 'Graft does not write models in Restricted Mode: this workspace is not trusted, and merges, diff vectors, transfers and LoRA extraction write files. Trust the workspace to run them; planning, diagnostics and the merge panel work meanwhile.';

export interface PlannedRecipe {
  plan: MergePlan;
  estimate: MergeEstimate;
  shards: number;
}

export interface FinishedMerge {
  recipe: vscode.Uri;
  out: string;
  result: MergeResult;
  /** Resolved paths of the inputs (checkpoints, adapters). */
  inputs: string[];
}

export interface RunOptions {
  /** Replace an existing output folder once the new merge is complete. */
  force?: boolean;
  /** Offer "Compare with Parents" / "Inspect" when done (off for scripted runs). */
  quiet?: boolean;
}


export function durationText(seconds: number): string {
  if (seconds < 1) return `${Math.max(0.1, seconds).toFixed(1)} s`;
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The default output of a recipe: a folder beside it named after it (foo.graft.yml -> foo/). */
export function defaultOutputOf(recipe: vscode.Uri): string {
  const base = path.basename(recipe.fsPath).replace(/(\.graft)?\.ya?ml$/i, '');
  return path.join(path.dirname(recipe.fsPath), base || 'merged');
}

export class MergeRunner implements vscode.Disposable {
  private readonly progressEmitter = new vscode.EventEmitter<MergeProgress>();
  private readonly finishedEmitter = new vscode.EventEmitter<FinishedMerge>();
  /** Fires on every progress report of the running merge. */
  readonly onDidProgress = this.progressEmitter.event;
  /** Fires when a merge has been written and the index refreshed. */
  readonly onDidFinish = this.finishedEmitter.event;
  private running: AbortController | undefined;
  /** Last output per recipe, for the CodeLens "Open Output" / "Compare with Parents". */
  private readonly outputs = new Map<string, FinishedMerge>();

  constructor(
    private readonly engine: Engine,
    private readonly index: ModelIndex,
    private readonly log: vscode.LogOutputChannel,
    private readonly graftVersion: string,
  ) {}

  get isRunning(): boolean {
    return this.running !== undefined;
  }

  lastOutput(recipe: vscode.Uri): FinishedMerge | undefined {
    return this.outputs.get(recipe.toString());
  }

  cancel(): void {
    this.running?.abort();
  }

  /** True (and the user told why) when the workspace is in Restricted Mode, where Graft writes nothing. */
  refuseIfRestricted(what: string): boolean {
    if (vscode.workspace.isTrusted) return false;
    this.log.warn(`Refused to ${what}: the workspace is in Restricted Mode.`);
    void vscode.window.showErrorMessage(RESTRICTED_MESSAGE, 'Manage Workspace Trust').then((choice) => choice && vscode.commands.executeCommand('workbench.trust.manage'));
    return true;
  }

  /** graft.merge.shardSize in bytes; a value that is not a size is logged and the default used. */
  shardBytes(): number {
    const value = vscode.workspace.getConfiguration('graft').get<string>('merge.shardSize', '5GB');
    const bytes = parseByteSize(value);
    if (bytes === undefined) this.log.warn(`graft.merge.shardSize "${value}" is not a size such as 5GB or 500MB; using 5GB.`);
    return bytes ?? DEFAULT_SHARD_BYTES;
  }

  /** Parses and plans recipe text (headers only): throws RecipeError with every problem. */
  async check(text: string, file: string, out?: string): Promise<MergePlan> {
    const { recipe, problems } = parseRecipeText(text, file);
    if (!recipe) throw new RecipeError(file, problems);
    await this.index.whenIdle();
    const catalog = this.index.catalog;
    return planMerge(recipe, { out, resolveModel: catalog ? catalogResolver(catalog) : undefined });
  }

  /** check() and the estimate of memory and time (a short calibration of the plan's kernels). */
  async planText(text: string, file: string, out?: string): Promise<PlannedRecipe> {
    const plan = await this.check(text, file, out);
    const estimate = estimateMerge(plan, this.engine.concurrency, this.engine.kernels);
    return { plan, estimate, shards: Math.max(1, Math.ceil(plan.totals.outputBytes / this.shardBytes())) };
  }

  /** "Plan": shows what the recipe would compute, or opens it at its first problem. */
  async showPlan(uri: vscode.Uri): Promise<PlannedRecipe | undefined> {
    const document = await vscode.workspace.openTextDocument(uri);
    try {
      const planned = await this.planText(document.getText(), uri.fsPath);
      const { plan, estimate, shards } = planned;
      const summary = `${plan.method}: ${plan.totals.tensors} tensors, ${formatBytes(plan.totals.outputBytes)} in ${shards} shard${shards === 1 ? '' : 's'}; peak memory about ${formatBytes(estimate.peakBytes)}; about ${durationText(estimate.seconds)}.`;
      this.log.info(`Plan of ${uri.fsPath}: ${summary}${plan.warnings.map((w) => `\n  warning: ${w}`).join('')}`);
      const warnings = plan.warnings.length ? ` ${plan.warnings.length} warning(s) in the log.` : '';
      void vscode.window.showInformationMessage(`${summary}${warnings}`, 'Run Merge', 'Show Log').then((choice) => {
        if (choice === 'Run Merge') void this.run(uri);
        if (choice === 'Show Log') this.log.show();
      });
      return planned;
    } catch (error) {
      await this.reportFailure(uri, error, 'planned');
      return undefined;
    }
  }

  /**
   * Runs the recipe into `out` (default: a folder beside the recipe named after it). Resolves with
   * what was written, or undefined when refused, cancelled or failed (each told to the user).
   */
  async run(uri: vscode.Uri, out?: string, options: RunOptions = {}): Promise<FinishedMerge | undefined> {
    if (this.refuseIfRestricted(`run ${uri.fsPath}`)) return undefined;
    if (this.running) {
      void vscode.window.showWarningMessage('A merge is already running; wait for it or cancel it (the Cancel button of its notification) before starting another.');
      return undefined;
    }
    const document = await vscode.workspace.openTextDocument(uri);
    if (document.isDirty) await document.save();
    const target = path.resolve(out ?? defaultOutputOf(uri));
    let force = options.force ?? false;
    if (!force && fs.existsSync(target)) {
      const replace = 'Replace When Done';
      const choice = await vscode.window.showWarningMessage(`${target} already exists.`, { modal: true, detail: 'Graft writes the new merge beside it and replaces the folder only once the merge is complete. Choose "Replace When Done", or cancel and give the recipe another output.' }, replace);
      if (choice !== replace) return undefined;
      force = true;
    }
    const controller = new AbortController();
    this.running = controller;
    void vscode.commands.executeCommand('setContext', 'graft.merging', true);
    try {
      let planned: PlannedRecipe;
      try {
        planned = await this.planText(document.getText(), uri.fsPath, target);
      } catch (error) {
        await this.reportFailure(uri, error, 'run');
        return undefined;
      }
      const { plan } = planned;
      const name = path.basename(target);
      this.log.info(`Merging ${uri.fsPath} (${plan.method}, ${plan.totals.tensors} tensors) into ${target}.`);
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Graft: merging ${name}`, cancellable: true },
        async (progress, token) => {
          const subscription = token.onCancellationRequested(() => controller.abort());
          let reported = 0;
          try {
            return await executeMerge(plan, {
              runner: this.engine,
              out: target,
              force,
              shardBytes: this.shardBytes(),
              signal: controller.signal,
              graftVersion: this.graftVersion,
              onProgress: (p) => {
                const fraction = p.bytes > 0 ? p.bytesDone / p.bytes : 0;
                const eta = p.etaSeconds !== undefined ? ` · ${durationText(p.etaSeconds)} left` : '';
                progress.report({ increment: Math.max(0, fraction * 100 - reported), message: `${p.tensorsDone}/${p.tensors} tensors · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytes)}${eta}` });
                reported = Math.max(reported, fraction * 100);
                this.progressEmitter.fire(p);
              },
            });
          } finally {
            subscription.dispose();
          }
        },
      );
      const finished: FinishedMerge = { recipe: uri, out: result.out, result, inputs: plan.inputs.flatMap((i) => i.paths) };
      this.outputs.set(uri.toString(), finished);
      this.log.info(`Merged ${result.tensors} tensors (${formatBytes(result.bytes)}) into ${result.out} in ${durationText(result.seconds)}.`);
      await this.index.refresh('merge finished');
      this.finishedEmitter.fire(finished);
      await vscode.commands.executeCommand('graft.showInLineage', vscode.Uri.file(result.out));
      if (!options.quiet) {
        void vscode.window.showInformationMessage(`Merged ${name}: ${result.tensors} tensors, ${formatBytes(result.bytes)} in ${durationText(result.seconds)}.`, 'Compare with Parents', 'Inspect').then((choice) => {
          if (choice === 'Compare with Parents') void vscode.commands.executeCommand('graft.compareWithParents', vscode.Uri.file(result.out), finished.inputs);
          if (choice === 'Inspect') void vscode.commands.executeCommand('graft.inspectCheckpoint', vscode.Uri.file(result.out));
        });
      }
      return finished;
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) {
        this.log.info(`Merge of ${uri.fsPath} cancelled; the partial output was removed.`);
        void vscode.window.showInformationMessage(`Merge cancelled; nothing was written to ${path.basename(target)}.`);
        return undefined;
      }
      await this.reportFailure(uri, error, 'run');
      return undefined;
    } finally {
      if (this.running === controller) {
        this.running = undefined;
        void vscode.commands.executeCommand('setContext', 'graft.merging', false);
      }
    }
  }

  /**
   * Runs another surgery operation (patch extract/apply, LoRA extraction) like a merge: one at a
   * time, in a cancellable progress notification, cancelled by graft.cancelMerge too. Resolves
   * undefined when cancelled (the user is told nothing was written); other errors are thrown.
   */
  async runOperation<T>(title: string, work: (signal: AbortSignal, report: (fraction: number, message?: string) => void) => Promise<T>): Promise<T | undefined> {
    if (this.running) {
      void vscode.window.showWarningMessage('A merge or another surgery operation is already running; wait for it or cancel it (the Cancel button of its notification) before starting another.');
      return undefined;
    }
    const controller = new AbortController();
    this.running = controller;
    void vscode.commands.executeCommand('setContext', 'graft.merging', true);
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Graft: ${title}`, cancellable: true }, async (progress, token) => {
        const subscription = token.onCancellationRequested(() => controller.abort());
        let reported = 0;
        try {
          return await work(controller.signal, (fraction, message) => {
            const percent = Math.min(100, Math.max(0, fraction * 100));
            progress.report({ increment: Math.max(0, percent - reported), message: message ?? `${percent.toFixed(0)}%` });
            reported = Math.max(reported, percent);
          });
        } finally {
          subscription.dispose();
        }
      });
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) {
        this.log.info(`${title}: cancelled; nothing was written.`);
        void vscode.window.showInformationMessage(`${title[0].toUpperCase()}${title.slice(1)}: cancelled; nothing was written.`);
        return undefined;
      }
      throw error;
    } finally {
      if (this.running === controller) {
        this.running = undefined;
        void vscode.commands.executeCommand('setContext', 'graft.merging', false);
      }
    }
  }

  /** A recipe problem opens the recipe at its line; any other failure says what failed. */
  private async reportFailure(uri: vscode.Uri, error: unknown, what: 'planned' | 'run'): Promise<void> {
    if (error instanceof RecipeError) {
      const first: RecipeProblem | undefined = error.problems[0];
      const more = error.problems.length > 1 ? ` (and ${error.problems.length - 1} more problem${error.problems.length > 2 ? 's' : ''}, marked in the editor)` : '';
      this.log.warn(`${uri.fsPath} cannot be ${what}: ${error.problems.map((p) => `${p.pos.line}:${p.pos.col} ${p.message}`).join('; ')}`);
      const position = new vscode.Position(Math.max(0, (first?.pos.line ?? 1) - 1), Math.max(0, (first?.pos.col ?? 1) - 1));
      await vscode.window.showTextDocument(uri, { selection: new vscode.Range(position, position), preserveFocus: false });
      void vscode.window.showErrorMessage(`The recipe cannot be ${what}: line ${first?.pos.line ?? 1}: ${first?.message ?? error.message}${more}`);
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    this.log.error(`Merge of ${uri.fsPath} failed:`, error);
    void vscode.window.showErrorMessage(`The merge failed: ${message}`, 'Show Log').then((choice) => choice && this.log.show());
  }

  dispose(): void {
    this.running?.abort();
    this.progressEmitter.dispose();
    this.finishedEmitter.dispose();
  }
}
