// Messages between the checkpoint inspector (custom editor host) and its webview.
import type { DType } from '../../core/safetensors/types';
import type { TensorStats } from '../../core/stats/accumulate';

export interface InspectorTensorRow {
  name: string;
  dtype: DType;
  shape: number[];
  numel: number;
  bytes: number;
  /** Index into InspectorSummary.files (sharded sets). */
  file: number;
}

export interface InspectorSummary {
  path: string;
  fileName: string;
  format: string;
  files: string[];
  parameters: number;
  bytes: number;
  /** dtype -> [tensor count, bytes] */
  dtypes: Record<string, [number, number]>;
  metadata: Record<string, unknown> | null;
  tensors: InspectorTensorRow[];
  /** Time the host spent reading and validating headers, for the status line. */
  loadMs: number;
}

/** Statistics of one tensor, exactly as core computes them. */
export type TensorStatsView = TensorStats;

export interface InspectorError {
  title: string;
  message: string;
  /** What the user can do about it. */
  hint: string;
  /** The reference rule that failed, e.g. "invalid-offset". */
  rule?: string;
}

export type InspectorToWebview =
  | { type: 'loading'; fileName: string }
  | { type: 'summary'; summary: InspectorSummary; selected?: string }
  | { type: 'error'; error: InspectorError }
  | { type: 'statsProgress'; name: string; fraction: number }
  | { type: 'stats'; name: string; stats: TensorStatsView; ms: number }
  | { type: 'statsError'; name: string; message: string };

export type InspectorToHost =
  | { type: 'ready' }
  | { type: 'selectTensor'; name: string }
  | { type: 'cancelStats' }
  | { type: 'copy'; text: string };

export interface InspectorState {
  filter: string;
  selected?: string;
  collapsed: string[];
  scrollTop: number;
}
