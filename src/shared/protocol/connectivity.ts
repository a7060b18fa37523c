// Messages between the transfer connectivity panel (src/extension/webviews/connectivityPanel.ts)
// and its webview (webview/connectivity/): the linear-connectivity report of a fine-tuning
// transfer, shown before the transfer runs, and the user's decision.
import type { ConnectivityReport } from '../../core/transfer/types';

export type { ConnectivityReport };

export interface ConnectivityModelView {
  path: string;
  label: string;
}

/** X (the fine-tune), B (its base) and B2 (the new base). */
export interface ConnectivityRequestView {
  finetune: ConnectivityModelView;
  from: ConnectivityModelView;
  to: ConnectivityModelView;
}

/**
 * computing: the report is being computed; ready: shown, waiting for the decision; transferring:
 * the user chose to transfer and it runs; done, declined, cancelled (the report's computation),
 * failed.
 */
export type ConnectivityPhase = 'computing' | 'ready' | 'transferring' | 'done' | 'declined' | 'cancelled' | 'failed';

export type ConnectivityToWebview =
  | { type: 'init'; request: ConnectivityRequestView }
  | { type: 'status'; phase: ConnectivityPhase; progress?: number; message?: string }
  | { type: 'report'; report: ConnectivityReport };

export type ConnectivityToHost =
  | { type: 'ready' }
  /** Run the transfer. */
  | { type: 'transfer' }
  /** Do not transfer (closes the panel). */
  | { type: 'decline' }
  /** Stop computing the report. */
  | { type: 'stop' };
