// The lineage feature: the model index, the sidebar tree, the graph webview, the scan status and
// the commands that navigate between them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Engine } from '../engine';
import { inspectableFileOfEntry, isLineageElement, openInspector, pathOf } from '../targets';
import { registerLineagePanel } from '../webviews/lineagePanel';
import { LineageTreeProvider, type LineageElement } from './lineageTree';
import { ModelIndex } from './modelIndex';

export function registerLineage(context: vscode.ExtensionContext, engine: Engine, log: vscode.LogOutputChannel): { index: ModelIndex; tree: LineageTreeProvider } {
  const index = new ModelIndex(context, engine, log);
  const tree = new LineageTreeProvider(index);
  const view = vscode.window.createTreeView('graft.lineage', { treeDataProvider: tree, showCollapseAll: true, canSelectMany: true });

  const revealNode = async (nodeId: string) => {
    const element = tree.elementFor(nodeId);
    if (element) await view.reveal(element, { select: true, focus: true, expand: true });
  };
  const inspectNode = async (nodeId: string) => {
    const node = index.node(nodeId);
    const entry = node && index.entryForNode(node);
    const file = entry && inspectableFileOfEntry(entry);
    if (file) await openInspector(file);
    else void vscode.window.showInformationMessage(`${node?.label ?? nodeId} is not on disk as a safetensors checkpoint, so there is nothing to inspect.`);
  };
  const graphPanel = registerLineagePanel({
    extensionUri: context.extensionUri,
    log,
    getGraph: () => index.graph,
    onDidChangeGraph: index.onDidChange,
    revealInTree: (id) => void revealNode(id),
    inspect: (id) => void inspectNode(id),
    isScanning: () => index.scanning,
    onDidChangeScanState: index.onDidChangeScanState,
  });

  // Scan status: counts while scanning, in the view's message and the status bar.
  const status = vscode.window.createStatusBarItem('graft.scan', vscode.StatusBarAlignment.Left, 10);
  status.name = 'Graft Scan';
  status.command = 'graft.cancelScan';
  status.tooltip = 'Scanning for checkpoints. Click to cancel.';
  const updateMessage = () => {
    const count = index.catalog?.entries.length ?? 0;
    const problems = index.catalog?.problems.length ?? 0;
    view.message = index.catalog && problems ? `${count} checkpoints; ${problems} could not be read (see Graft: Show Log).` : undefined;
  };

  context.subscriptions.push(
    index,
    tree,
    view,
    graphPanel,
    status,
    index.onDidChange(updateMessage),
    index.onDidChangeScanState((progress) => {
      if (!progress) {
        status.hide();
        updateMessage();
        return;
      }
      status.text = `$(sync~spin) Graft: ${progress.found} checkpoints · ${progress.files.toLocaleString()} files`;
      status.show();
    }),
    vscode.commands.registerCommand('graft.refresh', () => index.refresh('refresh command')),
    vscode.commands.registerCommand('graft.cancelScan', () => index.cancel()),
    vscode.commands.registerCommand('graft.showLineageGraph', () => graphPanel.show()),
    vscode.commands.registerCommand('graft.showInGraph', (arg?: unknown) => {
      const node = nodeIdOf(arg, index);
      graphPanel.show(node);
    }),
    vscode.commands.registerCommand('graft.showInLineage', async (arg?: unknown) => {
      await index.whenIdle();
      const node = nodeIdOf(arg, index);
      if (!node) {
        void vscode.window.showInformationMessage(`${path.basename(pathOf(arg) ?? 'This item')} is not in the lineage index. Graft indexes safetensors checkpoints, sharded sets, adapters, trainer checkpoints and GGUF files; run "Graft: Refresh Checkpoints" if it was just written.`);
        return;
      }
      await vscode.commands.executeCommand('graft.lineage.focus');
      await revealNode(node);
    }),
    vscode.commands.registerCommand('graft.openModelCard', async (arg?: unknown) => {
      const target = pathOf(arg);
      const card = target && findCard(target);
      if (!card) {
        void vscode.window.showInformationMessage('This model has no README.md model card on disk.');
        return;
      }
      await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(card));
    }),
    vscode.commands.registerCommand('graft.revealInExplorer', async (arg?: unknown) => {
      const target = pathOf(arg);
      if (target) await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(target));
    }),
  );

  void index.start();
  return { index, tree };
}

/** The graph node an argument refers to: a tree element, or a path inside an indexed model. */
function nodeIdOf(arg: unknown, index: ModelIndex): string | undefined {
  if (isLineageElement(arg)) return (arg as LineageElement).node.id;
  const target = pathOf(arg);
  if (!target) return undefined;
  const entry = index.entryContaining(target) ?? index.entryContaining(path.dirname(target));
  return entry && index.nodeForEntry(entry)?.id;
}

function findCard(target: string): string | undefined {
  const folder = fs.existsSync(target) && fs.statSync(target).isDirectory() ? target : path.dirname(target);
  const card = path.join(folder, 'README.md');
  return fs.existsSync(card) ? card : undefined;
}
