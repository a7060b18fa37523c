// The value histogram of a tensor: bars over [min, max] of its finite values, with a log-count
// toggle because weight distributions are usually very peaked.
import * as d3 from 'd3';
import type { TensorStatsView } from '../../src/shared/protocol/inspector';

type Histogram = NonNullable<TensorStatsView['histogram']>;

export function drawHistogram(host: HTMLElement, histogram: Histogram, label: string, logCounts = false): void {
  const width = Math.max(280, host.clientWidth || 360);
  const height = 180;
  const margin = { top: 8, right: 12, bottom: 28, left: 48 };
  const { lo, hi, counts } = histogram;
  const binWidth = (hi - lo) / counts.length || 1;
  const x = d3.scaleLinear().domain(lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi]).range([margin.left, width - margin.right]);
  const maxCount = d3.max(counts) ?? 1;
  const y = logCounts
    ? d3.scaleSymlog().domain([0, maxCount]).range([height - margin.bottom, margin.top])
    : d3.scaleLinear().domain([0, maxCount]).nice().range([height - margin.bottom, margin.top]);

  const svg = d3.create('svg').attr('class', 'histogram-svg').attr('width', width).attr('height', height).attr('role', 'img').attr('aria-label', `Histogram of ${label}`);
  svg
    .append('g')
    .selectAll('rect')
    .data(counts)
    .join('rect')
    .attr('class', 'bar')
    .attr('x', (_, i) => x(lo + i * binWidth) + 0.5)
    .attr('width', (_, i) => Math.max(1, x(lo + (i + 1) * binWidth) - x(lo + i * binWidth) - 1))
    .attr('y', (d) => y(d))
    .attr('height', (d) => y(0) - y(d))
    .append('title')
    .text((d, i) => `[${(lo + i * binWidth).toPrecision(4)}, ${(lo + (i + 1) * binWidth).toPrecision(4)}): ${d.toLocaleString()}`);
  svg.append('g').attr('class', 'axis').attr('transform', `translate(0,${height - margin.bottom})`).call(d3.axisBottom(x).ticks(6));
  svg.append('g').attr('class', 'axis').attr('transform', `translate(${margin.left},0)`).call(d3.axisLeft(y).ticks(4, '~s'));

  const toggle = document.createElement('vscode-checkbox');
  toggle.textContent = 'Log counts';
  (toggle as HTMLElement & { checked: boolean }).checked = logCounts;
  toggle.addEventListener('change', () => drawHistogram(host, histogram, label, !logCounts));
  host.replaceChildren(svg.node()!, toggle);
}
