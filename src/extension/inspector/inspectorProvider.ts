// The read-only custom editor for *.safetensors and *.safetensors.index.json: reads headers only
// (validated like the reference library), sends the summary to the webview, and computes a
// tensor's statistics on the worker pool when the user selects it.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CancelledError } from '../../core/engine/task';
import { openCheckpoint, SafetensorsError } from '../../core/safetensors';
import type { CheckpointLayout } from '../../core/safetensors/types';
import { computeTensorStats } from '../../core/stats';
import type { InspectorError, InspectorSummary, InspectorToHost, InspectorToWebview } from '../../shared/protocol/inspector';
import { summarizeCheckpoint } from './summary';
import type { Engine } from '../engine';
import { INSPECTOR_VIEW_TYPE } from '../targets';
import { renderWebviewHtml, webviewOptions } from '../webviews/html';

class CheckpointDocument implements vscode.CustomDocument {
  constructor(readonly uri: vscode.Uri) {}
  dispose(): void {}
}

export class InspectorProvider implements vscode.CustomReadonlyEditorProvider<CheckpointDocument> {
  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly engine: Engine,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  static register(extensionUri: vscode.Uri, engine: Engine, log: vscode.LogOutputChannel): vscode.Disposable {
    const provider = new InspectorProvider(extensionUri, engine, log);
    return vscode.window.registerCustomEditorProvider(INSPECTOR_VIEW_TYPE, provider, { supportsMultipleEditorsPerDocument: true });
  }

  openCustomDocument(uri: vscode.Uri): CheckpointDocument {
    return new CheckpointDocument(uri);
  }

  resolveCustomEditor(document: CheckpointDocument, panel: vscode.WebviewPanel): void {
    new InspectorSession(document.uri, panel, this.extensionUri, this.engine, this.log);
  }
}

/** One open inspector: owns its webview, the loaded layout and the running statistics request. */
class InspectorSession {
  private layout: CheckpointLayout | undefined;
  private summary: InspectorSummary | undefined;
  private error: InspectorError | undefined;
  private loading: Promise<void> | undefined;
  private stats: AbortController | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly uri: vscode.Uri,
    private readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private readonly engine: Engine,
    private readonly log: vscode.LogOutputChannel,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = renderWebviewHtml(panel.webview, extensionUri, 'inspector', path.basename(uri.fsPath));
    this.disposables.push(
      panel.webview.onDidReceiveMessage((message: InspectorToHost) => this.onMessage(message)),
      panel.onDidDispose(() => this.dispose()),
    );
    // Reload when the checkpoint is rewritten on disk (a trainer saving over it, a merge finishing).
    const folder = vscode.Uri.file(path.dirname(uri.fsPath));
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, path.basename(uri.fsPath)));
    this.disposables.push(watcher, watcher.onDidChange(() => this.reload()), watcher.onDidCreate(() => this.reload()));
  }

  private post(message: InspectorToWebview): void {
    void this.panel.webview.postMessage(message);
  }

  private onMessage(message: InspectorToHost): void {
    switch (message.type) {
      case 'ready':
        void this.sendState();
        break;
      case 'selectTensor':
        void this.computeStats(message.name);
        break;
      case 'cancelStats':
        this.stats?.abort();
        break;
      case 'copy':
        void vscode.env.clipboard.writeText(message.text);
        break;
    }
  }

  private reload(): void {
    this.layout = undefined;
    this.summary = undefined;
    this.error = undefined;
    this.loading = undefined;
    void this.sendState();
  }

  private async sendState(): Promise<void> {
    this.post({ type: 'loading', fileName: path.basename(this.uri.fsPath) });
    this.loading ??= this.load();
    await this.loading;
    if (this.error) this.post({ type: 'error', error: this.error });
    else if (this.summary) this.post({ type: 'summary', summary: this.summary });
  }

  private async load(): Promise<void> {
    const started = performance.now();
    try {
      this.layout = await openCheckpoint(this.uri.fsPath);
      this.summary = summarizeCheckpoint(this.layout, performance.now() - started);
      this.log.info(`Inspector: ${this.uri.fsPath}: ${this.layout.tensors.length} tensors in ${this.summary.loadMs.toFixed(1)} ms`);
    } catch (error) {
      this.error = describeLoadError(error, this.uri.fsPath);
      this.log.warn(`Inspector: ${this.uri.fsPath}: ${this.error.message}`);
    }
  }

  private async computeStats(name: string): Promise<void> {
    this.stats?.abort();
    const ref = this.layout?.tensors.find((t) => t.name === name);
    if (!ref) return;
    const controller = new AbortController();
    this.stats = controller;
    const started = performance.now();
    try {
      const bins = vscode.workspace.getConfiguration('graft').get<number>('inspector.histogramBins', 64);
      const stats = await computeTensorStats(this.engine, ref, {
        signal: controller.signal,
        histogramBins: bins,
        onProgress: (fraction) => this.post({ type: 'statsProgress', name, fraction }),
      });
      if (!controller.signal.aborted) this.post({ type: 'stats', name, stats, ms: performance.now() - started });
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      const message = error instanceof Error ? error.message : String(error);
      this.log.error(`Statistics of ${name} in ${this.uri.fsPath} failed: ${message}`);
      this.post({ type: 'statsError', name, message });
    }
  }

  private dispose(): void {
    this.stats?.abort();
    for (const d of this.disposables) d.dispose();
  }
}

function describeLoadError(error: unknown, file: string): InspectorError {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof SafetensorsError) {
    return {
      title: 'This file is not a valid safetensors checkpoint',
      message,
      rule: (error as SafetensorsError & { rule?: string }).rule,
      hint: 'It was rejected by the same rules the reference safetensors library applies, so PyTorch and transformers would refuse it too. Re-download or re-export the checkpoint; run `graft validate` on it for details.',
    };
  }
  return {
    title: `Could not open ${path.basename(file)}`,
    message,
    hint: 'Check that the file exists, is readable, and (for an index.json) that every shard it names is in the same folder.',
  };
}
