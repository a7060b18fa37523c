// The transfer connectivity report: before "Transfer Fine-tune to New Base..." writes anything,
// whether the fine-tune's changes (X − B) can be carried onto the new base B2. A verdict in plain
// language with the numbers behind it, Compare's layer x module heatmap (cosine of the base update
// and the fine-tune diff, or either one's size), a per-layer table, and Transfer / Don't Transfer.
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeProgressRing } from '@vscode/webview-ui-toolkit';
import type { ConnectivityLayer, ConnectivityReport } from '../../src/core/transfer/types';
import type { ConnectivityPhase, ConnectivityRequestView, ConnectivityToHost, ConnectivityToWebview } from '../../src/shared/protocol/connectivity';
import { Heatmap } from '../compare/heatmap';
import { buildGrid, cellValue, formatValue, type Cell, type Grid } from '../compare/model';
import { el } from '../shared/dom';
import { connect } from '../shared/vscode';
import { CONNECTIVITY_METRICS, connectivityTensors, cosineText, share, VERDICT_SUMMARY, VERDICT_TITLE } from './model';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeProgressRing());

const channel = connect<ConnectivityToHost, ConnectivityToWebview>();

let request: ConnectivityRequestView | undefined;
let report: ConnectivityReport | undefined;
let grid: Grid | undefined;
let phase: ConnectivityPhase = 'computing';
let progress: number | undefined;
let statusMessage: string | undefined;
let metricIndex = 0;

// ---- skeleton ----

const app = document.getElementById('app')!;
const title = el('h1', { className: 'connectivity-title' });
const subtitle = el('p', { className: 'muted subtitle' });
const progressTrack = el('div', { className: 'progress-track', role: 'progressbar', ariaLabel: 'Report progress' }, [el('div', { className: 'progress-line' })]);
const statusText = el('span', { id: 'status-text' });
const stopButton = el('vscode-button', { id: 'stop', appearance: 'secondary', textContent: 'Stop' });
const statusBar = el('div', { id: 'status', className: 'status-bar', ariaLive: 'polite' }, [statusText, stopButton]);
const verdictTitle = el('h2', { className: 'verdict-title' });
const verdictSummary = el('p', { className: 'verdict-summary' });
const reasons = el('ul', { className: 'reasons', ariaLabel: 'Why' });
const warnings = el('ul', { className: 'warnings', ariaLabel: 'Warnings' });
const verdictBox = el('section', { id: 'verdict', className: 'verdict', role: 'note' }, [verdictTitle, verdictSummary, reasons, warnings]);
const overall = el('dl', { id: 'overall', className: 'overall' });
const metricButtons = CONNECTIVITY_METRICS.map((spec, i) => el('vscode-button', { appearance: i === 0 ? 'primary' : 'secondary', textContent: spec.label, title: spec.description, dataset: { metric: spec.key } }));
const metricToggle = el('div', { className: 'metric-toggle', role: 'group', ariaLabel: 'Heatmap metric' }, metricButtons);
const heatmapHost = el('div', { className: 'heatmap-host' });
const howToRead = el('p', { className: 'muted how-to-read' });
const layersTable = el('table', { id: 'layers', className: 'layers' });
const transferButton = el('vscode-button', { id: 'transfer', appearance: 'primary', textContent: 'Transfer…', disabled: true });
const declineButton = el('vscode-button', { id: 'decline', appearance: 'secondary', textContent: 'Don\'t Transfer' });
const actionNote = el('span', { className: 'muted action-note' });
const actions = el('footer', { className: 'actions' }, [transferButton, declineButton, actionNote]);
const details = el('div', { className: 'details' }, [overall, metricToggle, howToRead, heatmapHost, el('h2', { textContent: 'By layer' }), layersTable]);
const body = el('main', { className: 'connectivity-body' }, [verdictBox, details]);
const tooltip = el('div', { className: 'tooltip', role: 'tooltip', hidden: true });
app.replaceChildren(el('header', { className: 'toolbar' }, [el('div', {}, [title, subtitle])]), progressTrack, statusBar, body, actions, tooltip);

const heatmap = new Heatmap(heatmapHost, 'connectivity', {
  hover: (cell, event) => showTooltip(cell, event.clientX, event.clientY),
  select: (cell) => showTooltip(cell, 0, 0, true),
});

// ---- messages and actions ----

channel.onMessage((message) => {
  switch (message.type) {
    case 'init':
      request = message.request;
      break;
    case 'status':
      phase = message.phase;
      progress = message.progress;
      statusMessage = message.message;
      break;
    case 'report':
      report = message.report;
      grid = buildGrid({ tensors: connectivityTensors(report) });
      break;
  }
  render();
});

transferButton.addEventListener('click', () => {
  if (transferButton.hasAttribute('disabled')) return;
  channel.post({ type: 'transfer' });
});
declineButton.addEventListener('click', () => channel.post({ type: 'decline' }));
stopButton.addEventListener('click', () => channel.post({ type: 'stop' }));
metricButtons.forEach((button, i) => button.addEventListener('click', () => {
  metricIndex = i;
  render();
}));
addEventListener('resize', () => renderHeatmap());

// ---- rendering ----

function render(): void {
  app.dataset.phase = phase;
  if (request) {
    title.textContent = `Transfer ${request.finetune.label} onto ${request.to.label}`;
    subtitle.textContent = `${request.finetune.label} was fine-tuned from ${request.from.label}. The transfer adds what fine-tuning changed to the new base: ${request.to.label} + (${request.finetune.label} − ${request.from.label}). It carries over when the two bases are close and their difference is unrelated to the fine-tune's.`;
    document.title = title.textContent;
  }
  renderStatus();
  body.hidden = !report;
  actions.hidden = false;
  if (report) {
    renderVerdict(report);
    renderOverall(report);
    renderHeatmap();
    renderLayers(report);
  }
  const canTransfer = phase === 'ready' && report !== undefined && report.verdict !== 'not-applicable';
  if (canTransfer) transferButton.removeAttribute('disabled');
  else transferButton.setAttribute('disabled', '');
  declineButton.hidden = phase === 'transferring' || phase === 'done' || phase === 'declined';
  actionNote.textContent = report?.verdict === 'not-applicable' ? 'Not applicable: there is nothing to run.' : report?.verdict === 'risky' && phase === 'ready' ? 'You will be asked for a scale (below 1 is safer) and where to write.' : '';
}

function renderStatus(): void {
  const texts: Record<ConnectivityPhase, string> = {
    computing: `Comparing the base update with the fine-tune diff, tensor by tensor${progress !== undefined ? ` (${Math.round(progress * 100)}%)` : ''}…`,
    ready: 'Read the report, then transfer or not.',
    transferring: 'Transferring: see the progress notification.',
    done: 'Transferred.',
    declined: 'Not transferred.',
    cancelled: 'Stopped before the report was complete; nothing was written.',
    failed: 'The report could not be computed.',
  };
  statusText.textContent = statusMessage ? `${texts[phase]} ${statusMessage}` : texts[phase];
  statusBar.dataset.phase = phase;
  statusBar.classList.toggle('failed', phase === 'failed');
  stopButton.hidden = phase !== 'computing';
  const line = progressTrack.firstElementChild as HTMLElement;
  progressTrack.hidden = phase !== 'computing';
  line.style.width = `${Math.round((progress ?? 0) * 100)}%`;
}

function renderVerdict(r: ConnectivityReport): void {
  verdictBox.dataset.verdict = r.verdict;
  verdictTitle.textContent = VERDICT_TITLE[r.verdict];
  verdictSummary.textContent = VERDICT_SUMMARY[r.verdict];
  reasons.replaceChildren(...r.reasons.map((text) => el('li', { textContent: text })));
  warnings.replaceChildren(...r.warnings.map((text) => el('li', { className: 'warning', textContent: text })));
  warnings.hidden = r.warnings.length === 0;
}

function renderOverall(r: ConnectivityReport): void {
  const fact = (term: string, value: string, key: string, hint: string) => [el('dt', { textContent: term, title: hint }), el('dd', { textContent: value, dataset: { fact: key } })];
  overall.replaceChildren(
    ...fact('cos(B2−B, X−B)', cosineText(r.overall.cosine), 'cosine', 'Near 0: the bases differ in a direction unrelated to the fine-tune.'),
    ...fact('Base update ‖B2−B‖/‖B‖', share(r.overall.baseUpdate), 'base-update', 'How far apart the two bases are.'),
    ...fact('Fine-tune diff ‖X−B‖/‖B‖', share(r.overall.finetuneDiff), 'finetune-diff', 'How much fine-tuning changed the old base.'),
    ...fact('Renamed or reshaped between the bases', `${r.structure.changed} of ${r.structure.tensors} tensors (${share(r.structure.share)})`, 'structure', 'Tensors the diff cannot be added to.'),
  );
}

function renderHeatmap(): void {
  if (!grid) return;
  const spec = CONNECTIVITY_METRICS[metricIndex];
  metricButtons.forEach((button, i) => button.setAttribute('appearance', i === metricIndex ? 'primary' : 'secondary'));
  howToRead.textContent = metricIndex === 0
    ? 'Each cell is one module of one layer. Pale (near 0): the base update is independent of the fine-tune there, which is what a transfer needs. Red (negative): the new base undoes what fine-tuning did. Blue (positive): the new base already moved the fine-tune\'s way, so the full diff overshoots.'
    : `Each cell is one module of one layer: ${spec.description}.`;
  heatmap.render({ grid, spec, logScale: false, title: spec.label, width: Math.max(320, heatmapHost.clientWidth || innerWidth - 32) });
}

function renderLayers(r: ConnectivityReport): void {
  const number = (x: number | null) => (x === null ? 'unbounded' : formatValue(x));
  const name = (l: ConnectivityLayer) => (l.layer === null ? l.group : l.group === 'layers' ? `layer ${l.layer}` : `${l.group} ${l.layer}`);
  const head = el('tr', {}, ['Layer', 'Tensors', 'cos(B2−B, X−B)', '‖B2−B‖/‖B‖', '‖X−B‖/‖B‖'].map((t) => el('th', { textContent: t, scope: 'col' })));
  const rows = r.layers.map((l) => el('tr', { dataset: { layer: l.layer === null ? l.group : String(l.layer), cosine: String(l.cosine) }, className: l.cosine < -0.3 ? 'conflicting' : '' }, [
    el('th', { textContent: name(l), scope: 'row' }),
    el('td', { textContent: String(l.tensors) }),
    el('td', { textContent: cosineText(l.cosine, 4) }),
    el('td', { textContent: number(l.baseUpdate) }),
    el('td', { textContent: number(l.finetuneDiff) }),
  ]));
  layersTable.replaceChildren(el('thead', {}, [head]), el('tbody', {}, rows));
}

function showTooltip(cell: Cell | undefined, x: number, y: number, pinned = false): void {
  if (!cell) {
    tooltip.hidden = true;
    return;
  }
  const lines = [`${cell.layer === null ? cell.module : `layer ${cell.layer} · ${cell.module}`}`];
  for (const spec of CONNECTIVITY_METRICS) {
    const v = cellValue(cell, spec);
    lines.push(`${spec.label}: ${spec.key === 'cosine_tv' ? cosineText(v, 4) : share(v)}`);
  }
  lines.push(cell.tensors.length === 1 ? cell.tensors[0].name : `${cell.tensors.length} tensors`);
  tooltip.textContent = lines.join('\n');
  tooltip.hidden = false;
  if (pinned) {
    const box = heatmapHost.getBoundingClientRect();
    x = box.left + 16;
    y = box.top + 16;
  }
  const box = tooltip.getBoundingClientRect();
  tooltip.style.left = `${Math.min(x + 14, innerWidth - box.width - 4)}px`;
  tooltip.style.top = `${Math.min(y + 14, innerHeight - box.height - 4)}px`;
}

render();
