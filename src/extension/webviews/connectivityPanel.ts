// The transfer connectivity panel: computes the linear-connectivity report of a fine-tuning
// transfer on the worker pool (cancellable from the panel), shows it, and resolves with the
// user's decision. Closing the panel declines. The transfer itself runs elsewhere (the surgery
// flow), which tells the panel how it went.
import * as vscode from 'vscode';
import type { TaskRunner } from '../../core/engine/pool';
import { CancelledError } from '../../core/engine/task';
import { openCheckpoint } from '../../core/safetensors';
import { connectivityReport, type ConnectivityReport } from '../../core/transfer';
import type { ConnectivityPhase, ConnectivityRequestView, ConnectivityToHost, ConnectivityToWebview } from '../../shared/protocol/connectivity';
import type { GraftTasks } from '../../worker/tasks';
import { renderWebviewHtml, webviewOptions } from './html';

export const CONNECTIVITY_VIEW_TYPE = 'graft.connectivity';

/** Progress messages to the webview at most this often. */
const PROGRESS_INTERVAL_MS = 100;

export interface ConnectivityPanelDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  runner: TaskRunner<GraftTasks>;
}

export type ConnectivityDecision = 'transfer' | 'decline';

export interface ConnectivitySession {
  /** Resolves when the user chose, closed the panel, or the report could not be computed ('decline'). */
  readonly decision: Promise<ConnectivityDecision>;
  /** The report, once computed. */
  readonly report: ConnectivityReport | undefined;
  /** What became of the transfer, shown in the panel. */
  setStatus(phase: ConnectivityPhase, message?: string): void;
}

export function showConnectivityPanel(deps: ConnectivityPanelDeps, request: ConnectivityRequestView): ConnectivitySession {
  const panelTitle = `Transfer ${request.finetune.label} → ${request.to.label}`;
  const panel = vscode.window.createWebviewPanel(CONNECTIVITY_VIEW_TYPE, panelTitle, vscode.ViewColumn.Active, { ...webviewOptions(deps.extensionUri), retainContextWhenHidden: true });
  panel.webview.html = renderWebviewHtml(panel.webview, deps.extensionUri, 'connectivity', panelTitle);
  let ready = false;
  let disposed = false;
  let report: ConnectivityReport | undefined;
  let status: { phase: ConnectivityPhase; progress?: number; message?: string } = { phase: 'computing' };
  const computing = new AbortController();
  let decide: (decision: ConnectivityDecision) => void = () => undefined;
  const decision = new Promise<ConnectivityDecision>((resolve) => {
    decide = (d) => {
      decide = () => undefined;
      resolve(d);
    };
  });

  const post = (message: ConnectivityToWebview) => {
    // Before 'ready' the webview has no listener; the snapshot sent on 'ready' carries the state.
    if (ready && !disposed) void panel.webview.postMessage(message);
  };
  const setStatus = (phase: ConnectivityPhase, message?: string, progress?: number) => {
    status = { phase, progress, message };
    post({ type: 'status', ...status });
  };

  const subscriptions = [
    panel.webview.onDidReceiveMessage((message: ConnectivityToHost) => {
      switch (message.type) {
        case 'ready':
          ready = true;
          post({ type: 'init', request });
          if (report) post({ type: 'report', report });
          post({ type: 'status', ...status });
          break;
        case 'transfer':
          if (status.phase === 'ready' && report && report.verdict !== 'not-applicable') decide('transfer');
          break;
        case 'decline':
          deps.log.info(`${panelTitle}: not transferred.`);
          decide('decline');
          panel.dispose();
          break;
        case 'stop':
          computing.abort();
          break;
      }
    }),
    panel.onDidDispose(() => {
      disposed = true;
      computing.abort();
      decide('decline');
      for (const s of subscriptions) s.dispose();
    }),
  ];

  void (async () => {
    const started = Date.now();
    try {
      const [finetune, from, to] = await Promise.all([request.finetune, request.from, request.to].map(async (side) => {
        try {
          return await openCheckpoint(side.path);
        } catch (error) {
          throw new Error(`Cannot read ${side.label} (${side.path}): ${error instanceof Error ? error.message : String(error)}`);
        }
      }));
      let last = 0;
      report = await connectivityReport(deps.runner, { finetune, from, to }, {
        signal: computing.signal,
        onProgress: (fraction) => {
          const now = Date.now();
          if (now - last < PROGRESS_INTERVAL_MS && fraction < 1) return;
          last = now;
          setStatus('computing', undefined, fraction);
        },
      });
      if (disposed) return;
      deps.log.info(`${panelTitle}: connectivity ${report.verdict} (cos ${report.overall.cosine.toFixed(3)}, base update ${report.overall.baseUpdate === null ? 'unbounded' : report.overall.baseUpdate.toFixed(4)}, fine-tune diff ${report.overall.finetuneDiff === null ? 'unbounded' : report.overall.finetuneDiff.toFixed(4)}) in ${Date.now() - started} ms.${report.reasons.map((r) => `\n  ${r}`).join('')}`);
      post({ type: 'report', report });
      setStatus('ready');
    } catch (error) {
      if (disposed) return;
      if (error instanceof CancelledError || computing.signal.aborted) {
        deps.log.info(`${panelTitle}: the connectivity report was stopped.`);
        setStatus('cancelled');
      } else {
        deps.log.error(`${panelTitle}: the connectivity report failed:`, error);
        setStatus('failed', `${error instanceof Error ? error.message : String(error)} Transfer needs the fine-tune, its base and the new base as safetensors checkpoints (files, sharded sets or model folders) of one architecture.`);
      }
      decide('decline');
    }
  })();

  return {
    decision,
    get report() {
      return report;
    },
    setStatus: (phase, message) => setStatus(phase, message),
  };
}
