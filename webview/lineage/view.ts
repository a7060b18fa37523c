// The SVG drawing of the lineage graph. The layout and the DOM are built once per graph; zoom and
// pan only change one transform, and selection, search and label visibility only toggle classes
// on the elements concerned, so a 1,000-node graph stays smooth.
import { curveBumpY, line, select, zoom, zoomIdentity, type Selection, type ZoomBehavior, type ZoomTransform } from 'd3';
import { edgeTooltip, nodeAriaLabel, nodeSummary, nodeTooltip, type TooltipText } from './describe';
import { defaultLayoutOptions, layoutDag, type Layout } from './layout';
import { lineageOf, type DrawnEdge, type GraphModel } from './model';
import { kinds } from './theme';

const svgNs = 'http://www.w3.org/2000/svg';
const nodeHeight = 40;
const minNodeWidth = 110;
const maxNodeWidth = 240;
const textLeft = 12;
const textRight = 10;
/** How long after the last scale change labels come back. */
const ZOOM_SETTLE_MS = 120;

/**
 * Zoom levels where labels change: below hideSummaryBelow the summary line goes; below
 * compactNamesBelow the name is drawn larger (and shorter) so that it stays readable on screen,
 * as a fitted view of a few dozen models needs; below hideLabelsBelow there are no labels.
 */
const hideSummaryBelow = 0.85;
const compactNamesBelow = 0.55;
const hideLabelsBelow = 0.3;
/** Font size of the compact names, in graph units (about 8 to 11 screen pixels where they show). */
const compactFontSize = 20;
const padding = 32;

export interface GraphViewEvents {
  /** A node was chosen by click or Enter. */
  activate(id: string): void;
  /** A node was double-clicked or Shift+Enter / I was pressed on it. */
  inspect(id: string): void;
  /** Selection or transform changed (persist the view state). */
  changed(): void;
}

export interface RenderTimings {
  layoutMs: number;
  renderMs: number;
}

export class GraphView {
  readonly svg: SVGSVGElement;
  private readonly viewport: SVGGElement;
  private readonly edgeLayer: SVGGElement;
  private readonly hitLayer: SVGGElement;
  private readonly nodeLayer: SVGGElement;
  private readonly tooltip: HTMLDivElement;
  private readonly zoomBehavior: ZoomBehavior<SVGSVGElement, unknown>;
  private readonly svgSelection: Selection<SVGSVGElement, unknown, null, undefined>;
  private model: GraphModel | undefined;
  private layout: Layout | undefined;
  private nodeElements = new Map<string, SVGGElement>();
  private edgeElements = new Map<string, SVGPathElement>();
  private edgesByIndex: DrawnEdge[] = [];
  /** Nodes by drawn row (same y), left to right: arrow-key neighbours. */
  private rows = new Map<string, { row: string[]; index: number }>();
  private selected: string | undefined;
  private highlighted: { nodes: Set<string>; edges: Set<string> } = { nodes: new Set(), edges: new Set() };
  private matches = new Set<string>();
  private currentMatch: string | undefined;
  private focusable: string | undefined;
  private labelLevel: 'all' | 'names' | 'compact' | 'none' = 'all';
  private lastScale = 1;
  private zoomSettle: ReturnType<typeof setTimeout> | undefined;
  /** Drawing-space boxes of every node and edge element, for culling. */
  private boxes: { element: SVGElement; x0: number; y0: number; x1: number; y1: number; culled: boolean }[] = [];
  /** The drawing-space area whose elements are shown; undefined = all shown. */
  private covered: { x0: number; y0: number; x1: number; y1: number } | undefined;
  private fitWhenSized = false;

  /** `reservedBottom` gives the height an overlay (the legend) covers at the bottom of the view. */
  constructor(container: HTMLElement, private readonly events: GraphViewEvents, private readonly reservedBottom: () => number = () => 0) {
    this.svg = document.createElementNS(svgNs, 'svg');
    this.svg.classList.add('lineage-svg');
    this.svg.setAttribute('role', 'group');
    this.svg.setAttribute('aria-label', 'Lineage graph. Arrow keys move between models, Enter selects, Shift+Enter inspects, plus and minus zoom, F fits.');
    this.svg.innerHTML = `<defs>
      <marker id="lineage-arrow" class="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,1 L9,5 L0,9 z"/></marker>
      <marker id="lineage-arrow-hl" class="arrow highlighted" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,1 L9,5 L0,9 z"/></marker>
    </defs>`;
    this.viewport = this.group(this.svg, 'viewport');
    this.edgeLayer = this.group(this.viewport, 'edges');
    this.hitLayer = this.group(this.viewport, 'edge-hits');
    this.nodeLayer = this.group(this.viewport, 'nodes');
    container.append(this.svg);
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'tooltip';
    this.tooltip.hidden = true;
    this.tooltip.setAttribute('role', 'tooltip');
    document.body.append(this.tooltip);

    this.svgSelection = select(this.svg);
    this.zoomBehavior = zoom<SVGSVGElement, unknown>()
      .scaleExtent([0.02, 4])
      .on('zoom', (event: { transform: ZoomTransform }) => this.onZoom(event.transform))
      .on('end', () => this.events.changed());
    this.svgSelection.call(this.zoomBehavior).on('dblclick.zoom', null);

    this.svg.addEventListener('click', (event) => {
      const id = this.nodeIdAt(event.target);
      // The second click of a double-click is not a new choice.
      if (id && event.detail <= 1) this.activate(id);
    });
    this.svg.addEventListener('dblclick', (event) => {
      const id = this.nodeIdAt(event.target);
      if (id) this.events.inspect(id);
    });
    this.svg.addEventListener('pointerover', (event) => this.showTooltipFor(event.target, event.clientX, event.clientY));
    this.svg.addEventListener('pointermove', (event) => {
      if (!this.tooltip.hidden) this.placeTooltip(event.clientX, event.clientY);
    });
    this.svg.addEventListener('pointerout', () => this.hideTooltip());
    this.svg.addEventListener('pointerdown', () => this.hideTooltip());
    this.svg.addEventListener('wheel', () => this.hideTooltip(), { passive: true });
    this.svg.addEventListener('keydown', (event) => this.onKey(event));
    this.svg.addEventListener('focusin', (event) => {
      const id = this.nodeIdAt(event.target);
      if (id) this.showTooltipFor(event.target, undefined, undefined);
    });
    this.svg.addEventListener('focusout', () => this.hideTooltip());
    new ResizeObserver(() => {
      if (this.fitWhenSized && this.svg.clientWidth > 0 && this.svg.clientHeight > 0) this.fit(false);
      else this.cull(this.transform);
    }).observe(this.svg);
  }

  /** Lays out and draws a graph; keeps the transform and selection unless told otherwise. */
  setGraph(model: GraphModel, restore?: { transform?: { k: number; x: number; y: number }; selectedId?: string }): RenderTimings {
    const firstGraph = this.layout === undefined;
    const started = performance.now();
    const measure = textMeasurer();
    const sizes = model.nodes.map((node) => {
      const label = fitText(node.label, maxNodeWidth - textLeft - textRight, (t) => measure(t, 'label'));
      const summary = nodeSummary(node);
      const content = Math.max(measure(label, 'label'), measure(summary, 'summary'));
      const width = Math.min(maxNodeWidth, Math.max(minNodeWidth, Math.ceil(content) + textLeft + textRight));
      // Names of one family share their start: the compact one keeps both ends.
      const compact = fitTextMiddle(node.label, width - textLeft - textRight, (t) => measure(t, 'compact'));
      return { id: node.id, label, compact, summary, width, height: nodeHeight };
    });
    const layout = layoutDag(sizes, model.edges, defaultLayoutOptions);
    const laidOut = performance.now();

    this.model = model;
    this.layout = layout;
    this.edgesByIndex = model.edges;
    this.boxes = [];
    this.covered = undefined;
    this.drawEdges(model, layout);
    this.drawNodes(model, layout, sizes);
    this.indexRows(layout);
    this.matches = new Set([...this.matches].filter((id) => this.nodeElements.has(id)));
    for (const id of this.matches) this.nodeElements.get(id)!.classList.add('match');

    const keep = restore?.selectedId ?? this.selected;
    this.selected = undefined;
    this.highlighted = { nodes: new Set(), edges: new Set() };
    this.svg.classList.remove('has-selection');
    if (keep && this.nodeElements.has(keep)) this.select(keep);
    this.setFocusable(this.selected ?? model.nodes[0]?.id);

    if (restore?.transform) this.svgSelection.call(this.zoomBehavior.transform, zoomIdentity.translate(restore.transform.x, restore.transform.y).scale(restore.transform.k));
    else if (firstGraph) this.fit(false);
    this.onZoom(this.transform);
    const rendered = performance.now();
    const timings = { layoutMs: laidOut - started, renderMs: rendered - laidOut };
    this.svg.dataset.layoutMs = timings.layoutMs.toFixed(1);
    this.svg.dataset.renderMs = timings.renderMs.toFixed(1);
    this.svg.dataset.crossings = String(layout.crossings);
    return timings;
  }

  get transform(): ZoomTransform {
    return zoomTransformOf(this.svg);
  }

  get selectedId(): string | undefined {
    return this.selected;
  }

  has(id: string): boolean {
    return this.nodeElements.has(id);
  }

  fit(animate = true): void {
    if (!this.layout) return;
    const width = this.svg.clientWidth;
    const height = this.svg.clientHeight;
    if (width === 0 || height === 0) {
      // Hidden panel: fit once it gets a size.
      this.fitWhenSized = true;
      return;
    }
    this.fitWhenSized = false;
    // Keep clear of the legend unless that leaves too little room.
    const reserved = this.reservedBottom();
    const usable = reserved < height / 3 ? height - reserved : height;
    const k = Math.min(1.2, (width - 2 * padding) / Math.max(1, this.layout.width), (usable - 2 * padding) / Math.max(1, this.layout.height));
    const target = zoomIdentity.translate((width - this.layout.width * k) / 2, (usable - this.layout.height * k) / 2).scale(k);
    this.moveTo(target, animate);
  }

  zoomBy(factor: number): void {
    const target = this.svgSelection.transition().duration(reducedMotion() ? 0 : 200);
    this.zoomBehavior.scaleBy(target, factor);
  }

  /** Centres a node at a readable zoom, selects and flashes it. False if the graph lacks it. */
  focusNode(id: string, options: { flash?: boolean; moveFocus?: boolean } = {}): boolean {
    const node = this.layout?.nodes.get(id);
    if (!node) return false;
    this.select(id);
    this.setFocusable(id);
    const k = Math.min(1.5, Math.max(this.transform.k, 1));
    this.moveTo(zoomIdentity.translate(this.svg.clientWidth / 2 - node.x * k, this.svg.clientHeight / 2 - node.y * k).scale(k), true);
    const element = this.nodeElements.get(id)!;
    element.classList.remove('culled');
    if (options.moveFocus) element.focus({ preventScroll: true });
    if (options.flash) {
      element.classList.remove('flash');
      void element.getBoundingClientRect(); // restart the animation
      element.classList.add('flash');
      window.setTimeout(() => element.classList.remove('flash'), 1600);
    }
    return true;
  }

  /** Selects a node and highlights its ancestors and descendants; undefined clears. */
  select(id: string | undefined): void {
    if (id === this.selected || !this.model) return;
    if (this.selected) {
      const previous = this.nodeElements.get(this.selected);
      previous?.classList.remove('selected');
      previous?.removeAttribute('aria-current');
    }
    for (const n of this.highlighted.nodes) this.nodeElements.get(n)?.classList.remove('in-lineage');
    for (const e of this.highlighted.edges) this.edgeElements.get(e)?.classList.remove('in-lineage');
    this.selected = id !== undefined && this.nodeElements.has(id) ? id : undefined;
    this.highlighted = this.selected ? lineageOf(this.model, this.selected) : { nodes: new Set(), edges: new Set() };
    for (const n of this.highlighted.nodes) this.nodeElements.get(n)?.classList.add('in-lineage');
    for (const e of this.highlighted.edges) this.edgeElements.get(e)?.classList.add('in-lineage');
    if (this.selected) {
      const element = this.nodeElements.get(this.selected)!;
      element.classList.add('selected');
      element.setAttribute('aria-current', 'true');
    }
    this.svg.classList.toggle('has-selection', this.selected !== undefined);
    this.events.changed();
  }

  /** Marks search matches; `current` gets a stronger mark. */
  setMatches(ids: string[], current: string | undefined): void {
    for (const id of this.matches) this.nodeElements.get(id)?.classList.remove('match');
    if (this.currentMatch) this.nodeElements.get(this.currentMatch)?.classList.remove('current-match');
    this.matches = new Set(ids.filter((id) => this.nodeElements.has(id)));
    for (const id of this.matches) this.nodeElements.get(id)!.classList.add('match');
    this.currentMatch = current && this.nodeElements.has(current) ? current : undefined;
    if (this.currentMatch) this.nodeElements.get(this.currentMatch)!.classList.add('current-match');
  }

  /** Size of the drawing in graph units, and the margin a fit leaves around it. */
  bounds(): { width: number; height: number; padding: number } {
    return { width: this.layout?.width ?? 0, height: this.layout?.height ?? 0, padding };
  }

  /** Runs `fn` with every label visible and no selection or search marks, as an export wants it. */
  withPlainRendering<T>(fn: () => T): T {
    const transient = ['labels-none', 'labels-names', 'labels-compact', 'has-selection', 'selected', 'in-lineage', 'match', 'current-match', 'flash', 'culled'];
    const marked = [this.svg, ...this.svg.querySelectorAll<SVGElement>(transient.map((c) => '.' + c).join(','))];
    const saved = marked.map((element) => [element, element.getAttribute('class') ?? ''] as const);
    for (const element of marked) element.classList.remove(...transient);
    try {
      return fn();
    } finally {
      for (const [element, classes] of saved) element.setAttribute('class', classes);
    }
  }

  private group(parent: Element, className: string): SVGGElement {
    const g = document.createElementNS(svgNs, 'g');
    g.setAttribute('class', className);
    parent.append(g);
    return g;
  }

  private drawEdges(model: GraphModel, layout: Layout): void {
    const curve = line().curve(curveBumpY);
    const paths: SVGPathElement[] = [];
    const hits: SVGPathElement[] = [];
    this.edgeElements = new Map();
    for (const routed of layout.edges) {
      const edge = model.edges[routed.index];
      const d = curve(routed.points) ?? '';
      const path = document.createElementNS(svgNs, 'path');
      path.setAttribute('d', d);
      path.setAttribute('class', `edge relation-${edge.facts[0].relation}${edge.inferred ? ' inferred' : ''}${edge.undirected ? ' undirected' : ''}`);
      path.dataset.parent = edge.parent;
      path.dataset.child = edge.child;
      if (edge.inferred && edge.confidence !== undefined) path.dataset.confidence = String(edge.confidence);
      paths.push(path);
      this.edgeElements.set(edge.key, path);
      const hit = document.createElementNS(svgNs, 'path');
      hit.setAttribute('d', d);
      hit.setAttribute('class', 'edge-hit');
      hit.dataset.edge = String(routed.index);
      hits.push(hit);
      const xs = routed.points.map((p) => p[0]);
      const ys = routed.points.map((p) => p[1]);
      const box = { x0: Math.min(...xs), y0: Math.min(...ys), x1: Math.max(...xs), y1: Math.max(...ys), culled: false };
      this.boxes.push({ element: path, ...box }, { element: hit, ...box });
    }
    this.edgeLayer.replaceChildren(...paths);
    this.hitLayer.replaceChildren(...hits);
  }

  private drawNodes(model: GraphModel, layout: Layout, sizes: { id: string; label: string; compact: string; summary: string; width: number }[]): void {
    const elements: SVGGElement[] = [];
    this.nodeElements = new Map();
    const template = document.createElementNS(svgNs, 'g');
    template.innerHTML =
      `<rect class="node-box" height="${nodeHeight}" rx="4"></rect><rect class="node-bar" width="4" height="${nodeHeight}" rx="2"></rect>` +
      `<text class="node-label" x="${textLeft}" y="17"></text><text class="node-summary" x="${textLeft}" y="32"></text>` +
      `<text class="node-label-compact" x="${textLeft}" y="${Math.round((nodeHeight + 0.7 * compactFontSize) / 2)}" font-size="${compactFontSize}"></text>`;
    model.nodes.forEach((node, i) => {
      const placed = layout.nodes.get(node.id)!;
      const { label, compact, summary, width } = sizes[i];
      const g = document.createElementNS(svgNs, 'g');
      const kind = (kinds as readonly string[]).includes(node.kind) ? node.kind : 'other';
      g.setAttribute('class', `node kind-${kind}`);
      g.setAttribute('transform', `translate(${placed.x - width / 2},${placed.y - nodeHeight / 2})`);
      g.setAttribute('tabindex', '-1');
      g.setAttribute('role', 'button');
      g.setAttribute('aria-label', nodeAriaLabel(node, model));
      g.dataset.id = node.id;
      g.dataset.kind = node.kind;
      const body = template.cloneNode(true) as SVGGElement;
      body.querySelector('.node-box')!.setAttribute('width', String(width));
      // Names come from the file system and cards: set as text, never as markup.
      body.querySelector('.node-label')!.textContent = label;
      body.querySelector('.node-summary')!.textContent = summary;
      body.querySelector('.node-label-compact')!.textContent = compact;
      g.append(...body.childNodes);
      elements.push(g);
      this.nodeElements.set(node.id, g);
      this.boxes.push({ element: g, x0: placed.x - width / 2, y0: placed.y - nodeHeight / 2, x1: placed.x + width / 2, y1: placed.y + nodeHeight / 2, culled: false });
    });
    this.nodeLayer.replaceChildren(...elements);
  }

  private indexRows(layout: Layout): void {
    const byRow = new Map<string, { id: string; x: number }[]>();
    for (const node of layout.nodes.values()) {
      const key = node.y.toFixed(1);
      const list = byRow.get(key) ?? [];
      list.push({ id: node.id, x: node.x });
      byRow.set(key, list);
    }
    this.rows = new Map();
    for (const list of byRow.values()) {
      const row = list.sort((a, b) => a.x - b.x).map((n) => n.id);
      row.forEach((id, index) => this.rows.set(id, { row, index }));
    }
  }

  private onZoom(transform: ZoomTransform): void {
    this.viewport.setAttribute('transform', transform.toString());
    // Every change of scale makes the browser lay out all visible SVG text again, which drops
    // frames on large graphs; labels step aside while the scale moves (panning keeps them).
    if (transform.k !== this.lastScale) {
      this.lastScale = transform.k;
      this.svg.classList.add('zooming');
      clearTimeout(this.zoomSettle);
      this.zoomSettle = setTimeout(() => this.svg.classList.remove('zooming'), ZOOM_SETTLE_MS);
    }
    this.cull(transform);
    const level = transform.k < hideLabelsBelow ? 'none' : transform.k < compactNamesBelow ? 'compact' : transform.k < hideSummaryBelow ? 'names' : 'all';
    if (level !== this.labelLevel) {
      // Only when crossing a threshold: one class change restyles every label at once.
      this.svg.classList.toggle('labels-none', level === 'none');
      this.svg.classList.toggle('labels-names', level === 'names');
      this.svg.classList.toggle('labels-compact', level === 'compact');
      this.labelLevel = level;
    }
  }

  /**
   * Zoomed in, most of a large graph is off screen but still costs raster time on every zoom
   * step. Elements farther than one screen from the view are hidden; that only changes when the
   * view leaves the covered area or zooms well into it (every screen or so), not per frame.
   * Zoomed out (no labels) is cheap: everything is shown.
   */
  private cull(transform: ZoomTransform): void {
    const width = this.svg.clientWidth;
    const height = this.svg.clientHeight;
    if (transform.k < hideLabelsBelow || width === 0 || height === 0) {
      if (this.covered) {
        for (const box of this.boxes) if (box.culled) this.setCulled(box, false);
        this.covered = undefined;
      }
      return;
    }
    const view = { x0: -transform.x / transform.k, y0: -transform.y / transform.k, x1: (width - transform.x) / transform.k, y1: (height - transform.y) / transform.k };
    const marginX = view.x1 - view.x0;
    const marginY = view.y1 - view.y0;
    const c = this.covered;
    // Still inside, and not zoomed in so far since that the covered area is mostly wasted.
    if (c && view.x0 >= c.x0 && view.y0 >= c.y0 && view.x1 <= c.x1 && view.y1 <= c.y1 && c.x1 - c.x0 < 5 * marginX) return;
    const covered = { x0: view.x0 - marginX, y0: view.y0 - marginY, x1: view.x1 + marginX, y1: view.y1 + marginY };
    this.covered = covered;
    for (const box of this.boxes) {
      const outside = box.x1 < covered.x0 || box.x0 > covered.x1 || box.y1 < covered.y0 || box.y0 > covered.y1;
      if (outside !== box.culled) this.setCulled(box, outside);
    }
  }

  private setCulled(box: { element: SVGElement; culled: boolean }, culled: boolean): void {
    box.culled = culled;
    box.element.classList.toggle('culled', culled);
  }

  private moveTo(target: ZoomTransform, animate: boolean): void {
    if (animate && !reducedMotion()) this.svgSelection.transition().duration(450).call(this.zoomBehavior.transform, target);
    else this.svgSelection.call(this.zoomBehavior.transform, target);
  }

  private activate(id: string): void {
    this.select(id);
    this.setFocusable(id);
    this.events.activate(id);
  }

  /** Roving tabindex: one node is in the tab order; arrows move it. */
  private setFocusable(id: string | undefined): void {
    if (this.focusable) this.nodeElements.get(this.focusable)?.setAttribute('tabindex', '-1');
    this.focusable = id;
    if (id) this.nodeElements.get(id)?.setAttribute('tabindex', '0');
  }

  private onKey(event: KeyboardEvent): void {
    const id = this.nodeIdAt(event.target);
    const move = (next: string | undefined): void => {
      if (!next) return;
      event.preventDefault();
      this.select(next);
      this.setFocusable(next);
      // It may be culled (far off screen) until the view gets there; hidden elements take no focus.
      this.nodeElements.get(next)!.classList.remove('culled');
      this.nodeElements.get(next)!.focus({ preventScroll: true });
      this.ensureVisible(next);
    };
    switch (event.key) {
      case 'Enter':
      case ' ':
        if (!id) return;
        event.preventDefault();
        if (event.shiftKey) this.events.inspect(id);
        else this.activate(id);
        return;
      case 'i':
      case 'I':
        if (id) this.events.inspect(id);
        return;
      case 'ArrowLeft':
      case 'ArrowRight': {
        if (!id) return;
        const place = this.rows.get(id);
        move(place?.row[place.index + (event.key === 'ArrowLeft' ? -1 : 1)]);
        return;
      }
      case 'ArrowUp':
      case 'ArrowDown': {
        if (!id || !this.model || !this.layout) return;
        const edges = event.key === 'ArrowUp' ? this.model.incoming.get(id) : this.model.outgoing.get(id);
        const others = (edges ?? []).map((e) => (event.key === 'ArrowUp' ? e.parent : e.child));
        const here = this.layout.nodes.get(id)!.x;
        others.sort((a, b) => Math.abs(this.layout!.nodes.get(a)!.x - here) - Math.abs(this.layout!.nodes.get(b)!.x - here));
        move(others[0]);
        return;
      }
      case 'Escape':
        this.select(undefined);
        return;
      case '+':
      case '=':
        this.zoomBy(1.25);
        return;
      case '-':
        this.zoomBy(0.8);
        return;
      case 'f':
      case 'F':
        this.fit();
        return;
    }
  }

  private ensureVisible(id: string): void {
    const node = this.layout!.nodes.get(id)!;
    const t = this.transform;
    const [x, y] = t.apply([node.x, node.y]);
    const margin = 40;
    if (x < margin || y < margin || x > this.svg.clientWidth - margin || y > this.svg.clientHeight - margin) {
      this.moveTo(zoomIdentity.translate(this.svg.clientWidth / 2 - node.x * t.k, this.svg.clientHeight / 2 - node.y * t.k).scale(t.k), true);
    }
  }

  private nodeIdAt(target: EventTarget | null): string | undefined {
    const element = target instanceof Element ? target.closest<SVGGElement>('g.node') : null;
    return element?.dataset.id;
  }

  private showTooltipFor(target: EventTarget | null, clientX: number | undefined, clientY: number | undefined): void {
    if (!this.model || !(target instanceof Element)) return;
    let text: TooltipText | undefined;
    const nodeId = this.nodeIdAt(target);
    if (nodeId) text = nodeTooltip(this.model.nodeById.get(nodeId)!, this.model);
    else if (target.classList.contains('edge-hit')) {
      const edge = this.edgesByIndex[Number((target as SVGPathElement).dataset.edge)];
      if (edge) text = edgeTooltip(edge, this.model);
    }
    if (!text) return;
    const title = document.createElement('strong');
    title.textContent = text.title;
    this.tooltip.replaceChildren(title, '\n' + text.lines.join('\n'));
    this.tooltip.hidden = false;
    if (clientX === undefined || clientY === undefined) {
      // Keyboard focus: next to the node.
      const box = target.closest('g.node')!.getBoundingClientRect();
      this.placeTooltip(box.right - 8, box.bottom - 8);
    } else this.placeTooltip(clientX, clientY);
  }

  private placeTooltip(clientX: number, clientY: number): void {
    const box = this.tooltip.getBoundingClientRect();
    const x = Math.min(clientX + 14, window.innerWidth - box.width - 4);
    const y = clientY + 16 + box.height > window.innerHeight ? clientY - box.height - 8 : clientY + 16;
    this.tooltip.style.left = `${Math.max(4, x)}px`;
    this.tooltip.style.top = `${Math.max(4, y)}px`;
  }

  private hideTooltip(): void {
    this.tooltip.hidden = true;
  }
}

function zoomTransformOf(svg: SVGSVGElement): ZoomTransform {
  // d3-zoom keeps the current transform on the element.
  return (svg as unknown as { __zoom?: ZoomTransform }).__zoom ?? zoomIdentity;
}

function reducedMotion(): boolean {
  return window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

/** Widths of node texts in the fonts the stylesheet gives them (canvas measurement, cached). */
function textMeasurer(): (text: string, role: 'label' | 'summary' | 'compact') => number {
  const context = document.createElement('canvas').getContext('2d')!;
  const family = getComputedStyle(document.body).fontFamily || 'sans-serif';
  const fonts = { label: `600 12px ${family}`, summary: `11px ${family}`, compact: `600 ${compactFontSize}px ${family}` };
  const cache = new Map<string, number>();
  return (text, role) => {
    const key = role + '\u0000' + text;
    let width = cache.get(key);
    if (width === undefined) {
      context.font = fonts[role];
      width = context.measureText(text).width;
      cache.set(key, width);
    }
    return width;
  };
}

/** The text, shortened with an ellipsis to fit `max` pixels. */
function fitText(text: string, max: number, measure: (text: string) => number): string {
  if (measure(text) <= max) return text;
  let low = 0;
  let high = text.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (measure(text.slice(0, mid) + '…') <= max) low = mid;
    else high = mid - 1;
  }
  return text.slice(0, low) + '…';
}

/** The text, shortened in the middle with an ellipsis to fit `max` pixels: its start and its end stay. */
function fitTextMiddle(text: string, max: number, measure: (text: string) => number): string {
  if (measure(text) <= max) return text;
  const shortened = (keep: number) => text.slice(0, Math.ceil(keep / 2)) + '…' + text.slice(text.length - Math.floor(keep / 2));
  let low = 0;
  let high = text.length - 1;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (measure(shortened(mid)) <= max) low = mid;
    else high = mid - 1;
  }
  return shortened(low);
}
