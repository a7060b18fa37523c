// Messages between the lineage graph panel (src/extension/webviews/lineagePanel.ts) and its
// webview (webview/lineage/).
import type { LineageGraph } from '../../core/lineage/types';

export type LineageToWebview =
  /** The whole graph (undefined while the first scan runs); sent after every 'ready' and on change. */
  | { type: 'graph'; graph: LineageGraph | undefined; scanning: boolean }
  /** A scan started or ended (the graph itself follows with 'graph' when it changed). */
  | { type: 'scanning'; scanning: boolean }
  /** Centre and select a node (show in graph). Sent after 'graph'; the webview keeps it until the node exists. */
  | { type: 'focus'; nodeId: string };

export type LineageToHost =
  | { type: 'ready' }
  /** A node was selected: reveal it in the sidebar tree. */
  | { type: 'reveal'; nodeId: string }
  /** Open the checkpoint inspector on a node. */
  | { type: 'inspect'; nodeId: string }
  /** Ask the host to rescan (the empty state's button). */
  | { type: 'refresh' }
  /** Save a rendering through the host's save dialog. */
  | { type: 'export'; format: 'svg'; suggestedName: string; data: string }
  /** Something failed inside the webview; the host logs it. */
  | { type: 'error'; message: string; detail?: string };

/** What the webview persists with setState so a reload restores the view. */
export interface LineageViewState {
  transform?: { k: number; x: number; y: number };
  selectedId?: string;
  search?: string;
}
