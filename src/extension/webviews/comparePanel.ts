// The Compare panel: one webview per (a, b, base). Opens the checkpoints, shows a sampled diff at
// once, refines it to the exact diff on the worker pool with progress and cancel, keeps finished
// reports (in memory and in the workspace storage) while the inputs are unchanged, computes a
// tensor's detail on request, and saves exports where the user chooses.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { diffCacheKey, diffCheckpoints } from '../../core/diff';
import type { DiffReport } from '../../core/diff/types';
import type { TaskRunner } from '../../core/engine/pool';
import { CancelledError } from '../../core/engine/task';
import { openCheckpoint } from '../../core/safetensors';
import type { CheckpointLayout } from '../../core/safetensors/types';
import type { CompareErrorView, ComparePhase, CompareState, CompareToHost, CompareToWebview } from '../../shared/protocol/compare';
import type { GraftTasks } from '../../worker/tasks';
import { saveExport } from './saveExport';
import { renderWebviewHtml, webviewOptions } from './html';

export const COMPARE_VIEW_TYPE = 'graft.compare';

export interface ComparePanelDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  runner: TaskRunner<GraftTasks>;
  /** context.storageUri: finished reports are saved here, keyed by diffCacheKey. */
  storageUri: vscode.Uri | undefined;
}

export interface CompareSide {
  path: string;
  label: string;
}

export interface CompareRequest {
  a: CompareSide;
  b: CompareSide;
  base?: CompareSide;
}

/** Progress messages to the webview at most this often. */
const PROGRESS_INTERVAL_MS = 100;
/** Partial exact reports (tensors refined so far) at most this often. */
const PARTIAL_INTERVAL_MS = 1000;

export function registerComparePanel(deps: ComparePanelDeps): vscode.Disposable & { show(request: CompareRequest): void } {
  const cache = new ReportCache(deps.storageUri, deps.log);
  const sessions = new Map<string, CompareSession>();

  const attach = (panel: vscode.WebviewPanel, request: CompareRequest): CompareSession => {
    const key = requestKey(request);
    const session = new CompareSession(panel, request, deps, cache, () => {
      if (sessions.get(key) === session) sessions.delete(key);
    });
    sessions.set(key, session);
    void session.start(false);
    return session;
  };

  const show = (request: CompareRequest): void => {
    const existing = sessions.get(requestKey(request));
    if (existing) {
      existing.panel.reveal();
      return;
    }
    const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, panelTitle(request), vscode.ViewColumn.Active, { ...webviewOptions(deps.extensionUri), retainContextWhenHidden: false });
    attach(panel, request);
  };

  const serializer = vscode.window.registerWebviewPanelSerializer(COMPARE_VIEW_TYPE, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
      panel.webview.options = webviewOptions(deps.extensionUri);
      const request = requestFromState(state);
      if (!request) {
        deps.log.warn('A Compare panel could not be restored: its saved state names no checkpoints.');
        panel.dispose();
        return;
      }
      const duplicate = sessions.get(requestKey(request));
      if (duplicate) {
        panel.dispose();
        duplicate.panel.reveal();
        return;
      }
      panel.title = panelTitle(request);
      attach(panel, request);
    },
  });

  return {
    show,
    dispose() {
      serializer.dispose();
      for (const session of [...sessions.values()]) session.panel.dispose();
      sessions.clear();
    },
  };
}

function panelTitle(request: CompareRequest): string {
  return `${request.a.label} ↔ ${request.b.label}`;
}

function requestKey(request: CompareRequest): string {
  return JSON.stringify([path.resolve(request.a.path), path.resolve(request.b.path), request.base ? path.resolve(request.base.path) : null]);
}

function requestFromState(state: unknown): CompareRequest | undefined {
  const request = (state as CompareState | undefined)?.request;
  const side = (value: unknown): CompareSide | undefined => {
    const s = value as CompareSide | undefined;
    return s && typeof s.path === 'string' && typeof s.label === 'string' ? { path: s.path, label: s.label } : undefined;
  };
  const a = side(request?.a);
  const b = side(request?.b);
  if (!a || !b) return undefined;
  const base = side(request?.base);
  return base ? { a, b, base } : { a, b };
}

/** Which input could not be opened, and why. */
class OpenError extends Error {
  constructor(
    readonly side: CompareSide,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = 'OpenError';
  }
}

interface Layouts {
  a: CheckpointLayout;
  b: CheckpointLayout;
  base?: CheckpointLayout;
}

/** One open Compare panel and the comparison it shows. */
class CompareSession {
  private ready = false;
  private layouts: Layouts | undefined;
  private key: string | undefined;
  private shown: { report: DiffReport; mode: 'quick' | 'exact'; fromCache: boolean; elapsedMs?: number } | undefined;
  private status: { phase: ComparePhase; progress?: number; message?: string } = { phase: 'opening' };
  private error: CompareErrorView | undefined;
  private running: AbortController | undefined;
  private readonly detailRuns = new Set<AbortController>();
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;

  constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly request: CompareRequest,
    private readonly deps: ComparePanelDeps,
    private readonly cache: ReportCache,
    private readonly onDispose: () => void,
  ) {
    panel.webview.html = renderWebviewHtml(panel.webview, deps.extensionUri, 'compare', panelTitle(request));
    this.disposables.push(
      panel.webview.onDidReceiveMessage((message: CompareToHost) => this.onMessage(message)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  /** Opens the inputs, then shows a saved report or computes one (sampled first, then exact). */
  async start(recompute: boolean): Promise<void> {
    this.running?.abort();
    const controller = new AbortController();
    this.running = controller;
    const signal = controller.signal;
    const current = () => this.running === controller && !this.disposed;
    this.error = undefined;
    this.setStatus({ phase: 'opening', message: `Reading the headers of ${this.request.base ? 'three' : 'both'} checkpoints…` });

    try {
      this.layouts = await this.open();
    } catch (error) {
      if (current()) this.failToOpen(error);
      return;
    }
    if (!current()) return;
    const { a, b, base } = this.layouts;
    const inB = new Set(b.tensors.map((t) => t.name));
    if (!a.tensors.some((t) => inB.has(t.name))) {
      this.showError({
        title: 'Nothing to compare',
        message: `${this.request.a.label} has ${a.tensors.length} tensors and ${this.request.b.label} has ${b.tensors.length}, but no tensor name appears in both.`,
        hint: 'These look like different architectures. Compare checkpoints of the same model family, such as a fine-tune and the model it started from.',
      });
      return;
    }

    const previousKey = this.key;
    const key = await diffCacheKey(a, b, base);
    if (!current()) return;
    this.key = key;
    if (!recompute) {
      const cached = await this.cache.get(key);
      if (!current()) return;
      if (cached) {
        this.show(cached, 'exact', true);
        this.setStatus({ phase: 'done' });
        this.deps.log.info(`Compare ${panelTitle(this.request)}: reused the saved report (inputs unchanged).`);
        return;
      }
    }

    const runner = this.deps.runner;
    const started = Date.now();
    try {
      const quickFirst = vscode.workspace.getConfiguration('graft').get<boolean>('compare.quickFirst', true);
      // A report of these very inputs is already on screen (sampled after a cancel, or exact when
      // recomputing): keep it there while the exact pass runs instead of sampling again.
      const onScreen = this.shown !== undefined && previousKey === key;
      if (quickFirst && !onScreen) {
        this.setStatus({ phase: 'quick' });
        const quick = await diffCheckpoints(runner, a, b, { base, mode: 'quick', signal });
        if (!current()) return;
        this.show(quick, 'quick', false, Date.now() - started);
      }
      const quick = this.shown?.mode === 'quick' ? this.shown.report : undefined;
      this.setStatus({ phase: 'exact', progress: 0 });
      let lastProgress = 0;
      let lastPartial = Date.now();
      const exactStarted = Date.now();
      const exact = await diffCheckpoints(runner, a, b, {
        base,
        mode: 'exact',
        signal,
        onProgress: (fraction) => {
          const now = Date.now();
          if (!current() || (now - lastProgress < PROGRESS_INTERVAL_MS && fraction < 1)) return;
          lastProgress = now;
          this.setStatus({ phase: 'exact', progress: fraction });
        },
        onPartial: (partial) => {
          // Exact figures replace sampled ones as tensors finish; the summary stays sampled.
          if (!quick || !current() || Date.now() - lastPartial < PARTIAL_INTERVAL_MS) return;
          lastPartial = Date.now();
          const refined = new Map(partial.tensors.map((t) => [t.name, t]));
          this.show({ ...quick, tensors: quick.tensors.map((t) => refined.get(t.name) ?? t) }, 'quick', false);
        },
      });
      if (!current()) return;
      const elapsed = Date.now() - exactStarted;
      this.show(exact, 'exact', false, elapsed);
      const took = elapsed < 1000 ? `${elapsed} ms` : `${(elapsed / 1000).toFixed(1)} s`;
      this.setStatus({ phase: 'done', message: `Compared ${exact.summary.tensors.toLocaleString('en-US')} tensors (${exact.summary.numel.toLocaleString('en-US')} elements) in ${took}.` });
      this.deps.log.info(`Compare ${panelTitle(this.request)}: exact report of ${exact.summary.tensors} tensors in ${elapsed} ms.`);
      await this.cache.set(key, exact);
    } catch (error) {
      if (!current()) return;
      if (error instanceof CancelledError || signal.aborted) {
        this.setStatus({ phase: 'cancelled' });
        this.deps.log.info(`Compare ${panelTitle(this.request)}: cancelled.`);
        return;
      }
      this.deps.log.error(`Compare ${panelTitle(this.request)} failed:`, error);
      this.showError({
        title: 'The comparison failed',
        message: error instanceof Error ? error.message : String(error),
        hint: 'If a checkpoint is still being written (for example by a training run), wait until it is complete and try again. Details are in the log (Graft: Show Log).',
      });
    } finally {
      if (this.running === controller) this.running = undefined;
    }
  }

  private async open(): Promise<Layouts> {
    const openSide = async (side: CompareSide): Promise<CheckpointLayout> => {
      try {
        return await openCheckpoint(side.path);
      } catch (cause) {
        throw new OpenError(side, cause);
      }
    };
    const [a, b, base] = await Promise.all([openSide(this.request.a), openSide(this.request.b), this.request.base ? openSide(this.request.base) : undefined]);
    return { a, b, base };
  }

  private failToOpen(error: unknown): void {
    const side = error instanceof OpenError ? error.side : this.request.a;
    const cause = error instanceof OpenError ? error.cause : error;
    const message = cause instanceof Error ? cause.message : String(cause);
    this.deps.log.error(`Compare ${panelTitle(this.request)}: cannot open ${side.path}:`, cause);
    this.showError({
      title: `Cannot open ${side.label}`,
      message,
      hint: 'Compare .safetensors files, Hugging Face model folders (model.safetensors or a sharded set) or *.safetensors.index.json files. If the checkpoint moved, start the comparison again from its new place.',
    });
  }

  private onMessage(message: CompareToHost): void {
    switch (message.type) {
      case 'ready':
        this.ready = true;
        this.sendSnapshot();
        break;
      case 'cancel':
        this.running?.abort();
        break;
      case 'rerun':
        void this.start(this.status.phase === 'done');
        break;
      case 'detail':
        void this.detail(message.requestId, message.name, message.bins);
        break;
      case 'swapLayers':
        void vscode.commands.executeCommand('graft.swapLayersFromB', { a: this.request.a.path, b: this.request.b.path, layers: message.layers });
        break;
      case 'export':
        void saveExport({ format: message.format, what: 'the comparison', suggestedName: message.suggestedName, data: message.data, folder: this.exportFolder() }, this.deps.log);
        break;
    }
  }

  /** Everything the webview shows, for its first load and after a reload. */
  private sendSnapshot(): void {
    this.post({ type: 'init', request: this.request });
    if (this.shown) this.post({ type: 'report', ...this.shown });
    this.post({ type: 'status', ...this.status });
    if (this.error) this.post({ type: 'error', error: this.error });
  }

  private async detail(requestId: number, name: string, bins: number): Promise<void> {
    const a = this.layouts?.a.tensors.find((t) => t.name === name);
    const b = this.layouts?.b.tensors.find((t) => t.name === name);
    if (!a || !b) {
      this.post({ type: 'detailError', requestId, name, message: `${name} is not in both checkpoints any more; run the comparison again.` });
      return;
    }
    const controller = new AbortController();
    this.detailRuns.add(controller);
    try {
      const detail = await this.deps.runner.run('tensorDiffDetail', { a, b, bins }, { signal: controller.signal });
      this.post({ type: 'detail', requestId, detail });
    } catch (error) {
      if (error instanceof CancelledError || this.disposed) return;
      this.deps.log.error(`Tensor detail of ${name} failed:`, error);
      this.post({ type: 'detailError', requestId, name, message: error instanceof Error ? error.message : String(error) });
    } finally {
      this.detailRuns.delete(controller);
    }
  }

  private show(report: DiffReport, mode: 'quick' | 'exact', fromCache: boolean, elapsedMs?: number): void {
    this.shown = { report, mode, fromCache, elapsedMs };
    this.post({ type: 'report', report, mode, fromCache, elapsedMs });
  }

  private setStatus(status: { phase: ComparePhase; progress?: number; message?: string }): void {
    this.status = status;
    if (status.phase !== 'failed') this.error = undefined;
    this.post({ type: 'status', ...status });
  }

  private showError(error: CompareErrorView): void {
    this.error = error;
    this.status = { phase: 'failed' };
    this.post({ type: 'status', ...this.status });
    this.post({ type: 'error', error });
  }

  private post(message: CompareToWebview): void {
    // Before 'ready' the webview has no listener; the snapshot sent on 'ready' carries the state.
    if (this.ready && !this.disposed) void this.panel.webview.postMessage(message);
  }

  private exportFolder(): vscode.Uri {
    return vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(path.resolve(this.request.b.path)));
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.running?.abort();
    for (const controller of this.detailRuns) controller.abort();
    for (const d of this.disposables) d.dispose();
    this.onDispose();
  }
}

/**
 * Finished exact reports by diffCacheKey: a few in memory, more as JSON files in the workspace
 * storage (the oldest are removed), so reopening a comparison of unchanged inputs is instant.
 */
class ReportCache {
  private static readonly MEMORY_ENTRIES = 8;
  private static readonly DISK_ENTRIES = 32;
  private readonly memory = new Map<string, DiffReport>();
  private readonly folder: vscode.Uri | undefined;

  constructor(
    storageUri: vscode.Uri | undefined,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.folder = storageUri && vscode.Uri.joinPath(storageUri, 'compare-cache');
  }

  async get(key: string): Promise<DiffReport | undefined> {
    const inMemory = this.memory.get(key);
    if (inMemory) {
      this.remember(key, inMemory);
      return inMemory;
    }
    if (!this.folder) return undefined;
    try {
      const bytes = await vscode.workspace.fs.readFile(this.fileOf(key));
      const report = JSON.parse(Buffer.from(bytes).toString('utf8')) as DiffReport;
      if (!Array.isArray(report.tensors) || !report.summary || report.summary.mode !== 'exact') return undefined;
      this.remember(key, report);
      return report;
    } catch (error) {
      if (!(error instanceof vscode.FileSystemError && error.code === 'FileNotFound')) this.log.warn(`Ignoring an unreadable saved comparison (${key}): ${String(error)}`);
      return undefined;
    }
  }

  async set(key: string, report: DiffReport): Promise<void> {
    this.remember(key, report);
    if (!this.folder) return;
    try {
      await vscode.workspace.fs.createDirectory(this.folder);
      await vscode.workspace.fs.writeFile(this.fileOf(key), Buffer.from(JSON.stringify(report), 'utf8'));
      await this.prune();
    } catch (error) {
      this.log.warn(`Could not save the comparison for reuse: ${String(error)}`);
    }
  }

  private remember(key: string, report: DiffReport): void {
    this.memory.delete(key);
    this.memory.set(key, report);
    while (this.memory.size > ReportCache.MEMORY_ENTRIES) this.memory.delete(this.memory.keys().next().value!);
  }

  private fileOf(key: string): vscode.Uri {
    return vscode.Uri.joinPath(this.folder!, `${key.replace(/[^\w-]/g, '_')}.json`);
  }

  private async prune(): Promise<void> {
    const entries = (await vscode.workspace.fs.readDirectory(this.folder!)).filter(([name, type]) => type === vscode.FileType.File && name.endsWith('.json'));
    if (entries.length <= ReportCache.DISK_ENTRIES) return;
    const dated = await Promise.all(entries.map(async ([name]) => ({ uri: vscode.Uri.joinPath(this.folder!, name), mtime: (await vscode.workspace.fs.stat(vscode.Uri.joinPath(this.folder!, name))).mtime })));
    dated.sort((x, y) => y.mtime - x.mtime);
    for (const stale of dated.slice(ReportCache.DISK_ENTRIES)) await vscode.workspace.fs.delete(stale.uri);
  }
}
