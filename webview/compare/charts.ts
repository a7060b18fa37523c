// Small charts of the detail pane: the histogram of b - a and the per-row change profile.
import * as d3 from 'd3';
import type { TensorDiffDetail } from '../../src/shared/protocol/compare';
import { formatCount } from '../../src/core/format';
import { formatValue } from './model';

const MARGIN = { top: 8, right: 10, bottom: 30, left: 44 };

/** Typed arrays may arrive as typed arrays or, from older hosts, as plain objects or arrays. */
export function numbers(value: unknown): ArrayLike<number> {
  if (ArrayBuffer.isView(value)) return value as unknown as ArrayLike<number>;
  if (Array.isArray(value)) return value;
  if (value && typeof value === 'object') return Object.values(value as Record<string, number>);
  return [];
}

/** An empty chart of the detail pane, described for screen readers by `label`. */
function chartFrame(width: number, height: number, label: string) {
  return d3.create('svg').attr('class', 'chart').attr('width', width).attr('height', height).attr('role', 'img').attr('aria-label', label);
}

export function histogramChart(detail: TensorDiffDetail, width: number, height: number): SVGSVGElement {
  const counts = numbers(detail.histogram.counts);
  const { min, max } = detail.histogram;
  const bins = counts.length;
  const span = max > min ? max - min : 1;
  const step = span / Math.max(1, bins);
  const svg = chartFrame(width, height, `Histogram of b minus a for ${detail.name}: ${bins} bins from ${formatValue(min)} to ${formatValue(max)}, ${formatCount(detail.unchanged)} of ${formatCount(detail.numel)} elements unchanged.`);
  const x = d3
    .scaleLinear()
    .domain(max > min ? [min, max] : [min - 0.5, min + 0.5])
    .range([MARGIN.left, width - MARGIN.right]);
  const peak = d3.max(Array.from(counts)) ?? 0;
  // Symlog keeps the tails visible next to the spike of unchanged (zero-difference) elements.
  const y = d3
    .scaleSymlog()
    .constant(1)
    .domain([0, Math.max(1, peak)])
    .range([height - MARGIN.bottom, MARGIN.top]);
  const bars = Array.from(counts, (count, i) => ({ count, lo: max > min ? min + i * step : min - 0.5, hi: max > min ? min + (i + 1) * step : min + 0.5 }));
  svg
    .append('g')
    .selectAll('rect')
    .data(bars.filter((b) => b.count > 0))
    .join('rect')
    .attr('class', 'bar')
    .attr('x', (b) => x(b.lo))
    .attr('width', (b) => Math.max(1, x(b.hi) - x(b.lo) - 0.5))
    .attr('y', (b) => y(b.count))
    .attr('height', (b) => y(0) - y(b.count))
    .append('title')
    .text((b) => `[${formatValue(b.lo)}, ${formatValue(b.hi)}): ${formatCount(b.count)}`);
  if (min < 0 && max > 0) {
    svg.append('line').attr('class', 'zero-line').attr('x1', x(0)).attr('x2', x(0)).attr('y1', MARGIN.top).attr('y2', height - MARGIN.bottom);
  }
  svg
    .append('g')
    .attr('class', 'axis')
    .attr('transform', `translate(0,${height - MARGIN.bottom})`)
    .call(d3.axisBottom(x).ticks(5).tickFormat((v) => formatValue(Number(v))));
  svg
    .append('g')
    .attr('class', 'axis')
    .attr('transform', `translate(${MARGIN.left},0)`)
    .call(d3.axisLeft(y).tickValues(symlogTicks(peak)).tickFormat((v) => (Number(v) >= 1000 ? d3.format('.2s')(Number(v)) : String(v))));
  return svg.node()!;
}

/** 0 and the powers of ten up to the peak: evenly spaced on a symlog axis, never crowded. */
function symlogTicks(peak: number): number[] {
  const ticks = [0];
  for (let p = 1; p <= peak; p *= 10) ticks.push(p);
  return ticks;
}

export function rowProfileChart(detail: TensorDiffDetail, width: number, height: number): SVGSVGElement {
  const starts = numbers(detail.rows.start);
  const diff = numbers(detail.rows.diffNorm);
  const base = numbers(detail.rows.baseNorm);
  const rows = detail.rows.count;
  const bars = Array.from(starts, (start, i) => {
    const end = i + 1 < starts.length ? starts[i + 1] : rows;
    // A row of zeros in a that became non-zero has no finite relative change.
    const ratio = base[i] > 0 ? diff[i] / base[i] : diff[i] > 0 ? Infinity : 0;
    return { start, end, ratio };
  });
  const finite = bars.map((b) => b.ratio).filter(Number.isFinite);
  const top = Math.max(d3.max(finite) ?? 0, 1e-12);
  const rowsPerBar = starts.length > 0 ? rows / starts.length : 1;
  const svg = chartFrame(width, height, `Relative change per row of ${detail.name}: ${formatCount(rows)} rows${rowsPerBar > 1 ? `, about ${Math.round(rowsPerBar)} per bar` : ''}, largest ${formatValue(top)}.`);
  const x = d3
    .scaleLinear()
    .domain([0, Math.max(1, rows)])
    .range([MARGIN.left, width - MARGIN.right]);
  const y = d3
    .scaleLinear()
    .domain([0, top])
    .nice()
    .range([height - MARGIN.bottom, MARGIN.top]);
  svg
    .append('g')
    .selectAll('rect')
    .data(bars)
    .join('rect')
    .attr('class', (b) => (Number.isFinite(b.ratio) ? 'bar' : 'bar infinite'))
    .attr('x', (b) => x(b.start))
    .attr('width', (b) => Math.max(0.5, x(b.end) - x(b.start) - (bars.length < 200 ? 0.5 : 0)))
    .attr('y', (b) => y(Number.isFinite(b.ratio) ? b.ratio : y.domain()[1]))
    .attr('height', (b) => y(0) - y(Number.isFinite(b.ratio) ? b.ratio : y.domain()[1]))
    .append('title')
    .text((b) => `row${b.end - b.start > 1 ? `s ${b.start}–${b.end - 1}` : ` ${b.start}`}: ${Number.isFinite(b.ratio) ? formatValue(b.ratio) : 'was all zeros'}`);
  svg
    .append('g')
    .attr('class', 'axis')
    .attr('transform', `translate(0,${height - MARGIN.bottom})`)
    .call(d3.axisBottom(x).ticks(5, '~s'));
  svg
    .append('g')
    .attr('class', 'axis')
    .attr('transform', `translate(${MARGIN.left},0)`)
    .call(d3.axisLeft(y).ticks(4).tickFormat((v) => formatValue(Number(v))));
  return svg.node()!;
}
