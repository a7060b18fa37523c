// The extension's view of the user's models: scans the workspace folders, `graft.extraRoots` and
// the Hugging Face cache into a catalog, builds the lineage graph, keeps both current through
// file watchers, and persists them per workspace so a reopened window shows the last index at
// once while a background rescan (which re-reads only changed files) catches up.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CatalogCache, defaultHfCacheDir, scanCatalog } from '../../core/catalog';
import type { Catalog, CatalogEntry, ScanProgress } from '../../core/catalog/types';
import { CancelledError } from '../../core/engine/task';
import { buildLineage } from '../../core/lineage';
import type { LineageGraph, LineageNode } from '../../core/lineage/types';
import type { Engine } from '../engine';

/** Files whose creation, change or deletion can change the catalog. */
const WATCH_GLOB = '**/{*.safetensors,*.safetensors.index.json,*.gguf,*.bin,config.json,adapter_config.json,README.md,mergekit_config.yml,mergekit_config.yaml,trainer_state.json,graft_provenance.json}';
const RESCAN_DELAY_MS = 1500;
const SNAPSHOT_FILE = 'model-index.json';
// 2: patch entries and nodes (kind "patch").
const SNAPSHOT_VERSION = 2;

interface Snapshot {
  version: number;
  roots: string[];
  catalog: Catalog;
  graph: LineageGraph;
  cache: unknown;
}

export class ModelIndex implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly scanState = new vscode.EventEmitter<ScanProgress | undefined>();
  /** Fires after the catalog and graph changed. */
  readonly onDidChange = this.changed.event;
  /** Fires with progress while scanning, and undefined when a scan ends. */
  readonly onDidChangeScanState = this.scanState.event;

  catalog: Catalog | undefined;
  graph: LineageGraph | undefined;
  private cache = new CatalogCache();
  private scan: AbortController | undefined;
  private scanDone: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private watchers: vscode.Disposable[] = [];
  private entriesByPath = new Map<string, CatalogEntry>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly engine: Engine,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      this.changed,
      this.scanState,
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.rewatchAndRescan()),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration('graft.extraRoots') || event.affectsConfiguration('graft.huggingFaceCache') || event.affectsConfiguration('graft.lineage')) this.rewatchAndRescan();
      }),
    );
  }

  get scanning(): boolean {
    return this.scan !== undefined;
  }

  /** Shows the persisted index (if any), then rescans in the background. */
  async start(): Promise<void> {
    await this.restoreSnapshot();
    this.watch();
    void this.refresh('startup');
  }

  /** Rescans now, cancelling a scan in progress. Resolves when the new index is in place. */
  refresh(reason: string): Promise<void> {
    clearTimeout(this.timer);
    this.scan?.abort();
    const controller = new AbortController();
    this.scan = controller;
    const run = this.runScan(controller, reason).finally(() => {
      if (this.scan === controller) {
        this.scan = undefined;
        this.scanState.fire(undefined);
      }
    });
    this.scanDone = run;
    return run;
  }

  /** Resolves when the scan in progress (if any) has finished. */
  async whenIdle(): Promise<void> {
    while (this.scanDone) {
      const current = this.scanDone;
      await current;
      if (current === this.scanDone) break;
    }
  }

  cancel(): void {
    if (!this.scan) return;
    this.scan.abort();
    this.log.info('Checkpoint scan cancelled; the tree keeps the last complete index.');
  }

  /** The catalog entry at an absolute path (a model folder or a checkpoint file). */
  entryAt(fsPath: string): CatalogEntry | undefined {
    return this.entriesByPath.get(path.resolve(fsPath));
  }

  /** The catalog entry holding `fsPath` (the path itself, a file inside a model folder, or a shard). */
  entryContaining(fsPath: string): CatalogEntry | undefined {
    const resolved = path.resolve(fsPath);
    const direct = this.entriesByPath.get(resolved);
    if (direct) return direct;
    return this.catalog?.entries.find((e) => e.weightFiles.includes(resolved) || e.sources.some((s) => s.path === resolved));
  }

  node(id: string): LineageNode | undefined {
    return this.graph?.nodes.find((n) => n.id === id);
  }

  nodeForEntry(entry: CatalogEntry): LineageNode | undefined {
    return this.graph?.nodes.find((n) => n.locations?.includes(entry.path));
  }

  /** The first catalog entry behind a graph node (external hub nodes have none). */
  entryForNode(node: LineageNode): CatalogEntry | undefined {
    for (const location of node.locations ?? []) {
      const entry = this.entriesByPath.get(location);
      if (entry) return entry;
    }
    return undefined;
  }

  /** Folders to scan: workspace folders, graft.extraRoots (with ~ expanded). */
  roots(): string[] {
    const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
    const extra = vscode.workspace
      .getConfiguration('graft')
      .get<string[]>('extraRoots', [])
      .filter((r) => typeof r === 'string' && r.trim())
      .map((r) => path.resolve(r.trim().replace(/^~(?=$|[\\/])/, os.homedir())));
    return [...new Set([...folders, ...extra])];
  }

  private hfCacheDir(): string | null {
    const config = vscode.workspace.getConfiguration('graft');
    if (!config.get<boolean>('huggingFaceCache.enabled', true)) return null;
    const configured = config.get<string>('huggingFaceCache.path', '').trim();
    if (configured) return path.resolve(configured.replace(/^~(?=$|[\\/])/, os.homedir()));
    // The default location often doesn't exist (no model was ever downloaded): not a problem to report.
    const found = defaultHfCacheDir(process.env, os.homedir());
    return found && fs.existsSync(found) ? found : null;
  }

  private async runScan(controller: AbortController, reason: string): Promise<void> {
    const roots = this.roots();
    const hfCache = this.hfCacheDir();
    const started = performance.now();
    void vscode.commands.executeCommand('setContext', 'graft.scanning', true);
    try {
      const catalog = await vscode.window.withProgress({ location: { viewId: 'graft.lineage' } }, () =>
        scanCatalog(roots, {
          hfCache,
          signal: controller.signal,
          cache: this.cache,
          onProgress: (p) => this.scanState.fire(p),
          // Folders are listed and their headers, cards and configs parsed on worker threads: a
          // stranger's file can take its time there without freezing the window.
          runner: this.engine,
        }),
      );
      const infer = vscode.workspace.getConfiguration('graft').get<boolean>('lineage.inferFromWeights', true);
      const graph = await buildLineage(catalog, { root: roots[0] ?? os.homedir(), infer, runner: this.engine, signal: controller.signal, cache: this.cache });
      if (controller.signal.aborted) return;
      this.apply(catalog, graph);
      this.log.info(`Scan (${reason}): ${catalog.entries.length} checkpoints, ${graph.edges.length} lineage edges in ${(performance.now() - started).toFixed(0)} ms over ${roots.length} folder(s)${hfCache ? ' and the Hugging Face cache' : ''}.`);
      for (const problem of catalog.problems) this.log.warn(`Scan: ${problem.path}: ${problem.message}`);
      await this.saveSnapshot(roots);
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      const message = error instanceof Error ? error.message : String(error);
      this.log.error(`Checkpoint scan failed: ${message}`);
      void vscode.window.showErrorMessage(`Graft could not scan for checkpoints: ${message}`, 'Show Log').then((choice) => choice && this.log.show());
    } finally {
      if (this.scan === controller) void vscode.commands.executeCommand('setContext', 'graft.scanning', false);
    }
  }

  private apply(catalog: Catalog, graph: LineageGraph): void {
    this.catalog = catalog;
    this.graph = graph;
    this.entriesByPath = new Map(catalog.entries.map((e) => [e.path, e]));
    this.changed.fire();
  }

  private snapshotUri(): vscode.Uri {
    return vscode.Uri.joinPath(this.context.storageUri ?? this.context.globalStorageUri, SNAPSHOT_FILE);
  }

  private async restoreSnapshot(): Promise<void> {
    try {
      const bytes = await vscode.workspace.fs.readFile(this.snapshotUri());
      const snapshot = JSON.parse(Buffer.from(bytes).toString('utf8')) as Snapshot;
      if (snapshot.version !== SNAPSHOT_VERSION || JSON.stringify(snapshot.roots) !== JSON.stringify(this.roots())) return;
      this.cache = CatalogCache.fromJSON(snapshot.cache);
      this.apply(snapshot.catalog, snapshot.graph);
      this.log.info(`Restored the last index (${snapshot.catalog.entries.length} checkpoints); refreshing in the background.`);
    } catch {
      // No snapshot yet, or one from an older version: the first scan builds it.
    }
  }

  private async saveSnapshot(roots: string[]): Promise<void> {
    if (!this.catalog || !this.graph) return;
    const snapshot: Snapshot = { version: SNAPSHOT_VERSION, roots, catalog: this.catalog, graph: this.graph, cache: this.cache.toJSON() };
    const uri = this.snapshotUri();
    try {
      await vscode.workspace.fs.createDirectory(vscode.Uri.joinPath(uri, '..'));
      await vscode.workspace.fs.writeFile(uri, Buffer.from(JSON.stringify(snapshot)));
    } catch (error) {
      this.log.warn(`Could not save the model index for the next session: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private watch(): void {
    for (const w of this.watchers) w.dispose();
    const hfCache = this.hfCacheDir();
    const folders = [...this.roots(), ...(hfCache ? [hfCache] : [])];
    this.watchers = folders.flatMap((folder) => {
      const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(folder), WATCH_GLOB));
      const schedule = () => this.scheduleRescan();
      return [watcher, watcher.onDidCreate(schedule), watcher.onDidChange(schedule), watcher.onDidDelete(schedule)];
    });
  }

  private rewatchAndRescan(): void {
    this.watch();
    void this.refresh('settings or folders changed');
  }

  /** Bursts of file events (a trainer writing shards) collapse into one incremental rescan. */
  private scheduleRescan(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh('files changed'), RESCAN_DELAY_MS);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.scan?.abort();
    for (const d of [...this.disposables, ...this.watchers]) d.dispose();
  }
}
