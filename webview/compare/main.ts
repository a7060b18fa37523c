// The Compare view: what fine-tuning changed, and where. A layer x module heatmap of one metric,
// the most changed tensors, a detail pane (histogram of b - a, per-row change) for the selected
// cell, the tensors that could not be compared, and with a base the interference view (sign
// conflicts of the two task vectors) with merge guidance derived from the numbers.
import {
  provideVSCodeDesignSystem,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
} from '@vscode/webview-ui-toolkit';
import type { DiffReport, TensorDiff } from '../../src/core/diff/types';
import type { CompareErrorView, ComparePhase, CompareRequestView, CompareState, CompareToHost, CompareToWebview, ExportFormat, TensorDiffDetail } from '../../src/shared/protocol/compare';
import { el } from '../shared/dom';
import { connect } from '../shared/vscode';
import { histogramChart, rowProfileChart } from './charts';
import { serializeSvgs, svgToPngBase64 } from './export';
import { Heatmap } from './heatmap';
import {
  aggregationNote,
  buildGrid,
  cellKey,
  cellValue,
  formatValue,
  GLOBAL_ROW,
  logAllowed,
  metricOf,
  metricsFor,
  metricSpec,
  rankTensors,
  reportToCsv,
  summarizeInterference,
  type Cell,
  type Grid,
  type MetricSpec,
} from './model';
import { formatCount } from '../../src/core/format';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeDropdown(), vsCodeOption(), vsCodeCheckbox(), vsCodeProgressRing());

const HISTOGRAM_BINS = 60;
const RANKED_LIMIT = 20;
const DETAIL_CACHE_LIMIT = 48;
const TOOLTIP_TENSORS = 8;
const DETAIL_TENSORS = 6;
/** Narrower cells than this put the two interference heatmaps one above the other. */
const READABLE_CELL_WIDTH = 28;

const channel = connect<CompareToHost, CompareToWebview, CompareState>();
let state: CompareState = channel.getState() ?? {};

let request: CompareRequestView | undefined = state.request;
let report: DiffReport | undefined;
let mode: 'quick' | 'exact' = 'quick';
let fromCache = false;
let grid: Grid | undefined;
let phase: ComparePhase = 'opening';
let progress: number | undefined;
let statusMessage: string | undefined;
let failure: CompareErrorView | undefined;
const details = new Map<string, TensorDiffDetail>();
const detailErrors = new Map<string, string>();
const pendingDetails = new Map<number, string>();
let nextRequestId = 1;

function saveState(patch: Partial<CompareState>): void {
  state = { ...state, ...patch };
  channel.setState(state);
}

// ---- skeleton ----

const app = document.getElementById('app')!;
const titleText = el('h1', { className: 'compare-title' });
const metricDropdown = el('vscode-dropdown', { id: 'metric', ariaLabel: 'Metric shown by the heatmap' });
const logCheckbox = el('vscode-checkbox', { id: 'log-scale', textContent: 'Log scale' });
const viewToggle = el('div', { className: 'view-toggle', role: 'group', ariaLabel: 'View' });
const heatmapTab = el('vscode-button', { appearance: 'primary', textContent: 'Heatmap', dataset: { show: 'heatmap' } });
const interferenceTab = el('vscode-button', { appearance: 'secondary', textContent: 'Interference', dataset: { show: 'interference' } });
viewToggle.append(heatmapTab, interferenceTab);
const exportGroup = el(
  'div',
  { className: 'export-group', role: 'group', ariaLabel: 'Export' },
  (['png', 'svg', 'csv', 'json'] as ExportFormat[]).map((format) =>
    el('vscode-button', { appearance: 'secondary', textContent: format.toUpperCase(), ariaLabel: exportLabel(format), title: exportLabel(format), dataset: { format } }),
  ),
);
const metricLabel = el('label', { className: 'muted', htmlFor: 'metric', textContent: 'Metric' });
const swapButton = el('vscode-button', { id: 'swap-layers', appearance: 'primary', hidden: true, title: 'Write a passthrough recipe: every layer from a, the selected ones from b' });
const toolbar = el('header', { className: 'toolbar' }, [titleText, el('span', { className: 'spacer' }), swapButton, metricLabel, metricDropdown, logCheckbox, viewToggle, exportGroup]);
const progressTrack = el('div', { className: 'progress-track', role: 'progressbar', ariaLabel: 'Comparison progress' }, [el('div', { className: 'progress-line' })]);
const statusBar = el('div', { className: 'status-bar', ariaLive: 'polite' });
const summaryBar = el('div', { className: 'summary-bar' });
const errorSlot = el('div', { className: 'error-slot' });
const heatmapView = el('section', { className: 'heatmap-view', ariaLabel: 'Heatmap' });
const heatmapHost = el('div', { className: 'heatmap-host' });
heatmapView.append(heatmapHost);
const interferenceView = el('section', { className: 'interference-view', ariaLabel: 'Interference of the task vectors' });
const guidanceBox = el('div', { className: 'guidance', role: 'note' });
const interferenceMaps = el('div', { className: 'interference-maps' });
const conflictHost = el('div', { className: 'heatmap-host' });
const agreementHost = el('div', { className: 'heatmap-host' });
interferenceMaps.append(conflictHost, agreementHost);
interferenceView.append(guidanceBox, interferenceMaps);
const emptyNote = el('p', { className: 'muted empty-note' });
const visuals = el('div', { className: 'visuals' }, [emptyNote, heatmapView, interferenceView]);
const rankedList = el('ol', { className: 'ranked' });
const rankedTitle = el('h2');
const detailPane = el('section', { className: 'detail', ariaLabel: 'Selected cell' });
const sidebar = el('aside', { className: 'sidebar' }, [el('section', { className: 'ranked-section' }, [rankedTitle, rankedList]), detailPane]);
const mismatches = el('details', { className: 'mismatches' });
const tooltip = el('div', { className: 'tooltip', role: 'tooltip', hidden: true });
const announcer = el('div', { className: 'sr-only', ariaLive: 'polite' });
const body = el('main', { className: 'compare-body' }, [visuals, sidebar]);
app.replaceChildren(toolbar, progressTrack, statusBar, summaryBar, errorSlot, body, mismatches, tooltip, announcer);
/** What only makes sense once a report is there. */
const reportOnly: HTMLElement[] = [metricLabel, metricDropdown, logCheckbox, viewToggle, exportGroup, summaryBar, body, mismatches];
for (const element of reportOnly) element.hidden = true;

const handlers = {
  hover: (cell: Cell | undefined, event: MouseEvent) => showTooltip(cell, event.clientX, event.clientY),
  select: (cell: Cell, via: 'pointer' | 'keyboard') => selectCell(cell, via),
  selectRow: (row: string, extend: boolean) => selectRow(row, extend),
};
const mainHeatmap = new Heatmap(heatmapHost, 'main', handlers);
const conflictHeatmap = new Heatmap(conflictHost, 'conflict', handlers);
const agreementHeatmap = new Heatmap(agreementHost, 'sign_agreement', handlers);

// ---- messages ----

channel.onMessage((message) => {
  switch (message.type) {
    case 'init':
      request = message.request;
      saveState({ request });
      failure = undefined;
      renderTitle();
      break;
    case 'status':
      phase = message.phase;
      progress = message.progress;
      statusMessage = message.message;
      if (phase !== 'failed') failure = undefined;
      // A new run may read changed files: tensor details computed before are stale.
      if (phase === 'opening') {
        details.clear();
        detailErrors.clear();
      }
      renderStatus();
      break;
    case 'report':
      report = message.report;
      mode = message.mode;
      fromCache = message.fromCache;
      grid = buildGrid(report);
      renderAll();
      break;
    case 'error':
      failure = message.error;
      phase = 'failed';
      renderStatus();
      break;
    case 'detail': {
      const name = pendingDetails.get(message.requestId);
      pendingDetails.delete(message.requestId);
      if (name === undefined) break;
      rememberDetail(name, message.detail);
      updateDetailCharts(name);
      break;
    }
    case 'detailError': {
      pendingDetails.delete(message.requestId);
      detailErrors.set(message.name, message.message);
      updateDetailCharts(message.name);
      break;
    }
  }
});

function rememberDetail(name: string, detail: TensorDiffDetail): void {
  details.delete(name);
  details.set(name, detail);
  while (details.size > DETAIL_CACHE_LIMIT) details.delete(details.keys().next().value!);
}

// ---- toolbar ----

metricDropdown.addEventListener('change', () => {
  const value = (metricDropdown as unknown as { value: string }).value;
  if (value && value !== state.metric) {
    saveState({ metric: value });
    renderVisuals();
  }
});
logCheckbox.addEventListener('change', () => {
  const checked = (logCheckbox as unknown as { checked: boolean }).checked;
  if (checked !== Boolean(state.logScale)) {
    saveState({ logScale: checked });
    renderVisuals();
  }
});
viewToggle.addEventListener('click', (event) => {
  const view = (event.target as HTMLElement).closest<HTMLElement>('[data-show]')?.dataset.show;
  if ((view === 'heatmap' || view === 'interference') && view !== currentView()) {
    saveState({ view });
    renderVisuals();
  }
});
exportGroup.addEventListener('click', (event) => {
  const format = (event.target as HTMLElement).closest<HTMLElement>('[data-format]')?.dataset.format as ExportFormat | undefined;
  if (format) void exportAs(format);
});
mismatches.addEventListener('toggle', () => saveState({ mismatchesOpen: mismatches.open }));
statusBar.addEventListener('click', (event) => {
  const action = (event.target as HTMLElement).closest<HTMLElement>('[data-action]')?.dataset.action;
  if (action === 'cancel') channel.post({ type: 'cancel' });
  if (action === 'rerun') channel.post({ type: 'rerun' });
});
errorSlot.addEventListener('click', (event) => {
  if ((event.target as HTMLElement).closest('[data-action="rerun"]')) channel.post({ type: 'rerun' });
});
let resizeTimer: number | undefined;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(renderVisuals, 120);
});

function hasBase(): boolean {
  return Boolean(request?.base) || Boolean(report && report.tensors.some((t) => t.conflict !== undefined));
}

function currentView(): 'heatmap' | 'interference' {
  return state.view === 'interference' && hasBase() ? 'interference' : 'heatmap';
}

function currentMetric(): MetricSpec {
  const available = report ? metricsFor(report) : [];
  return available.find((m) => m.key === state.metric) ?? available[0] ?? metricSpec('rel_l2');
}

/** The metric that orders the ranked list: the heatmap's, or conflict in the interference view. */
function rankingMetric(): MetricSpec {
  return currentView() === 'interference' ? metricSpec('conflict') : currentMetric();
}

// ---- rendering ----

function renderAll(): void {
  for (const element of reportOnly) element.hidden = false;
  renderTitle();
  renderStatus();
  renderToolbar();
  renderSummary();
  renderVisuals();
  renderMismatches();
}

function renderTitle(): void {
  if (!request) return;
  titleText.replaceChildren(
    ...present(
      el('span', { className: 'side', title: request.a.path, textContent: request.a.label }),
      ' ↔ ',
      el('span', { className: 'side', title: request.b.path, textContent: request.b.label }),
      request.base ? el('span', { className: 'muted base-label', title: request.base.path, textContent: ` (base: ${request.base.label})` }) : null,
    ),
  );
  document.title = `${request.a.label} ↔ ${request.b.label}`;
}

function renderToolbar(): void {
  if (!report) return;
  const metrics = metricsFor(report);
  const current = currentMetric();
  const existing = Array.from(metricDropdown.querySelectorAll('vscode-option')).map((o) => o.getAttribute('value'));
  if (existing.join() !== metrics.map((m) => m.key).join()) {
    metricDropdown.replaceChildren(...metrics.map((m) => el('vscode-option', { value: m.key, textContent: m.label, title: m.description })));
  }
  (metricDropdown as unknown as { value: string }).value = current.key;
  viewToggle.hidden = !hasBase();
}

function renderStatus(): void {
  app.dataset.phase = phase;
  app.dataset.mode = report ? mode : 'none';
  const running = phase === 'opening' || phase === 'quick' || phase === 'exact';
  const line = progressTrack.firstElementChild as HTMLElement;
  progressTrack.hidden = !running;
  progressTrack.classList.toggle('indeterminate', running && progress === undefined);
  line.style.width = `${Math.round((progress ?? 0) * 100)}%`;
  if (progress !== undefined) progressTrack.setAttribute('aria-valuenow', String(Math.round(progress * 100)));
  else progressTrack.removeAttribute('aria-valuenow');

  const percent = progress !== undefined ? ` ${Math.round(progress * 100)}%` : '';
  const parts: (Node | string | null)[] = [];
  const badge = (text: string, kind: string) => el('span', { className: `mode-badge ${kind}`, textContent: text });
  if (phase === 'opening') parts.push(el('vscode-progress-ring'), statusMessage ?? 'Opening checkpoints…');
  else if (phase === 'quick') parts.push(el('vscode-progress-ring'), statusMessage ?? 'Sampling a fixed subset of elements…');
  else if (phase === 'exact') {
    if (report && mode === 'quick') parts.push(badge('Sampled — refining…', 'quick'), `Comparing every element…${percent}`);
    else parts.push(el('vscode-progress-ring'), `Comparing every element…${percent}`);
  } else if (phase === 'cancelled') {
    parts.push(report ? badge(mode === 'quick' ? 'Sampled' : 'Exact', mode) : null, statusMessage ?? (report && mode === 'quick' ? 'Exact comparison cancelled: values are from a sample.' : 'Comparison cancelled.'));
  } else if (phase === 'done' && report) {
    parts.push(badge(mode === 'exact' ? 'Exact' : 'Sampled', mode), fromCache ? 'Reused the saved result (inputs unchanged).' : (statusMessage ?? ''));
  } else if (phase === 'failed') {
    parts.push(report ? badge(mode === 'exact' ? 'Exact' : 'Sampled', mode) : null, statusMessage ?? '');
  }
  if (running) parts.push(el('vscode-button', { appearance: 'secondary', textContent: 'Cancel', dataset: { action: 'cancel' }, ariaLabel: 'Cancel the comparison' }));
  if (phase === 'cancelled') parts.push(el('vscode-button', { appearance: 'primary', textContent: report && mode === 'quick' ? 'Refine to exact' : 'Run again', dataset: { action: 'rerun' } }));
  if (phase === 'done' && fromCache) parts.push(el('vscode-button', { appearance: 'secondary', textContent: 'Recompute', dataset: { action: 'rerun' }, ariaLabel: 'Recompute the comparison' }));
  statusBar.replaceChildren(...present(...parts));

  errorSlot.replaceChildren(
    ...(failure
      ? [
          el('div', { className: 'error-banner', role: 'alert' }, [
            el('h2', { textContent: failure.title }),
            el('p', { className: 'mono', textContent: failure.message }),
            el('p', { textContent: failure.hint }),
            el('vscode-button', { appearance: 'secondary', textContent: 'Try again', dataset: { action: 'rerun' } }),
          ]),
        ]
      : []),
  );
}

function renderSummary(): void {
  if (!report) {
    summaryBar.replaceChildren();
    return;
  }
  const s = report.summary;
  const fact = (label: string, value: string, title?: string) => el('span', { className: 'fact', title }, [el('span', { className: 'muted', textContent: `${label} ` }), el('span', { className: 'mono', textContent: value })]);
  // Nothing compared (see the empty note): no figures that would read as "identical".
  if (s.tensors === 0) {
    summaryBar.replaceChildren(fact('Tensors', '0'));
    return;
  }
  const notComparable = s.not_comparable ?? 0;
  const notComparableFact = fact('not comparable', formatCount(notComparable), 'Tensors holding only NaN or infinity in a or b: they have no figures and are left out of these');
  // Every tensor held only NaN or infinity: figures of nothing would read as "identical".
  if (notComparable === s.tensors) {
    summaryBar.replaceChildren(fact('Tensors', formatCount(s.tensors)), notComparableFact);
    return;
  }
  summaryBar.replaceChildren(
    fact('Tensors', formatCount(s.tensors)),
    ...(notComparable > 0 ? [notComparableFact] : []),
    fact('Elements', formatCount(s.numel)),
    fact('‖b−a‖/‖a‖', formatValue(s.rel_l2), 'Relative L2 change over every compared element'),
    fact('cosine', formatValue(s.cosine)),
    fact('changed', `${formatValue(s.frac_changed * 100)}%`, 'Share of elements where b differs from a'),
    ...(s.cosine_tv !== undefined ? [fact('task vector cosine', formatValue(s.cosine_tv))] : []),
    ...(s.sign_agreement !== undefined ? [fact('sign agreement', s.sign_agreement === null ? 'no overlap' : `${formatValue(s.sign_agreement * 100)}%`)] : []),
    ...(s.conflict !== undefined ? [fact('conflict', `${formatValue(s.conflict * 100)}%`)] : []),
  );
}

function availableWidth(host: HTMLElement, fallback: number): number {
  return Math.max(320, host.clientWidth || fallback);
}

function renderVisuals(): void {
  if (!report || !grid) return;
  const view = currentView();
  const spec = currentMetric();
  renderToolbarState(spec, view);
  heatmapView.hidden = view !== 'heatmap';
  interferenceView.hidden = view !== 'interference';
  const empty = grid.cells.length === 0 && grid.globals.length === 0;
  emptyNote.hidden = !empty;
  emptyNote.textContent = empty ? 'No tensor has the same name and shape in both checkpoints, so there is nothing to draw. See "Not compared" below.' : '';
  if (empty) {
    heatmapView.hidden = true;
    interferenceView.hidden = true;
  } else if (view === 'heatmap') {
    const started = performance.now();
    mainHeatmap.render({ grid, spec, logScale: Boolean(state.logScale) && logAllowed(spec), title: spec.label, selected: state.selected, selectedRows: state.selectedRows, width: availableWidth(visuals, 720) });
    mainHeatmap.svg.dataset.renderMs = (performance.now() - started).toFixed(1);
  } else {
    renderInterference();
  }
  if (state.selected && !grid.byKey.has(cellKey(state.selected.row, state.selected.module))) saveState({ selected: undefined });
  renderSwapButton();
  renderRanked();
  renderDetail();
}

function renderToolbarState(spec: MetricSpec, view: 'heatmap' | 'interference'): void {
  const canLog = logAllowed(spec) || view === 'interference';
  logCheckbox.toggleAttribute('disabled', !canLog);
  (logCheckbox as unknown as { checked: boolean }).checked = Boolean(state.logScale) && canLog;
  logCheckbox.title = canLog ? 'Logarithmic colour scale (positive metrics only)' : `${spec.label} can be negative or is centred on a midpoint, so it has no log scale.`;
  metricDropdown.toggleAttribute('disabled', view === 'interference');
  heatmapTab.setAttribute('appearance', view === 'heatmap' ? 'primary' : 'secondary');
  interferenceTab.setAttribute('appearance', view === 'interference' ? 'primary' : 'secondary');
  heatmapTab.setAttribute('aria-pressed', String(view === 'heatmap'));
  interferenceTab.setAttribute('aria-pressed', String(view === 'interference'));
}

function renderInterference(): void {
  if (!report || !grid) return;
  const summary = summarizeInterference(report, grid);
  guidanceBox.replaceChildren(
    ...(summary
      ? [
          el('h2', {}, ['Interference of the task vectors ', el('span', { className: `level-badge ${summary.level}`, textContent: `${summary.level} conflict` })]),
          el('p', { className: 'muted', textContent: `Task vectors are a − base and b − base. "Conflict" counts weights both fine-tunes changed in opposite directions.` }),
          el('ul', {}, summary.guidance.map((line) => el('li', { textContent: line }))),
        ]
      : [el('p', { textContent: 'This comparison has no base, so there are no task vectors to compare. Compare with a base to see where the fine-tunes interfere.' })]),
  );
  guidanceBox.dataset.level = summary?.level ?? 'none';
  const full = availableWidth(visuals, 720) - 16;
  const logScale = Boolean(state.logScale);
  const shown = grid;
  const draw = (width: number) => {
    conflictHeatmap.render({ grid: shown, spec: metricSpec('conflict'), logScale, title: 'Sign conflict (share of weights)', selected: state.selected, width });
    agreementHeatmap.render({ grid: shown, spec: metricSpec('sign_agreement'), logScale: false, title: 'Sign agreement where both changed', selected: state.selected, width });
  };
  // Side by side when cells stay readable at half the width; else one above the other.
  draw(Math.floor((full - 3 * 8) / 2));
  if (conflictHeatmap.cellWidth < READABLE_CELL_WIDTH) draw(full);
}

function renderRanked(): void {
  if (!report) return;
  const spec = rankingMetric();
  rankedTitle.textContent = `Most changed by ${spec.label.toLowerCase()}`;
  if (currentView() === 'interference') rankedTitle.textContent = 'Most conflicting tensors';
  const ranked = rankTensors(report, spec, RANKED_LIMIT);
  rankedList.replaceChildren(
    ...ranked.map((t) =>
      el('li', {}, [
        el('button', { className: 'ranked-item', type: 'button', dataset: { name: t.name }, title: t.name }, [
          el('span', { className: 'mono name', textContent: shortName(t) }),
          el('span', { className: 'mono value', textContent: formatValue(metricOf(t, spec.key)) }),
        ]),
      ]),
    ),
  );
}

rankedList.addEventListener('click', (event) => {
  const name = (event.target as HTMLElement).closest<HTMLElement>('[data-name]')?.dataset.name;
  const tensor = name !== undefined ? report?.tensors.find((t) => t.name === name) : undefined;
  if (!tensor || !grid) return;
  const row = tensor.layer === null ? GLOBAL_ROW : grid.cells.find((c) => c.tensors.includes(tensor))?.row;
  const cell = row !== undefined ? grid.byKey.get(cellKey(row, tensor.module)) : undefined;
  if (cell) selectCell(cell, 'keyboard');
});

function shortName(t: TensorDiff): string {
  return t.layer === null ? t.module : `${t.layer} · ${t.module}`;
}

function cellTitle(cell: Cell): string {
  if (cell.row === GLOBAL_ROW) return cell.module;
  const row = grid?.rows.find((r) => r.key === cell.row);
  return `layer ${row?.label ?? cell.layer} · ${cell.module}`;
}

/** Layer rows picked for "Swap These Layers from B": a click picks one, Ctrl/Shift-click adds or removes. */
function selectRow(row: string, extend: boolean): void {
  const current = new Set(state.selectedRows ?? []);
  if (extend) {
    if (current.has(row)) current.delete(row);
    else current.add(row);
  } else if (current.size === 1 && current.has(row)) current.clear();
  else {
    current.clear();
    current.add(row);
  }
  saveState({ selectedRows: [...current] });
  renderVisuals();
}

/** Layer indices of the selected rows that belong to the numbered stack (swappable). */
function swappableLayers(): number[] {
  const rows = new Map((grid?.rows ?? []).map((r) => [r.key, r]));
  return (state.selectedRows ?? []).map((key) => rows.get(key)).filter((r) => r !== undefined && r.group === 'layers').map((r) => r!.layer).sort((x, y) => x - y);
}

function renderSwapButton(): void {
  const layers = swappableLayers();
  swapButton.hidden = layers.length === 0;
  swapButton.textContent = layers.length === 1 ? `Swap Layer ${layers[0]} from B` : `Swap These Layers from B (${layers.join(', ')})`;
  swapButton.dataset.layers = layers.join(',');
}

swapButton.addEventListener('click', () => {
  const layers = swappableLayers();
  if (layers.length) channel.post({ type: 'swapLayers', layers });
});

function selectCell(cell: Cell, via: 'pointer' | 'keyboard'): void {
  saveState({ selected: { row: cell.row, module: cell.module } });
  for (const heatmap of [mainHeatmap, conflictHeatmap, agreementHeatmap]) heatmap.setSelection(state.selected);
  const spec = currentView() === 'interference' ? metricSpec('conflict') : currentMetric();
  announcer.textContent = `${cellTitle(cell)}: ${spec.label} ${formatValue(cellValue(cell, spec))}`;
  if (via === 'keyboard') {
    const active = currentView() === 'interference' ? conflictHeatmap : mainHeatmap;
    const box = active.cellRect(cell.row, cell.module);
    if (box) showTooltip(cell, box.right + 4, box.bottom + 4);
  }
  renderDetail();
}

function showTooltip(cell: Cell | undefined, x: number, y: number): void {
  if (!cell) {
    tooltip.hidden = true;
    return;
  }
  const spec = currentView() === 'interference' ? metricSpec('conflict') : currentMetric();
  const lines = [`${cellTitle(cell)}`, `${spec.key} = ${formatValue(cellValue(cell, spec))}${cell.tensors.some((t) => t.sampled) ? ' (sampled)' : ''}`];
  if (cell.tensors.length > 1) lines.push(`${cell.tensors.length} tensors; ${aggregationNote(spec)}`);
  for (const t of cell.tensors.slice(0, TOOLTIP_TENSORS)) {
    lines.push('', `${t.name} (${formatCount(t.numel)} elements)`, `  ${tensorFigures(t)}`);
    if (t.conflict !== undefined) lines.push(`  ${baseFigures(t)}`);
  }
  if (cell.tensors.length > TOOLTIP_TENSORS) lines.push(`… and ${cell.tensors.length - TOOLTIP_TENSORS} more`);
  tooltip.textContent = lines.join('\n');
  tooltip.hidden = false;
  const { innerWidth, innerHeight } = window;
  const box = tooltip.getBoundingClientRect();
  tooltip.style.left = `${Math.min(x + 14, innerWidth - box.width - 4)}px`;
  tooltip.style.top = `${Math.min(y + 14, innerHeight - box.height - 4)}px`;
}

function tensorFigures(t: TensorDiff): string {
  return `rel_l2 ${formatValue(metricOf(t, 'rel_l2'))} · cosine ${formatValue(t.cosine)} · max|Δ| ${formatValue(t.max_abs_diff)} · changed ${formatValue(t.frac_changed * 100)}%`;
}

function baseFigures(t: TensorDiff): string {
  return `cos_tv ${formatValue(t.cosine_tv)} · sign agreement ${percentOrNone(t.sign_agreement)} · conflict ${formatValue((t.conflict ?? NaN) * 100)}%`;
}

/** A share as a percentage; null means no weight was changed by both task vectors. */
function percentOrNone(share: number | null | undefined): string {
  return share === null ? 'no overlap' : share === undefined ? '—' : `${formatValue(share * 100)}%`;
}

// ---- detail pane ----

function renderDetail(): void {
  const cell = state.selected && grid?.byKey.get(cellKey(state.selected.row, state.selected.module));
  if (!cell) {
    detailPane.replaceChildren(el('h2', { textContent: 'Details' }), el('p', { className: 'muted', textContent: 'Select a cell (click, or focus the heatmap and use the arrow keys) to see how its tensors changed.' }));
    return;
  }
  const spec = currentView() === 'interference' ? metricSpec('conflict') : currentMetric();
  const blocks = cell.tensors.slice(0, DETAIL_TENSORS).map((t) => {
    const rows: [string, string][] = [
      ['elements', formatCount(t.numel)],
      ['‖b−a‖', formatValue(t.l2_diff)],
      ['‖b−a‖/‖a‖', formatValue(metricOf(t, 'rel_l2'))],
      ['cosine', formatValue(t.cosine)],
      ['max |b−a|', formatValue(t.max_abs_diff)],
      ['changed', `${formatValue(t.frac_changed * 100)}%`],
      ['mean b−a', formatValue(t.mean_diff)],
      ['std b−a', formatValue(t.std_diff)],
    ];
    if (t.conflict !== undefined) {
      rows.push(
        ['task vector cosine', formatValue(t.cosine_tv)],
        ['sign agreement', percentOrNone(t.sign_agreement)],
        ['conflict', `${formatValue(t.conflict * 100)}%`],
        ['‖a−base‖/‖base‖', formatValue(t.rel_norm_a)],
        ['‖b−base‖/‖base‖', formatValue(t.rel_norm_b)],
      );
    }
    const charts = el('div', { className: 'detail-charts', dataset: { name: t.name } });
    return el('div', { className: 'tensor-detail' }, [
      el('h3', { className: 'mono', textContent: t.name }),
      t.sampled ? el('p', { className: 'muted', textContent: 'The figures in this table are from the sample (refining…); the charts below read every element.' }) : null,
      el('table', { className: 'metrics' }, rows.map(([k, v]) => el('tr', {}, [el('th', { scope: 'row', textContent: k }), el('td', { className: 'mono', textContent: v })]))),
      charts,
    ]);
  });
  detailPane.replaceChildren(
    ...present(
      el('h2', { textContent: cellTitle(cell) }),
      cell.tensors.length > 1 ? el('p', { className: 'muted', textContent: `${cell.tensors.length} tensors in this cell; ${spec.key}: ${aggregationNote(spec)} = ${formatValue(cellValue(cell, spec))}.` }) : null,
      ...blocks,
      cell.tensors.length > DETAIL_TENSORS ? el('p', { className: 'muted', textContent: `… and ${cell.tensors.length - DETAIL_TENSORS} more tensors (see the CSV export).` }) : null,
    ),
  );
  for (const t of cell.tensors.slice(0, DETAIL_TENSORS)) {
    if (details.has(t.name) || detailErrors.has(t.name)) updateDetailCharts(t.name);
    else requestDetail(t.name);
  }
}

function requestDetail(name: string): void {
  if ([...pendingDetails.values()].includes(name)) return;
  const requestId = nextRequestId++;
  pendingDetails.set(requestId, name);
  channel.post({ type: 'detail', requestId, name, bins: HISTOGRAM_BINS });
  const target = chartsFor(name);
  target?.replaceChildren(el('div', { className: 'loading' }, [el('vscode-progress-ring'), el('span', { className: 'muted', textContent: 'Reading both tensors…' })]));
}

function chartsFor(name: string): HTMLElement | undefined {
  return Array.from(detailPane.querySelectorAll<HTMLElement>('.detail-charts')).find((e) => e.dataset.name === name);
}

function updateDetailCharts(name: string): void {
  const target = chartsFor(name);
  if (!target) return;
  const error = detailErrors.get(name);
  if (error) {
    target.replaceChildren(el('p', { className: 'error-text', role: 'alert', textContent: `Could not read this tensor's values: ${error}` }));
    return;
  }
  const detail = details.get(name);
  if (!detail) return;
  const width = Math.max(240, Math.min(420, target.clientWidth || 320));
  const rowsPerBar = detail.rows.count / Math.max(1, detail.rows.diffNorm.length);
  target.replaceChildren(
    el('h4', { textContent: 'Distribution of b − a' }),
    el('p', { className: 'muted caption', textContent: `${formatCount(detail.unchanged)} of ${formatCount(detail.numel)} elements unchanged${detail.nonFinite ? `; ${formatCount(detail.nonFinite)} NaN/∞ left out` : ''}. Counts on a symlog axis.` }),
    histogramChart(detail, width, 150),
    el('h4', { textContent: 'Change per row ‖Δrow‖ / ‖a row‖' }),
    el('p', { className: 'muted caption', textContent: `${formatCount(detail.rows.count)} rows along dim 0${rowsPerBar > 1 ? `, ${rowsPerBar.toFixed(1)} rows per bar on average` : ''}.` }),
    rowProfileChart(detail, width, 130),
  );
}

// ---- not compared ----

function renderMismatches(): void {
  if (!report) return;
  const { only_in_a: onlyA, only_in_b: onlyB, shape_mismatch: shapes } = report;
  const notInBase = report.base_mismatch ?? [];
  const notComparable = report.tensors.filter((t) => t.not_comparable).map((t) => t.name);
  const skipped = report.skipped ?? [];
  const total = onlyA.length + onlyB.length + shapes.length + notInBase.length + notComparable.length + skipped.length;
  const list = (title: string, items: string[]) =>
    items.length ? el('div', { className: 'mismatch-group' }, [el('h3', { textContent: `${title} (${items.length})` }), el('ul', { className: 'mono' }, items.map((i) => el('li', { textContent: i })))]) : null;
  const counts = [
    `${onlyA.length} only in a`, `${onlyB.length} only in b`, `${shapes.length} with different shapes`,
    ...(notInBase.length ? [`${notInBase.length} without a matching base tensor`] : []),
    ...(notComparable.length ? [`${notComparable.length} not comparable (only NaN or infinity)`] : []),
    ...(skipped.length ? [`${skipped.length} skipped`] : []),
  ];
  mismatches.replaceChildren(
    el('summary', { textContent: total ? `Not compared: ${counts.join(', ')}` : 'Every tensor name and shape matches' }),
    ...(total
      ? present(
          list(`Only in a (${request?.a.label ?? 'a'})`, onlyA),
          list(`Only in b (${request?.b.label ?? 'b'})`, onlyB),
          list(
            'Different shapes',
            shapes.map((m) => `${m.name}: [${m.shapeA.join(', ')}] vs [${m.shapeB.join(', ')}]${m.overlap ? ` — first ${formatCount(m.overlapRows ?? 0)} rows compared: rel_l2 ${formatValue(m.overlap.rel_l2)}` : ''}`),
          ),
          list(`Compared, but no task-vector figures (missing or reshaped in ${request?.base?.label ?? 'the base'})`, notInBase),
          list('Not comparable: every position holds NaN or infinity in a or b', notComparable),
          list('Skipped', skipped.map((t) => `${t.name}: ${t.reason}`)),
        )
      : [el('p', { className: 'muted', textContent: 'Both checkpoints have the same tensors with the same shapes.' })]),
  );
  mismatches.open = Boolean(state.mismatchesOpen) || (report.tensors.length === 0 && total > 0);
}

/** Children for replaceChildren without the conditional ones that are absent. */
function present(...items: (Node | string | null | undefined)[]): (Node | string)[] {
  return items.filter((item): item is Node | string => item !== null && item !== undefined);
}

// ---- export ----

function exportLabel(format: ExportFormat): string {
  return format === 'png' || format === 'svg' ? `Export the visible heatmap as ${format.toUpperCase()}` : `Export every tensor's figures as ${format.toUpperCase()}`;
}

async function exportAs(format: ExportFormat): Promise<void> {
  if (!report || !request) return;
  const stem = `${request.a.label}-vs-${request.b.label}`.replace(/[^\w.-]+/g, '_');
  try {
    if (format === 'csv') channel.post({ type: 'export', format, suggestedName: `${stem}.csv`, data: reportToCsv(report) });
    else if (format === 'json') channel.post({ type: 'export', format, suggestedName: `${stem}.json`, data: JSON.stringify(report, null, 2) });
    else {
      const interference = currentView() === 'interference';
      const svgs = interference ? [conflictHeatmap.svg, agreementHeatmap.svg] : [mainHeatmap.svg];
      const background = getComputedStyle(document.body).backgroundColor || '#ffffff';
      const svg = serializeSvgs(svgs, background);
      const name = `${stem}-${interference ? 'interference' : currentMetric().key}.${format}`;
      if (format === 'svg') channel.post({ type: 'export', format, suggestedName: name, data: svg.text });
      else channel.post({ type: 'export', format, suggestedName: name, data: await svgToPngBase64(svg) });
    }
  } catch (error) {
    failure = { title: `Export as ${format.toUpperCase()} failed`, message: error instanceof Error ? error.message : String(error), hint: 'Try another format (SVG keeps the same picture).' };
    renderStatus();
  }
}

// A reload restores the title at once; the host re-sends the report on 'ready'.
renderTitle();
renderStatus();
renderDetail();
