// The lineage graph webview: toolbar (search, zoom, inspect, export), the graph drawing, a legend
// and an empty state, wired to the host through the typed channel.
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeProgressRing, vsCodeTextField } from '@vscode/webview-ui-toolkit';
import type { LineageGraph } from '../../src/core/lineage/types';
import type { LineageToHost, LineageToWebview, LineageViewState } from '../../src/shared/protocol/lineage';
import { el } from '../shared/dom';
import { connect } from '../shared/vscode';
import { serializeSvg } from './exportSvg';
import { buildModel, findNodes, type GraphModel } from './model';
import { kinds, watchTheme } from './theme';
import { GraphView } from './view';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeTextField(), vsCodeProgressRing());

const channel = connect<LineageToHost, LineageToWebview, LineageViewState>();
let state: LineageViewState = channel.getState() ?? {};
/** Restored once, on the first graph after a (re)load. */
let restoreFromState = true;
let model: GraphModel | undefined;
let pendingFocus: string | undefined;
let matches: string[] = [];
let matchIndex = -1;
let saveTimer: number | undefined;
let scanningNow = true;

watchTheme();

const app = document.getElementById('app')!;
const search = el('vscode-text-field', { placeholder: 'Find a model (name, path or hub id)', ariaLabel: 'Find a model', className: 'search' }) as HTMLElement & { value: string };
const matchCount = el('span', { className: 'muted match-count', ariaLive: 'polite' });
const stats = el('span', { className: 'muted stats' });
const inspectButton = el('vscode-button', { appearance: 'secondary', textContent: 'Inspect', title: 'Open the selected checkpoint in the inspector (Shift+Enter)', disabled: true });
const zoomOutButton = el('vscode-button', { appearance: 'secondary', textContent: '−', ariaLabel: 'Zoom out', title: 'Zoom out (-)' });
const zoomInButton = el('vscode-button', { appearance: 'secondary', textContent: '+', ariaLabel: 'Zoom in', title: 'Zoom in (+)' });
const fitButton = el('vscode-button', { appearance: 'secondary', textContent: 'Fit', title: 'Fit the whole graph in view (F)' });
const exportButton = el('vscode-button', { appearance: 'secondary', textContent: 'Export SVG', title: 'Save the whole graph as an SVG image' });
const toolbar = el('div', { className: 'toolbar', role: 'toolbar', ariaLabel: 'Lineage graph tools' }, [
  search, matchCount, el('span', { className: 'spacer' }), stats, inspectButton, zoomOutButton, zoomInButton, fitButton, exportButton,
]);
const progress = el('div', { className: 'progress-line indeterminate', hidden: true, role: 'progressbar', ariaLabel: 'Scanning for checkpoints' });
const graphArea = el('div', { className: 'graph-area' });
const emptyState = el('div', { className: 'empty-state', hidden: true });
const announcer = el('div', { className: 'visually-hidden', ariaLive: 'polite' });
app.replaceChildren(toolbar, progress, graphArea, announcer);

const view = new GraphView(graphArea, {
  activate(id) {
    channel.post({ type: 'reveal', nodeId: id });
  },
  inspect(id) {
    inspect(id);
  },
  changed() {
    updateInspectButton();
    scheduleSave();
  },
}, () => (legend.open ? legend.offsetHeight + 8 : 0));
const legend = buildLegend();
graphArea.append(legend, emptyState);
showEmpty('Scanning…', true);

channel.onMessage((message) => {
  try {
    switch (message.type) {
      case 'graph':
        showGraph(message.graph, message.scanning);
        break;
      case 'scanning':
        showScanning(message.scanning);
        break;
      case 'focus':
        pendingFocus = message.nodeId;
        applyPendingFocus(true);
        break;
    }
  } catch (error) {
    reportError('Could not draw the lineage graph', error);
  }
});

function showGraph(graph: LineageGraph | undefined, scanning: boolean): void {
  scanningNow = scanning;
  progress.hidden = !scanning;
  if (!graph || graph.nodes.length === 0) {
    model = undefined;
    showEmpty(scanning ? 'Scanning…' : 'No checkpoints indexed yet', scanning);
    stats.textContent = '';
    return;
  }
  model = buildModel(graph);
  emptyState.hidden = true;
  legend.hidden = false;
  setGraphToolsEnabled(true);
  view.svg.style.display = '';
  const restore = restoreFromState ? { transform: state.transform, selectedId: state.selectedId } : undefined;
  restoreFromState = false;
  const timings = view.setGraph(model, restore);
  updateStats();
  stats.title = `Layout ${timings.layoutMs.toFixed(0)} ms, drawing ${timings.renderMs.toFixed(0)} ms` + (model.dangling ? `\n${model.dangling} links to models outside the graph are not drawn.` : '');
  if (state.search) {
    search.value = state.search;
    runSearch(state.search, false);
  }
  updateInspectButton();
  applyPendingFocus(false);
}

function showScanning(scanning: boolean): void {
  scanningNow = scanning;
  progress.hidden = !scanning;
  if (model) updateStats();
  else showEmpty(scanning ? 'Scanning…' : 'No checkpoints indexed yet', scanning);
}

function updateStats(): void {
  if (!model) return;
  const models = `${model.nodes.length} model${model.nodes.length === 1 ? '' : 's'}`;
  const links = `${model.edges.length} link${model.edges.length === 1 ? '' : 's'}`;
  stats.textContent = `${models} · ${links}${scanningNow ? ' · scanning…' : ''}`;
}

function showEmpty(title: string, busy: boolean): void {
  view.svg.style.display = 'none';
  legend.hidden = true;
  setGraphToolsEnabled(false);
  emptyState.hidden = false;
  const refresh = el('vscode-button', { textContent: 'Refresh Checkpoints' });
  refresh.addEventListener('click', () => channel.post({ type: 'refresh' }));
  const hint = busy
    ? 'Looking for checkpoints, adapters, merges and trainer runs in the workspace.'
    : 'Graft draws the models it finds in the workspace, in graft.extraRoots and in the Hugging Face cache. Add a checkpoint folder or refresh.';
  emptyState.replaceChildren(el('div', { className: 'empty-content' }, [
    busy ? el('vscode-progress-ring', { ariaLabel: 'Scanning' }) : null,
    el('h2', { textContent: title }),
    el('p', { className: 'muted', textContent: hint }),
    busy ? null : refresh,
  ]));
}

/** Focus requested by the host (Show in Graph); kept until a graph containing the node arrives. */
function applyPendingFocus(announceMissing: boolean): void {
  if (!pendingFocus || !model) return;
  if (view.focusNode(pendingFocus, { flash: true })) {
    announce(`Showing ${model.nodeById.get(pendingFocus)?.label ?? pendingFocus}`);
    pendingFocus = undefined;
  } else if (announceMissing) announce(`${pendingFocus} is not in the graph yet`);
}

function runSearch(query: string, jump: boolean, backwards = false): void {
  if (!model) return;
  const found = findNodes(model, query).map((node) => node.id);
  const changed = found.join('\n') !== matches.join('\n');
  matches = found;
  if (changed) matchIndex = -1;
  if (jump && matches.length) {
    matchIndex = (matchIndex + (backwards ? -1 : 1) + matches.length) % matches.length;
    const id = matches[matchIndex];
    view.setMatches(matches, id);
    view.focusNode(id, { flash: true });
    channel.post({ type: 'reveal', nodeId: id });
  } else view.setMatches(matches, undefined);
  matchCount.textContent = !query.trim() ? '' : matches.length === 0 ? 'No match' : matchIndex >= 0 ? `${matchIndex + 1} of ${matches.length}` : `${matches.length} match${matches.length === 1 ? '' : 'es'}`;
}

search.addEventListener('input', () => {
  state = { ...state, search: search.value };
  scheduleSave();
  runSearch(search.value, false);
});
search.addEventListener('keydown', (event) => {
  if (event.key === 'Enter') {
    event.preventDefault();
    runSearch(search.value, true, event.shiftKey);
  } else if (event.key === 'Escape' && search.value) {
    event.preventDefault();
    search.value = '';
    state = { ...state, search: '' };
    scheduleSave();
    runSearch('', false);
  }
});
document.addEventListener('keydown', (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'f') {
    event.preventDefault();
    search.focus();
  }
});
zoomInButton.addEventListener('click', () => view.zoomBy(1.25));
zoomOutButton.addEventListener('click', () => view.zoomBy(0.8));
fitButton.addEventListener('click', () => view.fit());
inspectButton.addEventListener('click', () => {
  if (view.selectedId) inspect(view.selectedId);
});
exportButton.addEventListener('click', () => {
  if (!model) return;
  try {
    const background = getComputedStyle(document.body).backgroundColor;
    const data = view.withPlainRendering(() => serializeSvg(view.svg, view.bounds(), background));
    channel.post({ type: 'export', format: 'svg', suggestedName: 'lineage-graph.svg', data });
  } catch (error) {
    reportError('Could not export the graph', error);
  }
});

function inspect(id: string): void {
  const node = model?.nodeById.get(id);
  if (!node) return;
  if (!node.locations?.length) {
    announce(`${node.label} is not on disk (hub only), so there is nothing to inspect.`);
    return;
  }
  channel.post({ type: 'inspect', nodeId: id });
}

function setGraphToolsEnabled(enabled: boolean): void {
  for (const control of [search, zoomOutButton, zoomInButton, fitButton, exportButton]) (control as HTMLElement & { disabled: boolean }).disabled = !enabled;
  if (!enabled) (inspectButton as HTMLElement & { disabled: boolean }).disabled = true;
}

function updateInspectButton(): void {
  const node = view.selectedId ? model?.nodeById.get(view.selectedId) : undefined;
  (inspectButton as HTMLElement & { disabled: boolean }).disabled = !node?.locations?.length;
}

function scheduleSave(): void {
  window.clearTimeout(saveTimer);
  saveTimer = window.setTimeout(() => {
    const t = view.transform;
    state = { ...state, transform: { k: t.k, x: t.x, y: t.y }, selectedId: view.selectedId };
    channel.setState(state);
  }, 200);
}

function announce(text: string): void {
  announcer.textContent = text;
}

function reportError(what: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  app.querySelector('.error-banner')?.remove();
  const banner = el('div', { className: 'error-banner', role: 'alert' }, [
    el('h2', { textContent: what }),
    el('p', { className: 'mono', textContent: message }),
    el('p', { textContent: 'Run "Graft: Refresh Checkpoints" or reopen the graph; details are in the Graft log ("Graft: Show Log").' }),
  ]);
  app.insertBefore(banner, graphArea);
  channel.post({ type: 'error', message: `${what}: ${message}`, detail: error instanceof Error ? error.stack : undefined });
}

function buildLegend(): HTMLDetailsElement {
  const kindItems = kinds.map((kind) =>
    el('li', {}, [el('span', { className: `swatch kind-${kind}`, ariaHidden: 'true' }), kind]),
  );
  const edgeSample = (className: string, label: string): HTMLElement => {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('width', '28');
    svg.setAttribute('height', '10');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', 'M1,5 L25,5');
    path.setAttribute('class', `edge ${className}`);
    svg.append(path);
    return el('li', {}, [svg, label]);
  };
  return el('details', { className: 'legend', open: true }, [
    el('summary', { textContent: 'Legend' }),
    el('ul', { ariaLabel: 'Model kinds' }, kindItems),
    el('ul', { ariaLabel: 'Link styles' }, [
      edgeSample('', 'declared link'),
      edgeSample('inferred', 'inferred from weights'),
      edgeSample('inferred undirected', 'direction unknown'),
    ]),
  ]);
}
