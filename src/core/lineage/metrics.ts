// Pairwise measures between the fingerprints of one architecture group, and a nearest-neighbour
// index so that large groups (a long training run, a merge search: thousands of checkpoints) are
// compared with their near neighbours only.
//
// Metric. Each tensor's samples are weighed by 1/(mean square over the group x sample count), so
// every tensor counts the same whatever its size or scale (an embedding does not drown the norms).
// Distances, squared norms and inner products of differences are all taken in this one weighted
// Euclidean metric, so they combine (a merge fit is a least-squares problem in it).
import { mapLimit } from '../engine/pool';
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
/** Whether this platform has shared memory (Node always has); without it a large group's search stays on the calling thread. */
export const SHARED_MEMORY = typeof SharedArrayBuffer === 'function';

/** Memory the worker threads see without a copy where the platform has it, else plain memory. */
export function sharedBytes(bytes: number): ArrayBuffer | SharedArrayBuffer {
  return SHARED_MEMORY ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
}

/** Candidate search tasks per thread: a thread that finishes early takes another range. */
const CANDIDATE_TASKS_PER_LANE = 4;
/** Rounds of k-means over the sketches. */
const KMEANS_ROUNDS = 3;

/**
 * The weighted distance between two fingerprints, summed value by value in order (the same sums,
 * bit for bit, as ever: reordering them moves results in the last bits, and merge tests compare
 * residuals with thresholds). The neighbour search on the worker threads calls it too, so their
 * distances are bit-identical. Infinity once the distance is known to exceed `beyond` (checked
 * between tensors: the sum only grows).
 */
function weightedDistance(a: Float32Array, b: Float32Array, segmentStart: Int32Array, segmentEnd: Int32Array, segmentWeight: Float64Array, beyond = Infinity): number {
  let d2 = 0;
  // With a margin over its rounding: a distance equal to `beyond` is never dropped.
  const beyondSq = beyond * beyond * (1 + 1e-9);
  for (let s = 0; s < segmentStart.length; s++) {
    if (d2 > beyondSq) return Infinity;
    const weight = segmentWeight[s];
    const end = segmentEnd[s];
    for (let k = segmentStart[s]; k < end; k++) {
      const e = a[k] - b[k];
      if (e === e) d2 += weight * e * e; // NaN: a value that could not be decoded (or an infinity)
    }
  }
  return Math.sqrt(d2);
}

/** What sharedShare needs besides the fingerprints (typed arrays, for the worker threads too). */
interface ShareOf {
  segmentStart: Int32Array;
  segmentEnd: Int32Array;
  segmentWeight: Float64Array;
  segmentNumel: Float64Array;
  totalNumel: number;
  /** Non-trivial values of member i in tensor s at i * segments + s. */
  informative: Int32Array;
}

/** Estimated share of parameters bit-identical in members i and j (non-trivial values only); one function for every thread. */
function sharedShare(a: Float32Array, i: number, b: Float32Array, j: number, of: ShareOf): number {
  const segments = of.segmentStart.length;
  let sharedParams = 0;
  for (let s = 0; s < segments; s++) {
    if (of.segmentWeight[s] === 0) continue;
    let equal = 0;
    const end = of.segmentEnd[s];
    for (let k = of.segmentStart[s]; k < end; k++) {
      const x = a[k];
      if (x === b[k] && x !== 0 && x !== 1 && x !== -1) equal++; // not trivial(x)
    }
    if (equal > 0) sharedParams += (equal / Math.max(of.informative[i * segments + s], of.informative[j * segments + s])) * of.segmentNumel[s];
  }
  return sharedParams / of.totalNumel;
}

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

/** Everything of a group's metrics but its neighbours, and the ways to find them. */
function prepareMetrics(values: readonly Float32Array[], segments: readonly FingerprintSegment[], numel: readonly number[]) {
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

  const segmentCount = segments.length;
  const segmentStart = Int32Array.from(segments, (segment) => segment.offset);
  const segmentEnd = Int32Array.from(segments, (segment) => segment.offset + segment.count);
  const exactDistance = (i: number, j: number): number => weightedDistance(values[i], values[j], segmentStart, segmentEnd, segmentWeight);
  const segmentNumel = Float64Array.from(segments, (_, s) => numel[s]);
  // Non-trivial values per member and tensor (in shared memory: the workers' neighbour search reads it).
  const informative = new Int32Array(sharedBytes(4 * n * segmentCount));
  values.forEach((v, i) => segments.forEach((segment, s) => {
    let count = 0;
    for (let k = segment.offset; k < segment.offset + segment.count; k++) if (!trivial(v[k])) count++;
    informative[i * segmentCount + s] = count;
  }));
  const shareOf: ShareOf = { segmentStart, segmentEnd, segmentWeight, segmentNumel, totalNumel, informative };
  const exactShared = (i: number, j: number): number => sharedShare(values[i], i, values[j], j, shareOf);
  const memo = (compute: (i: number, j: number) => number, same: number) => {
    const known = new PairMemo(n);
    const get = (i: number, j: number): number => {
      if (i === j) return same;
      let value = known.get(i, j);
      if (value === undefined) {
        value = compute(i, j);
        known.set(i, j, value);
      }
      return value;
    };
    return { get, known: (i: number, j: number, value: number) => known.set(i, j, value) };
  };
  const distances = memo(exactDistance, 0);
  const dist = distances.get;
  const shares = memo(exactShared, 1);
  const shared = shares.get;

  const indexed = n > EXACT_PAIRS_MAX;
  const metrics = { n, values, segments, segmentWeight, numel, weightAt, sqNorm, positions, dist, shared, indexed };
  /** Neighbours of a small group: every pair, nearest first. */
  const allPairs = (): number[][] => {
    const table = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) table[i * n + j] = table[j * n + i] = dist(i, j);
    return values.map((_, m) => [...Array(n).keys()].filter((x) => x !== m).sort((x, y) => table[x * n + m] - table[y * n + m]));
  };
  return {
    metrics,
    neighbours: (parts: readonly CandidateDistances[]) => neighboursFromCandidates(n, parts, dist, distances.known, shares.known),
    search: (sharedMemory: boolean) => neighbourSearch(values, weightAt, shareOf, sharedMemory),
    allPairs,
  };
}

/**
 * Pairwise metrics of a group. `segments` gives each tensor's place in the fingerprints and
 * `numel` its element count (to weigh bit-identical shares by parameters, not by samples).
 */
export function groupMetrics(values: readonly Float32Array[], segments: readonly FingerprintSegment[], numel: readonly number[]): GroupMetrics {
  const prepared = prepareMetrics(values, segments, numel);
  if (!prepared.metrics.indexed) return { ...prepared.metrics, neighbours: prepared.allPairs() };
  const search = prepared.search(false);
  return { ...prepared.metrics, neighbours: prepared.neighbours([nearestCandidates(search, 0, values.length)]) };
}

/** Runs the candidate search of a range of members (the nearestCandidates kernel, on a worker thread). */
export type CandidateRunner = (search: NeighbourSearch, from: number, to: number) => Promise<CandidateDistances>;

/**
 * groupMetrics() with a large group's candidate search (its costliest part: exact distances to
 * every member's nearest sketches) split into ranges run by `run` (the worker pool, `lanes` at a
 * time), over fingerprints in shared memory; without `run` (or shared memory) on this thread.
 * The same neighbours as groupMetrics().
 */
export async function groupMetricsOn(run: CandidateRunner | undefined, lanes: number, values: readonly Float32Array[], segments: readonly FingerprintSegment[], numel: readonly number[]): Promise<GroupMetrics> {
  const prepared = prepareMetrics(values, segments, numel);
  if (!prepared.metrics.indexed) return { ...prepared.metrics, neighbours: prepared.allPairs() };
  if (!run || !SHARED_MEMORY) return { ...prepared.metrics, neighbours: prepared.neighbours([nearestCandidates(prepared.search(false), 0, values.length)]) };
  const search = prepared.search(true);
  const n = values.length;
  const ranges = Math.min(n, Math.max(1, lanes) * CANDIDATE_TASKS_PER_LANE);
  const bounds = Array.from({ length: ranges + 1 }, (_, r) => Math.floor((r * n) / ranges));
  const parts = await mapLimit(bounds.slice(0, -1), Math.max(1, lanes), (from, r) => run(search, from, bounds[r + 1]));
  return { ...prepared.metrics, neighbours: prepared.neighbours(parts) };
}

/**
 * Values of unordered pairs of members, by open addressing over typed arrays: a large group
 * memoizes hundreds of thousands of pairs, and a Map would hold each value as a heap number.
 */
class PairMemo {
  private keys = new Float64Array(1024).fill(-1);
  private stored = new Float64Array(1024);
  private count = 0;
  constructor(private readonly n: number) {}

  /** The slot of pair key `key`: where it is, or the empty slot where it would go. */
  private slot(key: number): number {
    const mask = this.keys.length - 1;
    let h = Math.imul((key % 0x7fffffff) | 0, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    let at = (h ^ (h >>> 13)) & mask;
    while (this.keys[at] !== -1 && this.keys[at] !== key) at = (at + 1) & mask;
    return at;
  }

  get(i: number, j: number): number | undefined {
    const key = i < j ? i * this.n + j : j * this.n + i;
    const at = this.slot(key);
    return this.keys[at] === key ? this.stored[at] : undefined;
  }

  set(i: number, j: number, value: number): void {
    if (2 * (this.count + 1) > this.keys.length) this.grow();
    const key = i < j ? i * this.n + j : j * this.n + i;
    const at = this.slot(key);
    if (this.keys[at] !== key) this.count++;
    this.keys[at] = key;
    this.stored[at] = value;
  }

  private grow(): void {
    const keys = this.keys;
    const stored = this.stored;
    this.keys = new Float64Array(keys.length * 2).fill(-1);
    this.stored = new Float64Array(keys.length * 2);
    for (let at = 0; at < keys.length; at++) {
      if (keys[at] === -1) continue;
      const to = this.slot(keys[at]);
      this.keys[to] = keys[at];
      this.stored[to] = stored[at];
    }
  }
}

/**
 * What the candidate search of a large group needs, in typed arrays only, so it can run on worker
 * threads: there the fingerprints and `sketch` are views of shared memory (not copied), the rest is small.
 */
export interface NeighbourSearch {
  /** Each member's fingerprint. */
  rows: Float32Array[];
  /** Tensors' places and weights, and what shared-value shares need. */
  shareOf: ShareOf;
  /** `dim` weighted coordinates per member. */
  sketch: Float32Array;
  dim: number;
  centroids: Float32Array;
  /** Members of cluster c: clusterMembers[clusterStart[c] .. clusterStart[c + 1]), in increasing order. */
  clusterStart: Int32Array;
  clusterMembers: Int32Array;
}

/** For each member of a range, up to EXACT_CANDIDATES candidates (nearest sketch first) and their exact distances. */
export interface CandidateDistances {
  from: number;
  counts: Int32Array;
  /** EXACT_CANDIDATES slots per member. */
  ids: Int32Array;
  distances: Float64Array;
  /** Shared-value shares with the INDEX_NEIGHBOURS nearest candidates by exact distance (in that order), INDEX_NEIGHBOURS slots per member. */
  shares: Float64Array;
}

/**
 * The index of a large group: members are sketched (a fixed subset of weighted coordinates, whose
 * distances estimate the full ones) and the sketches clustered (a few k-means rounds, about
 * sqrt(n) clusters). `shared`: the fingerprints and sketches go in shared memory for the workers.
 */
function neighbourSearch(values: readonly Float32Array[], weightAt: Float64Array, shareOf: ShareOf, shared: boolean): NeighbourSearch {
  const n = values.length;
  const floats = (count: number) => new Float32Array(shared ? sharedBytes(count * 4) : new ArrayBuffer(count * 4));
  // Fingerprints read on the workers already are in shared memory (see tasks.ts); others (from a cache) are copied there.
  const copied = shared ? values.filter((v) => !(v.buffer instanceof SharedArrayBuffer)) : [];
  const copies = floats(copied.reduce((sum, v) => sum + v.length, 0));
  let at = 0;
  const copyOf = new Map(copied.map((v) => {
    const copy = copies.subarray(at, at + v.length);
    copy.set(v);
    at += v.length;
    return [v, copy];
  }));
  const rows = values.map((v) => copyOf.get(v) ?? v);
  const usable: number[] = [];
  for (let k = 0; k < weightAt.length; k++) if (weightAt[k] > 0) usable.push(k);
  const step = Math.max(1, usable.length / SKETCH_SIZE);
  const coordinates: number[] = [];
  for (let c = 0; c < Math.min(SKETCH_SIZE, usable.length); c++) coordinates.push(usable[Math.floor(c * step)]);
  const dim = coordinates.length;
  const sketch = floats(n * dim);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < dim; c++) {
      const x = values[i][coordinates[c]];
      sketch[i * dim + c] = Number.isFinite(x) ? Math.sqrt(weightAt[coordinates[c]]) * x : 0;
    }
  }
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
        const d = sketchDistance(sketch, i * dim, centroids, c * dim, dim);
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
  const clusterStart = new Int32Array(clusters + 1);
  for (let i = 0; i < n; i++) clusterStart[assignment[i] + 1]++;
  for (let c = 0; c < clusters; c++) clusterStart[c + 1] += clusterStart[c];
  const clusterMembers = new Int32Array(n);
  const filled = clusterStart.slice(0, clusters);
  for (let i = 0; i < n; i++) clusterMembers[filled[assignment[i]]++] = i;
  return { rows, shareOf, sketch, dim, centroids, clusterStart, clusterMembers };
}

function sketchDistance(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let s = 0;
  for (let c = 0; c < dim; c++) {
    const d = a[ao + c] - b[bo + c];
    s += d * d;
  }
  return s;
}

/**
 * Candidates of members from..to-1: each is compared with the members of its nearest clusters
 * only (about n * sqrt(n) sketch comparisons for the group instead of n^2 full ones), and the
 * nearest sketches get their exact distance. The kernel the worker threads run (tasks.ts).
 */
export function nearestCandidates(search: NeighbourSearch, from: number, to: number): CandidateDistances {
  const { rows, shareOf, sketch, dim, centroids, clusterStart, clusterMembers } = search;
  const clusters = clusterStart.length - 1;
  const keep = EXACT_CANDIDATES;
  const count = to - from;
  const out: CandidateDistances = { from, counts: new Int32Array(count), ids: new Int32Array(count * keep), distances: new Float64Array(count * keep), shares: new Float64Array(count * INDEX_NEIGHBOURS) };
  // Scratch for the selections, reused for every member (no per-member allocation in the hot loop).
  const probeIds = new Int32Array(PROBES);
  const probeDistances = new Float64Array(PROBES);
  const candidateIds = new Int32Array(keep);
  const candidateDistances = new Float64Array(keep);
  const nearestIds = new Int32Array(INDEX_NEIGHBOURS);
  const nearestDistances = new Float64Array(INDEX_NEIGHBOURS);
  for (let i = from; i < to; i++) {
    const probes = smallest(clusters, (c) => sketchDistance(sketch, i * dim, centroids, c * dim, dim), probeIds, probeDistances);
    let kept = 0;
    for (let p = 0; p < probes; p++) {
      for (let m = clusterStart[probeIds[p]]; m < clusterStart[probeIds[p] + 1]; m++) {
        const j = clusterMembers[m];
        if (j === i) continue;
        kept = insertSmallest(j, sketchDistance(sketch, i * dim, sketch, j * dim, dim), candidateIds, candidateDistances, kept);
      }
    }
    const at = (i - from) * keep;
    out.counts[i - from] = kept;
    // A candidate farther than the INDEX_NEIGHBOURS-th nearest so far cannot be kept: its distance
    // is dropped (Infinity) as soon as its partial sum passes that one. The kept ones are exact.
    nearestIds.fill(-1);
    nearestDistances.fill(Infinity);
    let known = 0;
    for (let c = 0; c < kept; c++) {
      const j = candidateIds[c];
      out.ids[at + c] = j;
      const beyond = known < INDEX_NEIGHBOURS ? Infinity : nearestDistances[INDEX_NEIGHBOURS - 1];
      const d = weightedDistance(rows[i], rows[j], shareOf.segmentStart, shareOf.segmentEnd, shareOf.segmentWeight, beyond);
      out.distances[at + c] = d;
      if (d !== Infinity) known = insertSmallest(c, d, nearestIds, nearestDistances, known);
    }
    // The tree step compares every member with its neighbours by shared values: taken here too, in parallel.
    nearestFirst(out, i - from).forEach((c, r) => {
      const j = out.ids[at + c];
      out.shares[(i - from) * INDEX_NEIGHBOURS + r] = sharedShare(rows[i], i, rows[j], j, shareOf);
    });
  }
  return out;
}

/** Slots of member r's INDEX_NEIGHBOURS nearest candidates by exact distance, nearest first (ties in sketch order). */
function nearestFirst(part: CandidateDistances, r: number): number[] {
  const slots = Array.from({ length: part.counts[r] }, (_, c) => c);
  const at = r * EXACT_CANDIDATES;
  return slots.sort((x, y) => part.distances[at + x] - part.distances[at + y]).slice(0, INDEX_NEIGHBOURS);
}

/**
 * Nearest neighbours from the candidates (an inverted-file index, see neighbourSearch): the
 * INDEX_NEIGHBOURS nearest of each member's candidates by exact distance, made symmetric.
 * `known` takes in the exact distances the search computed.
 */
function neighboursFromCandidates(
  n: number, parts: readonly CandidateDistances[], dist: (i: number, j: number) => number,
  knownDistance: (i: number, j: number, d: number) => void, knownShare: (i: number, j: number, share: number) => void,
): number[][] {
  const out: number[][] = new Array(n);
  for (const part of parts) {
    for (let r = 0; r < part.counts.length; r++) {
      const i = part.from + r;
      for (let c = 0; c < part.counts[r]; c++) {
        const d = part.distances[r * EXACT_CANDIDATES + c];
        if (d !== Infinity) knownDistance(i, part.ids[r * EXACT_CANDIDATES + c], d);
      }
      out[i] = nearestFirst(part, r).map((c, k) => {
        const j = part.ids[r * EXACT_CANDIDATES + c];
        knownShare(i, j, part.shares[r * INDEX_NEIGHBOURS + k]);
        return j;
      });
    }
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
