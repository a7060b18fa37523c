// One layer x module heatmap as SVG: rows are blocks, columns module kinds, a strip below for the
// tensors outside any block, a colour legend on top. Cells are drawn in one data join and share
// one delegated set of listeners, so 80 x 12 cells redraw in a few milliseconds.
import * as d3 from 'd3';
import { cellKey, cellValue, colourDomain, GLOBAL_ROW, formatValue, type Cell, type ColourDomain, type Grid, type MetricSpec } from './model';

export interface HeatmapView {
  grid: Grid;
  spec: MetricSpec;
  logScale: boolean;
  /** Shown above the legend, e.g. "Relative change ‖b−a‖/‖a‖". */
  title: string;
  selected?: { row: string; module: string };
  /** Keys of rows (layers) picked by clicking their labels. */
  selectedRows?: readonly string[];
  /** Width available for the whole chart; cells shrink or grow to fit within limits. */
  width: number;
}

export interface HeatmapHandlers {
  hover(cell: Cell | undefined, event: MouseEvent): void;
  select(cell: Cell, via: 'pointer' | 'keyboard'): void;
  /** A row label was clicked; `extend` adds to (or removes from) the selection instead of replacing it. */
  selectRow?(row: string, extend: boolean): void;
}

interface Item {
  cell: Cell;
  value: number;
}

const LEGEND_WIDTH = 220;
const LEGEND_HEIGHT = 48;
const CHAR_WIDTH = 6.6;
const LABEL_ANGLE = 40;
const STRIP_TITLE = 'outside layers';
let nextId = 0;

export function colourScale(domain: ColourDomain, spec: MetricSpec): (value: number) => string {
  if (domain.type === 'diverging') {
    // Red is the "more change / conflict" side, blue the side of agreement.
    const interpolate = spec.changeDirection < 0 ? d3.interpolateRdBu : (t: number) => d3.interpolateRdBu(1 - t);
    const scale = d3.scaleDiverging(interpolate).domain(domain.domain as [number, number, number]).clamp(true);
    return (v) => scale(v);
  }
  if (domain.log) {
    const scale = d3.scaleSequentialLog(d3.interpolateViridis).domain(domain.domain as [number, number]).clamp(true);
    return (v) => (v > 0 ? scale(v) : d3.interpolateViridis(0));
  }
  const scale = d3.scaleSequential(d3.interpolateViridis).domain(domain.domain as [number, number]).clamp(true);
  return (v) => scale(v);
}

export class Heatmap {
  readonly svg: SVGSVGElement;
  private view: HeatmapView | undefined;
  private items = new Map<string, Item>();
  private cellSize = { width: 0, height: 0 };
  private origin = { x: 0, y: 0, stripY: 0 };
  private readonly gradientId = `graft-legend-${nextId++}`;

  constructor(
    container: HTMLElement,
    private readonly role: string,
    private readonly handlers: HeatmapHandlers,
  ) {
    this.svg = d3.create('svg').attr('class', 'heatmap').attr('data-role', role).attr('tabindex', 0).attr('role', 'img').node()!;
    container.append(this.svg);
    const cellOf = (event: Event): Cell | undefined => {
      const target = (event.target as Element | null)?.closest?.('rect.cell, rect.global-cell');
      return target ? (d3.select(target).datum() as Item | undefined)?.cell : undefined;
    };
    this.svg.addEventListener('mousemove', (event) => this.handlers.hover(cellOf(event), event));
    this.svg.addEventListener('mouseleave', (event) => this.handlers.hover(undefined, event));
    this.svg.addEventListener('click', (event) => {
      const label = (event.target as Element | null)?.closest?.('text.row-label');
      const row = label?.getAttribute('data-row');
      if (row && this.handlers.selectRow) {
        this.handlers.selectRow(row, event.ctrlKey || event.metaKey || event.shiftKey);
        return;
      }
      const cell = cellOf(event);
      if (cell) this.handlers.select(cell, 'pointer');
    });
    this.svg.addEventListener('keydown', (event) => this.onKey(event));
  }

  render(view: HeatmapView): void {
    this.view = view;
    const { grid, spec } = view;
    const items: Item[] = grid.cells.map((cell) => ({ cell, value: cellValue(cell, spec) }));
    const globalItems: Item[] = grid.globals.map((cell) => ({ cell, value: cellValue(cell, spec) }));
    this.items = new Map([...items, ...globalItems].map((item) => [cellKey(item.cell.row, item.cell.module), item]));
    const domain = colourDomain([...items, ...globalItems].map((i) => i.value), spec, view.logScale);
    const colour = colourScale(domain, spec);

    const rowLabelWidth = Math.max(40, ...grid.rows.map((r) => r.label.length * CHAR_WIDTH), grid.globals.length ? STRIP_TITLE.length * CHAR_WIDTH : 0) + 16;
    const slant = Math.sin((LABEL_ANGLE * Math.PI) / 180);
    const columnLabelHeight = Math.min(180, Math.max(24, ...grid.modules.map((m) => m.length * CHAR_WIDTH * slant))) + 12;
    const stripLabelHeight = grid.globals.length ? Math.min(180, Math.max(24, ...grid.globals.map((c) => c.module.length * CHAR_WIDTH * slant))) + 12 : 0;
    const columns = Math.max(grid.modules.length, grid.globals.length, 1);
    // Slanted column labels reach past the last columns: keep room for them on the right.
    const reach = (labels: string[], width: number) => Math.max(0, ...labels.map((m, i) => (i + 0.5) * width + m.length * CHAR_WIDTH * Math.cos((LABEL_ANGLE * Math.PI) / 180) - columns * width));
    const fit = (overhang: number) => Math.max(18, Math.min(56, Math.floor((view.width - rowLabelWidth - overhang - 8) / columns)));
    const cellWidth = fit(reach(grid.modules, fit(0)));
    const overhang = reach(grid.modules, cellWidth);
    const cellHeight = grid.rows.length <= 24 ? 22 : grid.rows.length <= 48 ? 16 : 11;
    this.cellSize = { width: cellWidth, height: cellHeight };
    const x0 = rowLabelWidth;
    const y0 = LEGEND_HEIGHT + columnLabelHeight;
    const gridHeight = grid.rows.length * cellHeight;
    const stripY = y0 + gridHeight + (grid.globals.length ? 16 : 0);
    this.origin = { x: x0, y: y0, stripY };
    const width = Math.ceil(Math.max(x0 + columns * cellWidth + overhang + 8, LEGEND_WIDTH + 120));
    const height = stripY + (grid.globals.length ? cellHeight + stripLabelHeight : 0) + 8;

    const svg = d3.select(this.svg).attr('width', width).attr('height', height).attr('viewBox', `0 0 ${width} ${height}`);
    svg.attr('aria-label', `${view.title}: heatmap of ${grid.rows.length} layers by ${grid.modules.length} modules${grid.globals.length ? ` and ${grid.globals.length} tensors outside the layers` : ''}. Arrow keys move the selection; Enter shows its details.`);

    this.renderLegend(svg, domain, colour, view.title, spec);

    const rowIndex = new Map(grid.rows.map((r, i) => [r.key, i]));
    const moduleIndex = new Map(grid.modules.map((m, i) => [m, i]));

    layer(svg, 'col-labels')
      .selectAll('text')
      .data(grid.modules)
      .join('text')
      .attr('class', 'axis-label')
      .attr('transform', (_, i) => `translate(${x0 + i * cellWidth + cellWidth / 2},${y0 - 6}) rotate(${-LABEL_ANGLE})`)
      .text((m) => m);
    layer(svg, 'row-labels')
      .selectAll('text')
      .data(grid.rows)
      .join('text')
      .attr('class', (r) => `axis-label row-label${view.selectedRows?.includes(r.key) ? ' selected' : ''}`)
      .attr('data-row', (r) => r.key)
      .attr('data-layer', (r) => r.layer)
      .attr('text-anchor', 'end')
      .attr('dominant-baseline', 'central')
      .attr('x', x0 - 6)
      .attr('y', (_, i) => y0 + i * cellHeight + cellHeight / 2)
      .text((r) => r.label);
    const picked = grid.rows.map((r, i) => ({ r, i })).filter(({ r }) => view.selectedRows?.includes(r.key));
    layer(svg, 'row-selection')
      .selectAll('rect')
      .data(picked)
      .join('rect')
      .attr('class', 'row-selection')
      .attr('x', x0 - 2)
      .attr('y', ({ i }) => y0 + i * cellHeight - 1)
      .attr('width', grid.modules.length * cellWidth + 2)
      .attr('height', cellHeight + 1);
    layer(svg, 'grid-frame')
      .selectAll('rect')
      .data([0])
      .join('rect')
      .attr('class', 'grid-background')
      .attr('x', x0)
      .attr('y', y0)
      .attr('width', grid.modules.length * cellWidth)
      .attr('height', gridHeight);

    // Every layer cell in one join; attributes are stable hooks for tests.
    layer(svg, 'cells')
      .selectAll<SVGRectElement, Item>('rect.cell')
      .data(items, (d) => cellKey(d.cell.row, d.cell.module))
      .join('rect')
      .attr('class', (d) => (Number.isFinite(d.value) ? 'cell' : 'cell missing'))
      .attr('x', (d) => x0 + moduleIndex.get(d.cell.module)! * cellWidth)
      .attr('y', (d) => y0 + rowIndex.get(d.cell.row)! * cellHeight)
      .attr('width', cellWidth - 1)
      .attr('height', cellHeight - 1)
      .attr('fill', (d) => (Number.isFinite(d.value) ? colour(d.value) : null))
      .attr('data-layer', (d) => d.cell.layer)
      .attr('data-group', (d) => d.cell.group)
      .attr('data-module', (d) => d.cell.module)
      .attr('data-value', (d) => String(d.value));

    const strip = layer(svg, 'strip');
    strip
      .selectAll('text.strip-title')
      .data(grid.globals.length ? [STRIP_TITLE] : [])
      .join('text')
      .attr('class', 'strip-title axis-label')
      .attr('text-anchor', 'end')
      .attr('dominant-baseline', 'central')
      .attr('x', x0 - 6)
      .attr('y', stripY + cellHeight / 2)
      .text((t) => t);
    strip
      .selectAll<SVGRectElement, Item>('rect.global-cell')
      .data(globalItems, (d) => d.cell.module)
      .join('rect')
      .attr('class', (d) => (Number.isFinite(d.value) ? 'global-cell' : 'global-cell missing'))
      .attr('x', (_, i) => x0 + i * cellWidth)
      .attr('y', stripY)
      .attr('width', cellWidth - 1)
      .attr('height', cellHeight - 1)
      .attr('fill', (d) => (Number.isFinite(d.value) ? colour(d.value) : null))
      .attr('data-layer', 'none')
      .attr('data-module', (d) => d.cell.module)
      .attr('data-value', (d) => String(d.value));
    strip
      .selectAll('text.strip-label')
      .data(globalItems)
      .join('text')
      .attr('class', 'strip-label axis-label')
      .attr('text-anchor', 'end')
      .attr('transform', (_, i) => `translate(${x0 + i * cellWidth + cellWidth / 2},${stripY + cellHeight + 6}) rotate(${-LABEL_ANGLE})`)
      .text((d) => d.cell.module);

    this.setSelection(view.selected);
  }

  /** Width of a cell in the last render. */
  get cellWidth(): number {
    return this.cellSize.width;
  }

  /** Moves the selection outline without redrawing the cells. */
  setSelection(selected: { row: string; module: string } | undefined): void {
    if (this.view) this.view.selected = selected;
    const position = selected ? this.positionOf(selected.row, selected.module) : undefined;
    const pad = 1.5;
    layer(d3.select(this.svg), 'selection')
      .selectAll('rect')
      .data(position ? [position] : [])
      .join('rect')
      .attr('class', 'selection')
      .attr('x', (p) => p.x - pad)
      .attr('y', (p) => p.y - pad)
      .attr('width', this.cellSize.width - 1 + 2 * pad)
      .attr('height', this.cellSize.height - 1 + 2 * pad);
  }

  /** Where a cell sits, for tooltips anchored to keyboard selection. */
  cellRect(row: string, module: string): DOMRect | undefined {
    const p = this.positionOf(row, module);
    if (!p) return undefined;
    const box = this.svg.getBoundingClientRect();
    return new DOMRect(box.left + p.x, box.top + p.y, this.cellSize.width, this.cellSize.height);
  }

  private positionOf(row: string, module: string): { x: number; y: number } | undefined {
    const grid = this.view?.grid;
    if (!grid || !this.items.has(cellKey(row, module))) return undefined;
    if (row === GLOBAL_ROW) {
      const i = grid.globals.findIndex((c) => c.module === module);
      return { x: this.origin.x + i * this.cellSize.width, y: this.origin.stripY };
    }
    const r = grid.rows.findIndex((x) => x.key === row);
    const m = grid.modules.indexOf(module);
    return { x: this.origin.x + m * this.cellSize.width, y: this.origin.y + r * this.cellSize.height };
  }

  private renderLegend(svg: d3.Selection<SVGSVGElement, unknown, null, undefined>, domain: ColourDomain, colour: (v: number) => string, title: string, spec: MetricSpec): void {
    const legend = layer(svg, 'legend').attr('transform', 'translate(8,4)');
    const ends = [domain.domain[0], domain.domain[domain.domain.length - 1]];
    const axisScale = domain.log ? d3.scaleLog().domain(ends) : d3.scaleLinear().domain(ends);
    axisScale.range([0, LEGEND_WIDTH]);
    const stops = d3.range(0, 1.0001, 1 / 32).map((t) => ({ t, value: axisScale.invert(t * LEGEND_WIDTH) }));
    legend
      .selectAll('text.legend-title')
      .data([`${title}${domain.log ? ' (log scale)' : ''}`])
      .join('text')
      .attr('class', 'legend-title')
      .attr('x', 0)
      .attr('y', 10)
      .text((t) => t);
    const gradient = legend
      .selectAll('defs')
      .data([0])
      .join('defs')
      .selectAll('linearGradient')
      .data([0])
      .join('linearGradient')
      .attr('id', this.gradientId);
    gradient
      .selectAll('stop')
      .data(stops)
      .join('stop')
      .attr('offset', (s) => `${s.t * 100}%`)
      .attr('stop-color', (s) => colour(s.value));
    legend
      .selectAll('rect.legend-bar')
      .data([0])
      .join('rect')
      .attr('class', 'legend-bar')
      .attr('x', 0)
      .attr('y', 16)
      .attr('width', LEGEND_WIDTH)
      .attr('height', 10)
      .attr('fill', `url(#${this.gradientId})`);
    // Log ticks within one decade come out dense: keep about five, evenly picked.
    const ticks = axisScale.ticks(5);
    const stride = Math.ceil(ticks.length / 5);
    const axis = d3
      .axisBottom(axisScale)
      .tickValues(ticks.filter((_, i) => i % stride === 0))
      .tickSize(4)
      .tickFormat((v) => formatValue(Number(v)));
    legend
      .selectAll<SVGGElement, number>('g.legend-axis')
      .data([0])
      .join('g')
      .attr('class', 'legend-axis')
      .attr('transform', 'translate(0,26)')
      .call(axis)
      .call((g) => g.select('.domain').remove());
    legend
      .selectAll('text.legend-hint')
      .data([domain.type === 'diverging' ? '← opposing · agreeing →' : spec.key === 'conflict' ? 'more conflict →' : 'more change →'])
      .join('text')
      .attr('class', 'legend-hint')
      .attr('x', LEGEND_WIDTH + 10)
      .attr('y', 25)
      .text((t) => t);
  }

  private onKey(event: KeyboardEvent): void {
    const view = this.view;
    if (!view) return;
    const moves: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key === 'Enter' || event.key === ' ') {
      const cell = view.selected && this.items.get(cellKey(view.selected.row, view.selected.module))?.cell;
      if (cell) this.handlers.select(cell, 'keyboard');
      event.preventDefault();
      return;
    }
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const next = this.neighbour(view, move[0], move[1]);
    if (next) this.handlers.select(next, 'keyboard');
  }

  /** The nearest existing cell in a direction; rows of the grid, then the strip, in one column space. */
  private neighbour(view: HeatmapView, dx: number, dy: number): Cell | undefined {
    const { grid } = view;
    const rowCount = grid.rows.length + (grid.globals.length ? 1 : 0);
    const cellAt = (r: number, c: number): Cell | undefined => {
      if (r < grid.rows.length) return this.items.get(cellKey(grid.rows[r].key, grid.modules[c]))?.cell;
      return grid.globals[c];
    };
    const widthOf = (r: number) => (r < grid.rows.length ? grid.modules.length : grid.globals.length);
    let r = 0;
    let c = 0;
    if (view.selected) {
      r = view.selected.row === GLOBAL_ROW ? grid.rows.length : grid.rows.findIndex((x) => x.key === view.selected!.row);
      c = view.selected.row === GLOBAL_ROW ? grid.globals.findIndex((g) => g.module === view.selected!.module) : grid.modules.indexOf(view.selected.module);
      if (r < 0 || c < 0) [r, c] = [0, 0];
      else if (dx !== 0) {
        for (let col = c + dx; col >= 0 && col < widthOf(r); col += dx) if (cellAt(r, col)) return cellAt(r, col);
        return undefined;
      } else {
        for (let row = r + dy; row >= 0 && row < rowCount; row += dy) {
          const width = widthOf(row);
          for (let offset = 0; offset < width; offset++) {
            for (const col of [Math.min(c, width - 1) - offset, Math.min(c, width - 1) + offset]) {
              if (col >= 0 && col < width && cellAt(row, col)) return cellAt(row, col);
            }
          }
        }
        return undefined;
      }
    }
    for (let row = 0; row < rowCount; row++) for (let col = 0; col < widthOf(row); col++) if (cellAt(row, col)) return cellAt(row, col);
    return undefined;
  }
}

/** A <g class=name> child of the svg, created once and reused by later renders. */
function layer(svg: d3.Selection<SVGSVGElement, unknown, null, undefined>, name: string): d3.Selection<SVGGElement, unknown, null, undefined> {
  const existing = svg.select<SVGGElement>(`:scope > g.${name}`);
  return existing.empty() ? svg.append('g').attr('class', name) : existing;
}
