// Tensor statistics on the WebAssembly kernels; the JavaScript reference is summarize and
// addToHistogram in src/core/stats/accumulate.ts. Counts, minimum and maximum are identical;
// the sums (and so mean and m2) differ only by the order of the additions.
import type { StatsPartial } from '../stats/accumulate';
import { KIND_CODES, type KernelRegion, type Kernels, type Placed } from './index';

/** summarize() of `count` elements placed in the module's memory. */
export function summarizePlaced(kernels: Kernels, values: Placed, count: number): StatsPartial {
  const k = kernels.exports;
  const kind = KIND_CODES[values.kind];
  k.statsSums(kind, values.region.offset, count);
  const [finite, sum, min, max, zeros, nan, inf] = kernels.results(7);
  const mean = finite > 0 ? sum / finite : 0;
  let m2 = 0;
  if (finite > 0) {
    k.statsM2(kind, values.region.offset, count, mean);
    m2 = kernels.results(1)[0];
  }
  return { count, finite, mean, m2, min, max, zeros, nan, inf };
}

/** addToHistogram() of `count` placed elements into u32 `counts` of `bins` bins in the module's memory. */
export function histogramPlaced(kernels: Kernels, values: Placed, count: number, lo: number, hi: number, counts: KernelRegion, bins: number): void {
  const width = hi - lo;
  const scale = width > 0 ? bins / width : 0;
  kernels.exports.histogram(KIND_CODES[values.kind], values.region.offset, count, lo, hi, scale, bins, counts.offset);
}
