// The checkpoint inspector: summary, a virtualized tensor table grouped by layer, and statistics
// with a value histogram for the selected tensor (computed by the host on worker threads).
import { provideVSCodeDesignSystem, vsCodeBadge, vsCodeButton, vsCodeCheckbox, vsCodeProgressRing, vsCodeTextField } from '@vscode/webview-ui-toolkit';
import { formatBytes, formatParameters } from '../../src/core/format';
import type { InspectorError, InspectorState, InspectorSummary, InspectorToHost, InspectorToWebview, TensorStatsView } from '../../src/shared/protocol/inspector';
import { connect } from '../shared/vscode';
import { el } from '../shared/dom';
import { drawHistogram } from './histogram';
import { buildRows, type Row } from './rows';
import { VirtualList } from './virtualList';

provideVSCodeDesignSystem().register(vsCodeTextField(), vsCodeBadge(), vsCodeButton(), vsCodeCheckbox(), vsCodeProgressRing());

const channel = connect<InspectorToHost, InspectorToWebview, InspectorState>();
const app = document.getElementById('app')!;
let state: InspectorState = channel.getState() ?? { filter: '', collapsed: [], scrollTop: 0 };
let summary: InspectorSummary | undefined;
let rows: Row[] = [];
let list: VirtualList<Row> | undefined;
let detail: HTMLElement | undefined;

function saveState(patch: Partial<InspectorState>): void {
  state = { ...state, ...patch };
  channel.setState(state);
}

channel.onMessage((message) => {
  switch (message.type) {
    case 'loading':
      app.replaceChildren(el('div', { className: 'loading' }, [el('vscode-progress-ring'), el('span', { textContent: `Reading ${message.fileName}…` })]));
      break;
    case 'error':
      renderError(message.error);
      break;
    case 'summary':
      summary = message.summary;
      renderSummary(message.summary, message.selected ?? state.selected);
      break;
    case 'statsProgress':
      if (message.name === state.selected) setDetailStatus(`Computing statistics… ${Math.round(message.fraction * 100)}%`);
      break;
    case 'stats':
      if (message.name === state.selected) renderStats(message.name, message.stats, message.ms);
      break;
    case 'statsError':
      if (message.name === state.selected) setDetailStatus(`Statistics failed: ${message.message}`, true);
      break;
  }
});

function renderError(error: InspectorError): void {
  app.replaceChildren(
    el('div', { className: 'error-banner', role: 'alert' }, [
      el('h2', { textContent: error.title }),
      el('p', { className: 'mono', textContent: error.message }),
      error.rule ? el('p', { className: 'muted', textContent: `Rule: ${error.rule}` }) : null,
      el('p', { textContent: error.hint }),
    ]),
  );
}

function renderSummary(s: InspectorSummary, selected: string | undefined): void {
  const dtypeBadges = Object.entries(s.dtypes)
    .sort((a, b) => b[1][1] - a[1][1])
    .map(([dtype, [count, bytes]]) => el('span', { className: 'dtype-chip', title: `${count} tensors, ${formatBytes(bytes)}` }, [el('span', { className: 'mono', textContent: dtype }), el('vscode-badge', { textContent: String(count) })]));

  const facts = el('dl', { className: 'facts' }, [
    fact('Parameters', formatParameters(s.parameters), `${s.parameters.toLocaleString()} parameters`),
    fact('Size', formatBytes(s.bytes), `${s.bytes.toLocaleString()} bytes of tensor data`),
    fact('Tensors', s.tensors.length.toLocaleString()),
    fact('Format', s.format + (s.files.length > 1 ? ` (${s.files.length} shards)` : '')),
  ]);

  const metadataEntries = Object.entries(s.metadata ?? {});
  const metadata = metadataEntries.length
    ? el('details', { className: 'metadata' }, [
        el('summary', { textContent: `Metadata (${metadataEntries.length})` }),
        el('table', {}, metadataEntries.map(([k, v]) => el('tr', {}, [el('th', { textContent: k }), el('td', { className: 'mono', textContent: typeof v === 'string' ? v : JSON.stringify(v) })]))),
      ])
    : el('p', { className: 'muted', textContent: 'No __metadata__ in this checkpoint.' });

  const filter = el('vscode-text-field', { placeholder: 'Filter tensors (name, dtype or shape)', value: state.filter, ariaLabel: 'Filter tensors' }) as HTMLElement & { value: string };
  filter.classList.add('filter');
  const count = el('span', { className: 'muted count' });
  filter.addEventListener('input', () => {
    saveState({ filter: filter.value });
    refreshRows(count);
  });

  const tableHead = el('div', { className: 'row head', role: 'row' }, ['Name', 'DType', 'Shape', 'Parameters', 'Size'].map((t) => el('span', { role: 'columnheader', textContent: t })));
  const viewport = el('div', { className: 'viewport', role: 'grid', tabIndex: 0, ariaLabel: 'Tensors' });
  detail = el('section', { className: 'detail', ariaLive: 'polite' }, [el('p', { className: 'muted', textContent: 'Select a tensor to see its statistics and value histogram.' })]);

  app.replaceChildren(
    el('header', { className: 'summary' }, [
      el('h1', { textContent: s.fileName, title: s.path }),
      facts,
      el('div', { className: 'dtypes' }, dtypeBadges),
      metadata,
    ]),
    el('div', { className: 'toolbar' }, [filter, count, el('span', { className: 'spacer' }), el('span', { className: 'muted', textContent: `headers read in ${s.loadMs.toFixed(0)} ms` })]),
    el('div', { className: 'split' }, [el('div', { className: 'table' }, [tableHead, viewport]), detail]),
  );

  list = new VirtualList<Row>(viewport, 24, renderRow, {
    onActivate: (row) => activate(row),
    onScroll: (top) => saveState({ scrollTop: top }),
  });
  refreshRows(count);
  list.scrollTo(state.scrollTop);
  if (selected && s.tensors.some((t) => t.name === selected)) select(selected);
}

function fact(label: string, value: string, title?: string): HTMLElement {
  return el('div', { className: 'fact', title: title ?? '' }, [el('dt', { textContent: label }), el('dd', { textContent: value })]);
}

function refreshRows(count: HTMLElement): void {
  if (!summary || !list) return;
  rows = buildRows(summary.tensors, state.filter, new Set(state.collapsed));
  const shown = rows.filter((r) => r.kind === 'tensor').length;
  count.textContent = state.filter ? `${shown.toLocaleString()} of ${summary.tensors.length.toLocaleString()} tensors` : `${summary.tensors.length.toLocaleString()} tensors`;
  list.setItems(rows, (r) => r.kind === 'tensor' && r.tensor.name === state.selected);
}

function renderRow(row: Row, element: HTMLElement): void {
  element.className = row.kind === 'group' ? 'row group' : 'row';
  element.setAttribute('role', 'row');
  if (row.kind === 'group') {
    element.dataset.group = row.key;
    delete element.dataset.name;
    element.setAttribute('aria-expanded', String(!row.collapsed));
    element.replaceChildren(
      el('span', { className: `codicon-like ${row.collapsed ? 'collapsed' : ''}`, textContent: row.collapsed ? '▸' : '▾' }),
      el('span', { className: 'group-label', textContent: row.label }),
      el('span', { className: 'muted', textContent: `${row.count} tensors · ${formatParameters(row.parameters)} params · ${formatBytes(row.bytes)}` }),
    );
    return;
  }
  const t = row.tensor;
  element.dataset.name = t.name;
  delete element.dataset.group;
  element.classList.toggle('selected', t.name === state.selected);
  element.setAttribute('aria-selected', String(t.name === state.selected));
  element.replaceChildren(
    el('span', { className: 'mono name', textContent: t.name, title: t.name }),
    el('span', { className: 'mono', textContent: t.dtype }),
    el('span', { className: 'mono', textContent: `[${t.shape.join(', ')}]` }),
    el('span', { className: 'num', textContent: t.numel.toLocaleString() }),
    el('span', { className: 'num', textContent: formatBytes(t.bytes) }),
  );
}

function activate(row: Row): void {
  if (row.kind === 'group') {
    const collapsed = new Set(state.collapsed);
    if (collapsed.has(row.key)) collapsed.delete(row.key);
    else collapsed.add(row.key);
    saveState({ collapsed: [...collapsed] });
    const count = app.querySelector<HTMLElement>('.count');
    if (count) refreshRows(count);
    return;
  }
  select(row.tensor.name);
}

function select(name: string): void {
  saveState({ selected: name });
  list?.refresh((r) => r.kind === 'tensor' && r.tensor.name === name);
  const tensor = summary?.tensors.find((t) => t.name === name);
  if (!tensor || !detail) return;
  detail.replaceChildren(
    el('h2', { className: 'mono', textContent: name }),
    el('p', { className: 'muted', textContent: `${tensor.dtype} [${tensor.shape.join(', ')}] · ${tensor.numel.toLocaleString()} elements · ${formatBytes(tensor.bytes)}${summary && summary.files.length > 1 ? ` · ${summary.files[tensor.file]}` : ''}` }),
    el('div', { className: 'stats-status muted', textContent: 'Computing statistics…' }),
    el('div', { className: 'stats' }),
    el('div', { className: 'histogram' }),
  );
  channel.post({ type: 'selectTensor', name });
}

function setDetailStatus(text: string, isError = false): void {
  const status = detail?.querySelector<HTMLElement>('.stats-status');
  if (!status) return;
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function renderStats(name: string, stats: TensorStatsView, ms: number): void {
  if (!detail) return;
  setDetailStatus(`Computed over ${stats.count.toLocaleString()} elements in ${ms.toFixed(0)} ms on worker threads.`);
  const fmt = (v: number | null) => (v === null ? '—' : Number.isInteger(v) ? v.toLocaleString() : v.toPrecision(6));
  const cells: [string, string][] = [
    ['min', fmt(stats.min)],
    ['max', fmt(stats.max)],
    ['mean', fmt(stats.mean)],
    ['std', fmt(stats.std)],
    ['zeros', stats.zeros.toLocaleString()],
    ['NaN', stats.nan.toLocaleString()],
    ['±inf', stats.inf.toLocaleString()],
  ];
  detail.querySelector('.stats')!.replaceChildren(
    el('table', { className: 'stats-table' }, cells.map(([k, v]) => el('tr', { dataset: { stat: k } }, [el('th', { textContent: k }), el('td', { className: 'mono num', textContent: v })]))),
  );
  const host = detail.querySelector<HTMLElement>('.histogram')!;
  if (stats.histogram && stats.histogram.counts.length) drawHistogram(host, stats.histogram, name);
  else host.replaceChildren(el('p', { className: 'muted', textContent: 'No finite values to draw.' }));
}
