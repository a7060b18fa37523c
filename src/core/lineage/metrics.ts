// Pairwise measures between the fingerprints of one architecture group, and a nearest-neighbour
// index so that large groups (a long training run, a merge search: thousands of checkpoints) are
// compared with their near neighbours only.
//
// Metric. Each tensor's samples are weighed by 1/(mean square over the group x sample count), so
// every tensor counts the same whatever its size or scale (an embedding does not drown the norms).
// Distances, squared norms and inner products of differences are all taken in this one weighted
// Euclidean metric, so they combine (a merge fit is a least-squares problem in it).
import type { FingerprintSegment } from './fingerprint';

/** Up to this many members every pair is compared; beyond, candidates come from the index. */
export const EXACT_PAIRS_MAX = 256;
/** Neighbours kept per member when the index is used. */
export const INDEX_NEIGHBOURS = 16;
/** Coordinates of the sketch the index clusters on. */
const SKETCH_SIZE = 64;
/** Clusters probed per member: its own and the next nearest. */
const PROBES = 3;
/** Candidates from the sketches whose exact distances are taken (the neighbours kept are the nearest of them). */
const EXACT_CANDIDATES = 2 * INDEX_NEIGHBOURS;
/** Rounds of k-means over the sketches. */
const KMEANS_ROUNDS = 3;

/** A value equal in unrelated models by construction (zero biases, unit norms): not evidence of descent. */
function trivial(x: number): boolean {
  return x === 0 || x === 1 || x === -1;
}

export interface GroupMetrics {
  n: number;
  values: readonly Float32Array[];
  segments: readonly FingerprintSegment[];
  /** Squared weight of each segment (0: the tensor carries no weight). */
  segmentWeight: Float64Array;
  /** Element count of each segment's tensor. */
  numel: readonly number[];
  /** Squared weight of each position (its segment's). */
  weightAt: Float64Array;
  /** Squared norms. */
  sqNorm: Float64Array;
  /** Positions compared (sampled values whose tensor carries weight). */
  positions: number;
  /** Other members of each member, nearest first (all of them in small groups, the nearest few through the index in large ones). */
  neighbours: number[][];
  /** Weighted distance. */
  dist(i: number, j: number): number;
  /** Estimated share of parameters that are bit-identical (non-trivial values only). */
  shared(i: number, j: number): number;
  /** Whether `neighbours` came from the index (large groups) rather than every pair. */
  indexed: boolean;
}

/**
 * Pairwise metrics of a group. `segments` gives each tensor's place in the fingerprints and
 * `numel` its element count (to weigh bit-identical shares by parameters, not by samples).
 */
export function groupMetrics(values: readonly Float32Array[], segments: readonly FingerprintSegment[], numel: readonly number[]): GroupMetrics {
  const n = values.length;
  const length = values[0]?.length ?? 0;
  const segmentWeight = Float64Array.from(segments, (segment) => {
    let sum = 0;
    let count = 0;
    for (const v of values) {
      for (let k = segment.offset; k < segment.offset + segment.count; k++) {
        const x = v[k];
        if (Number.isFinite(x)) {
          sum += x * x;
          count++;
        }
      }
    }
    const meanSquare = count > 0 ? sum / count : 0;
    return meanSquare > 0 && segment.count > 0 ? 1 / (meanSquare * segment.count) : 0;
  });
  const weightAt = new Float64Array(length);
  segments.forEach((segment, s) => weightAt.fill(segmentWeight[s], segment.offset, segment.offset + segment.count));
  const totalNumel = segments.reduce((sum, _, s) => sum + (segmentWeight[s] > 0 ? numel[s] : 0), 0) || 1;

  const sqNorm = Float64Array.from(values, (v) => {
    let total = 0;
    for (let k = 0; k < length; k++) {
      const x = v[k];
      if (x === x && Number.isFinite(x)) total += weightAt[k] * x * x;
    }
    return total;
  });
  let positions = 0;
  for (let k = 0; k < length; k++) if (weightAt[k] > 0 && Number.isFinite(values[0]?.[k])) positions++;

  const exactDistance = (i: number, j: number): number => {
    const a = values[i];
    const b = values[j];
    let d2 = 0;
    for (let k = 0; k < length; k++) {
      const diff = a[k] - b[k];
      if (diff === diff) d2 += weightAt[k] * diff * diff; // NaN: a value that could not be decoded (or an infinity)
    }
    return Math.sqrt(d2);
  };
  const informative = values.map((v) => segments.map((segment) => {
    let count = 0;
    for (let k = segment.offset; k < segment.offset + segment.count; k++) if (!trivial(v[k])) count++;
    return count;
  }));
  const exactShared = (i: number, j: number): number => {
    const a = values[i];
    const b = values[j];
    let sharedParams = 0;
    for (let s = 0; s < segments.length; s++) {
      if (segmentWeight[s] === 0) continue;
      let equal = 0;
      for (let k = segments[s].offset; k < segments[s].offset + segments[s].count; k++) if (a[k] === b[k] && !trivial(a[k])) equal++;
      if (equal > 0) sharedParams += (equal / Math.max(informative[i][s], informative[j][s])) * numel[s];
    }
    return sharedParams / totalNumel;
  };

  const memo = (compute: (i: number, j: number) => number) => {
    const known = new Map<number, number>();
    return (i: number, j: number): number => {
      if (i === j) return compute === exactDistance ? 0 : 1;
      const key = i < j ? i * n + j : j * n + i;
      let value = known.get(key);
      if (value === undefined) {
        value = compute(i, j);
        known.set(key, value);
      }
      return value;
    };
  };
  const dist = memo(exactDistance);
  const shared = memo(exactShared);

  const indexed = n > EXACT_PAIRS_MAX;
  let neighbours: number[][];
  if (!indexed) {
    const table = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) table[i * n + j] = table[j * n + i] = dist(i, j);
    neighbours = values.map((_, m) => [...Array(n).keys()].filter((x) => x !== m).sort((x, y) => table[x * n + m] - table[y * n + m]));
  } else {
    neighbours = approximateNeighbours(values, weightAt, dist);
  }
  return { n, values, segments, segmentWeight, numel, weightAt, sqNorm, positions, neighbours, dist, shared, indexed };
}

/**
 * Nearest neighbours through an inverted-file index: members are sketched (a fixed subset of
 * weighted coordinates, whose distances estimate the full ones), the sketches clustered (a few
 * k-means rounds, about sqrt(n) clusters), and each member compared with the members of its
 * nearest clusters only; the best candidates are then ranked by their exact distance.
 * About n * sqrt(n) sketch comparisons instead of n^2 full ones.
 */
function approximateNeighbours(values: readonly Float32Array[], weightAt: Float64Array, dist: (i: number, j: number) => number): number[][] {
  const n = values.length;
  const usable: number[] = [];
  for (let k = 0; k < weightAt.length; k++) if (weightAt[k] > 0) usable.push(k);
  const step = Math.max(1, usable.length / SKETCH_SIZE);
  const coordinates: number[] = [];
  for (let c = 0; c < Math.min(SKETCH_SIZE, usable.length); c++) coordinates.push(usable[Math.floor(c * step)]);
  const dim = coordinates.length;
  const sketch = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < dim; c++) {
      const x = values[i][coordinates[c]];
      sketch[i * dim + c] = Number.isFinite(x) ? Math.sqrt(weightAt[coordinates[c]]) * x : 0;
    }
  }
  const sketchDistance = (a: Float32Array, ao: number, b: Float32Array, bo: number) => {
    let s = 0;
    for (let c = 0; c < dim; c++) {
      const d = a[ao + c] - b[bo + c];
      s += d * d;
    }
    return s;
  };
  const clusters = Math.max(1, Math.round(Math.sqrt(n)));
  const centroids = new Float32Array(clusters * dim);
  for (let c = 0; c < clusters; c++) centroids.set(sketch.subarray(Math.floor((c * n) / clusters) * dim, Math.floor((c * n) / clusters) * dim + dim), c * dim);
  const assignment = new Int32Array(n);
  const sums = new Float64Array(clusters * dim);
  const counts = new Int32Array(clusters);
  for (let round = 0; round < KMEANS_ROUNDS; round++) {
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bestDistance = Infinity;
      for (let c = 0; c < clusters; c++) {
        const d = sketchDistance(sketch, i * dim, centroids, c * dim);
        if (d < bestDistance) {
          bestDistance = d;
          best = c;
        }
      }
      assignment[i] = best;
    }
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const a = assignment[i];
      counts[a]++;
      for (let c = 0; c < dim; c++) sums[a * dim + c] += sketch[i * dim + c];
    }
    for (let c = 0; c < clusters; c++) if (counts[c] > 0) for (let x = 0; x < dim; x++) centroids[c * dim + x] = sums[c * dim + x] / counts[c];
  }
  const members: number[][] = Array.from({ length: clusters }, () => []);
  for (let i = 0; i < n; i++) members[assignment[i]].push(i);
  const out: number[][] = [];
  // Scratch for the selections, reused for every member (no per-member allocation in the hot loop).
  const probeIds = new Int32Array(PROBES);
  const probeDistances = new Float64Array(PROBES);
  const keep = EXACT_CANDIDATES;
  const candidateIds = new Int32Array(keep);
  const candidateDistances = new Float64Array(keep);
  for (let i = 0; i < n; i++) {
    const probes = smallest(clusters, (c) => sketchDistance(sketch, i * dim, centroids, c * dim), probeIds, probeDistances);
    let kept = 0;
    for (let p = 0; p < probes; p++) {
      for (const j of members[probeIds[p]]) {
        if (j === i) continue;
        kept = insertSmallest(j, sketchDistance(sketch, i * dim, sketch, j * dim), candidateIds, candidateDistances, kept);
      }
    }
    const exact: { j: number; d: number }[] = [];
    for (let c = 0; c < kept; c++) exact.push({ j: candidateIds[c], d: dist(i, candidateIds[c]) });
    out.push(exact.sort((a, b) => a.d - b.d).slice(0, INDEX_NEIGHBOURS).map(({ j }) => j));
  }
  // Neighbourhood is symmetric: j near i makes i a candidate of j.
  for (let i = 0; i < n; i++) for (const j of out[i]) if (!out[j].includes(i)) out[j].push(i);
  for (let i = 0; i < n; i++) out[i].sort((a, b) => dist(i, a) - dist(i, b));
  return out;
}

/** The `ids.length` smallest of score(0..count-1), nearest first, into ids / distances; returns how many. */
function smallest(count: number, score: (x: number) => number, ids: Int32Array, distances: Float64Array): number {
  let kept = 0;
  for (let x = 0; x < count; x++) kept = insertSmallest(x, score(x), ids, distances, kept);
  return kept;
}

/** Inserts (id, distance) into the sorted bounded lists ids / distances holding `kept` entries; returns the new count. */
function insertSmallest(id: number, distance: number, ids: Int32Array, distances: Float64Array, kept: number): number {
  const capacity = ids.length;
  if (kept === capacity && distance >= distances[capacity - 1]) return kept;
  let at = kept < capacity ? kept : capacity - 1;
  while (at > 0 && distances[at - 1] > distance) {
    ids[at] = ids[at - 1];
    distances[at] = distances[at - 1];
    at--;
  }
  ids[at] = id;
  distances[at] = distance;
  return kept < capacity ? kept + 1 : kept;
}

/** Mantissa bits and smallest normal exponent of the float formats a checkpoint may hold. */
const FORMATS: Record<string, { mantissa: number; minExponent: number }> = {
  F64: { mantissa: 23, minExponent: -126 }, // sampled into float32
  F32: { mantissa: 23, minExponent: -126 },
  BF16: { mantissa: 7, minExponent: -126 },
  F16: { mantissa: 10, minExponent: -14 },
  F8_E4M3: { mantissa: 3, minExponent: -6 },
  F8_E5M2: { mantissa: 2, minExponent: -14 },
};

export interface Precision {
  dtype: string;
  mantissa: number;
  minExponent: number;
}

/** The precision the values are stored in: the declared dtype when known, else read off the values. */
export function precisionOf(dtype: string | undefined, values: Float32Array): Precision {
  if (dtype && FORMATS[dtype]) return { dtype, ...FORMATS[dtype] };
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let bf16 = true;
  for (let k = 0; k < bits.length && bf16; k++) if ((bits[k] & 0xffff) !== 0 && values[k] === values[k]) bf16 = false;
  return bf16 ? { dtype: 'BF16', ...FORMATS.BF16 } : { dtype: 'F32', ...FORMATS.F32 };
}

const exponentScratch = new Float32Array(1);
const exponentBits = new Uint32Array(exponentScratch.buffer);
/** Powers of two from 2^-200 to 2^200: ulp is called for every sampled value of every checkpoint. */
const POWERS_OF_TWO = Float64Array.from({ length: 401 }, (_, i) => 2 ** (i - 200));

/** Spacing of representable values of `precision` around x (one unit in the last place). x is a float32 value. */
export function ulp(x: number, precision: Precision): number {
  // The exponent straight from the float32 bits (0 and subnormals read as the smallest normal exponent).
  exponentScratch[0] = x;
  const biased = (exponentBits[0] >>> 23) & 0xff;
  const exponent = biased === 0 ? precision.minExponent : Math.max(precision.minExponent, biased - 127);
  return POWERS_OF_TWO[exponent - precision.mantissa + 200];
}
