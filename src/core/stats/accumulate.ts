// Exact, mergeable statistics of tensor values. Each block of values is summarised with a
// two-pass mean / sum of squared deviations in float64; blocks are combined with Chan et al.'s
// parallel formula, so the result does not depend on how a tensor was split across workers.

/** Statistics of a block of elements, mergeable with others. Plain data: crosses threads. */
export interface StatsPartial {
  /** Elements seen, finite or not. */
  count: number;
  /** Finite elements, over which mean, m2, min and max are taken. */
  finite: number;
  mean: number;
  /** Sum of squared deviations from the mean (finite elements). */
  m2: number;
  /** +Infinity / -Infinity when there is no finite element. */
  min: number;
  max: number;
  zeros: number;
  nan: number;
  /** +inf and -inf. */
  inf: number;
}

export interface TensorStats {
  count: number;
  /** Over finite values; null when there are none. */
  min: number | null;
  max: number | null;
  mean: number | null;
  /** Population standard deviation over finite values; null when there are none. */
  std: number | null;
  zeros: number;
  nan: number;
  inf: number;
  /** Equal-width bins over [lo, hi] = [min, max] of the finite values, when asked for. */
  histogram?: { lo: number; hi: number; counts: number[] };
}

export function emptyPartial(): StatsPartial {
  return { count: 0, finite: 0, mean: 0, m2: 0, min: Infinity, max: -Infinity, zeros: 0, nan: 0, inf: 0 };
}

/** Summarises one block of values. */
export function summarize(values: ArrayLike<number>): StatsPartial {
  const length = values.length;
  let finite = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  let zeros = 0;
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < length; i++) {
    const v = values[i];
    if (v - v !== 0) {
      // NaN or ±inf (inf - inf is NaN): rare, so the common path has a single test.
      if (v !== v) nan++;
      else inf++;
      continue;
    }
    finite++;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
    if (v === 0) zeros++;
  }
  const mean = finite > 0 ? sum / finite : 0;
  let m2 = 0;
  if (finite > 0) {
    // Second pass: squared deviations from the block mean, exact where sum-of-squares is not.
    for (let i = 0; i < length; i++) {
      const v = values[i];
      if (v - v === 0) {
        const d = v - mean;
        m2 += d * d;
      }
    }
  }
  return { count: length, finite, mean, m2, min, max, zeros, nan, inf };
}

/** Combines two partials (Chan, Golub & LeVeque's pairwise update). */
export function mergePartials(a: StatsPartial, b: StatsPartial): StatsPartial {
  const finite = a.finite + b.finite;
  let mean = 0;
  let m2 = 0;
  if (finite > 0) {
    const delta = b.mean - a.mean;
    mean = a.mean + (delta * b.finite) / finite;
    m2 = a.m2 + b.m2 + (delta * delta * a.finite * b.finite) / finite;
  }
  return {
    count: a.count + b.count,
    finite,
    mean,
    m2,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    zeros: a.zeros + b.zeros,
    nan: a.nan + b.nan,
    inf: a.inf + b.inf,
  };
}

export function finalize(p: StatsPartial): TensorStats {
  const any = p.finite > 0;
  return {
    count: p.count,
    min: any ? p.min : null,
    max: any ? p.max : null,
    mean: any ? p.mean : null,
    std: any ? Math.sqrt(p.m2 / p.finite) : null,
    zeros: p.zeros,
    nan: p.nan,
    inf: p.inf,
  };
}

/**
 * Adds finite values in [lo, hi] to `counts` (equal-width bins, hi in the last bin). When lo == hi
 * every such value goes to the first bin.
 */
export function addToHistogram(values: ArrayLike<number>, lo: number, hi: number, counts: Uint32Array | Float64Array): void {
  const bins = counts.length;
  const width = hi - lo;
  const scale = width > 0 ? bins / width : 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi)) continue; // also skips NaN
    let bin = Math.floor((v - lo) * scale);
    if (bin >= bins) bin = bins - 1;
    counts[bin]++;
  }
}
