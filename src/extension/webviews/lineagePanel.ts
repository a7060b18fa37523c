// The "Lineage Graph" panel: one webview panel (re-shown if open) drawing the lineage graph with
// d3 (webview/lineage). The host sends the graph after every 'ready' (the webview reloads when
// hidden), forwards node clicks to the tree and the inspector, saves exports through the save
// dialog, and restores the panel after a window reload.
import * as vscode from 'vscode';
import type { LineageGraph } from '../../core/lineage/types';
import type { LineageToHost, LineageToWebview } from '../../shared/protocol/lineage';
import { saveExport } from './saveExport';
import { renderWebviewHtml, webviewOptions } from './html';

export const lineageGraphViewType = 'graft.lineageGraph';
const title = 'Lineage Graph';

export interface LineagePanelDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  /** undefined while the first scan runs. */
  getGraph(): LineageGraph | undefined;
  /** Fire -> the panel re-posts the graph. */
  onDidChangeGraph: vscode.Event<void>;
  /** Click a node: reveal it in the sidebar tree. */
  revealInTree(nodeId: string): void;
  /** Double-click / Inspect: open the inspector. */
  inspect(nodeId: string): void;
  isScanning(): boolean;
  /** Fires when a scan starts, progresses or ends; lets the panel show "Scanning…" without a new graph. */
  onDidChangeScanState?: vscode.Event<unknown>;
}

interface Session {
  panel: vscode.WebviewPanel;
  focus(nodeId: string): void;
}

export function registerLineagePanel(deps: LineagePanelDeps): vscode.Disposable & { show(focusNodeId?: string): void } {
  let current: Session | undefined;

  const attach = (panel: vscode.WebviewPanel): Session => {
    // The webview only hears messages while it is live: 'ready' marks that, hiding ends it.
    let ready = false;
    let pendingFocus: string | undefined;
    let sentScanning: boolean | undefined;
    const post = (message: LineageToWebview): void => {
      panel.webview.postMessage(message).then(undefined, (error: unknown) => deps.log.error(`Lineage graph: could not post '${message.type}': ${String(error)}`));
    };
    const sendGraph = (): void => {
      sentScanning = deps.isScanning();
      post({ type: 'graph', graph: deps.getGraph(), scanning: sentScanning });
    };
    const subscriptions: vscode.Disposable[] = [
      panel.webview.onDidReceiveMessage((message: LineageToHost) => {
        switch (message?.type) {
          case 'ready':
            ready = true;
            sendGraph();
            if (pendingFocus) post({ type: 'focus', nodeId: pendingFocus });
            pendingFocus = undefined;
            break;
          case 'reveal':
            if (typeof message.nodeId === 'string') deps.revealInTree(message.nodeId);
            break;
          case 'inspect':
            if (typeof message.nodeId === 'string') deps.inspect(message.nodeId);
            break;
          case 'refresh':
            void vscode.commands.executeCommand('graft.refresh');
            break;
          case 'export':
            if (message.format === 'svg') void saveExport({ format: 'svg', what: 'the lineage graph', suggestedName: message.suggestedName || 'lineage-graph.svg', data: message.data, folder: vscode.workspace.workspaceFolders?.[0]?.uri }, deps.log);
            break;
          case 'error':
            deps.log.error(`Lineage graph webview: ${message.message}${message.detail ? `\n${message.detail}` : ''}`);
            break;
        }
      }),
      deps.onDidChangeGraph(() => {
        if (ready) sendGraph();
      }),
      panel.onDidChangeViewState(() => {
        if (!panel.visible) ready = false;
      }),
    ];
    if (deps.onDidChangeScanState) {
      subscriptions.push(deps.onDidChangeScanState(() => {
        // Progress events are frequent; only a start or end is news to the view.
        const scanning = deps.isScanning();
        if (ready && scanning !== sentScanning) {
          sentScanning = scanning;
          post({ type: 'scanning', scanning });
        }
      }));
    }
    panel.onDidDispose(() => {
      for (const subscription of subscriptions) subscription.dispose();
      if (current?.panel === panel) current = undefined;
    });
    panel.webview.options = webviewOptions(deps.extensionUri);
    panel.iconPath = vscode.Uri.joinPath(deps.extensionUri, 'media', 'graft.svg');
    panel.webview.html = renderWebviewHtml(panel.webview, deps.extensionUri, 'lineage', title);
    return {
      panel,
      focus(nodeId) {
        if (ready) post({ type: 'focus', nodeId });
        else pendingFocus = nodeId;
      },
    };
  };

  const serializer = vscode.window.registerWebviewPanelSerializer(lineageGraphViewType, {
    async deserializeWebviewPanel(panel) {
      current?.panel.dispose();
      current = attach(panel);
    },
  });

  return {
    show(focusNodeId?: string) {
      if (current) current.panel.reveal();
      else {
        const panel = vscode.window.createWebviewPanel(lineageGraphViewType, title, vscode.ViewColumn.Active, webviewOptions(deps.extensionUri));
        current = attach(panel);
      }
      if (focusNodeId) current.focus(focusNodeId);
    },
    dispose() {
      serializer.dispose();
      current?.panel.dispose();
    },
  };
}

