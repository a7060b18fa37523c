// Messages between the Compare panel (src/extension/webviews/comparePanel.ts) and its webview
// (webview/compare/), and the result of the tensor detail kernel (src/core/diff/detail.ts).
import type { DiffReport, TensorDiffDetail } from '../../core/diff/types';

export type { TensorDiffDetail };

/** One side of a comparison as the user picked it. */
export interface CompareSideView {
  path: string;
  label: string;
}

export interface CompareRequestView {
  a: CompareSideView;
  b: CompareSideView;
  base?: CompareSideView;
}

export type ExportFormat = 'png' | 'svg' | 'csv' | 'json';

/** Which stage the comparison is in; drives the progress line and the "Sampled — refining…" badge. */
export type ComparePhase = 'opening' | 'quick' | 'exact' | 'done' | 'cancelled' | 'failed';

export interface CompareErrorView {
  /** What failed, e.g. "Cannot open tiny-llama-math". */
  title: string;
  /** The underlying error message. */
  message: string;
  /** What to do about it. */
  hint: string;
}

export type CompareToWebview =
  | { type: 'init'; request: CompareRequestView }
  | { type: 'status'; phase: ComparePhase; progress?: number; message?: string }
  | { type: 'report'; report: DiffReport; mode: 'quick' | 'exact'; fromCache: boolean; elapsedMs?: number }
  | { type: 'error'; error: CompareErrorView }
  | { type: 'detail'; requestId: number; detail: TensorDiffDetail }
  | { type: 'detailError'; requestId: number; name: string; message: string };

export type CompareToHost =
  | { type: 'ready' }
  | { type: 'cancel' }
  /** Run the exact comparison again (after a cancel, an error, or to recompute a cached result). */
  | { type: 'rerun' }
  | { type: 'detail'; requestId: number; name: string; bins: number }
  /** data: text for svg/csv/json, base64 for png. */
  | { type: 'export'; format: ExportFormat; suggestedName: string; data: string }
  /** Build a passthrough recipe: a's layers, with these (of the numbered stack) taken from b. */
  | { type: 'swapLayers'; layers: number[] };

/** What the webview persists (getState/setState) and what the panel serializer revives from. */
export interface CompareState {
  request?: CompareRequestView;
  metric?: string;
  logScale?: boolean;
  view?: 'heatmap' | 'interference';
  /** Selected cell: row key (group + layer, or "global") and module. */
  selected?: { row: string; module: string };
  mismatchesOpen?: boolean;
  /** Row keys picked by clicking the heatmap's layer labels. */
  selectedRows?: string[];
}
