// Lineage from weights alone, for checkpoints of one architecture that declare nothing.
//
// Metric. Fingerprints (fingerprint.ts) are compared position by position. Each tensor's samples
// are scaled by 1/sqrt(mean square over the group x sample count), so every tensor weighs the
// same whatever its size or scale (an embedding does not drown the norms). The result is a
// weighted Euclidean metric: distances d, squared norms |x|^2, and their differences are
// meaningful together.
//
// Evidence used, strongest first:
// 1. Bit-identical values. Fine-tuning in the same dtype leaves the weights it barely moved
//    bit-identical to the parent; two unrelated models share almost none. A sibling shares with a
//    sibling at most what both kept from their parent, so the pairs sharing the most are
//    parent-child pairs. Pairs sharing a significant share of values are joined first.
// 2. Distance. Remaining pairs join by increasing distance (Kruskal: a minimum spanning forest per
//    architecture), skipping pairs too far apart to be related (independently trained models
//    are about sqrt(2) apart in relative terms; fine-tunes are far closer).
// 3. Merges (found first). A merge of a and b sits near the segment between them
//    (d(a,m) + d(m,b) <= 1.3 d(a,b)), not close to either end, and averaging task vectors shrinks
//    them, so it is nearer the origin than both: |m|^2 < |a|^2, |b|^2. Seen from the nearest other
//    checkpoint (a stand-in for the common ancestor), m must draw on both a and b. A point of a
//    training run also sits between its neighbours, but its norm lies between theirs and its offset
//    is explained by its own branch; the root of two branches of comparable length is never this
//    close to the segment joining them (1.34 d(a,b) or more when their task vectors are orthogonal).
// 4. Direction. Training adds an update d roughly uncorrelated with the weights w, so
//    |w + d|^2 ~ |w|^2 + |d|^2: a child's squared norm exceeds its parent's by about their squared
//    distance. When the ratio (|child|^2 - |parent|^2) / d^2 falls in [0.4, 10] the edge is
//    directed (updates that keep one direction along a run give ratios well above 1); otherwise it
//    is marked undirected and oriented from the smaller norm. Trainer steps (checkpoint-N of one
//    run) and declared parents take precedence. Weight decay or a rescaled checkpoint can defeat
//    the heuristic, which is why such edges carry a moderate confidence.
// An exact cast (distance 0, different dtypes) is a 'copy' from the smaller dtype.
// Declared edges win: a node with a declared parent gets no inferred parent, and no inferred edge
// makes a node its own ancestor.
import { appendAll, minOf } from '../collections';
import type { FingerprintSegment } from './fingerprint';
import type { LineageEdge } from './types';

/** Relative distance beyond which two checkpoints are not considered related at all. */
export const RELATED_MAX_RELATIVE_DISTANCE = 0.9;
/** Share of bit-identical parameters that counts as evidence of direct descent (and several times the group's typical share). */
export const SHARED_VALUES_MIN = 0.02;
const SHARED_OVER_BASELINE = 3;
const MERGE_MAX_EXCESS = 1.3;
const MERGE_MIN_BALANCE = 0.5;
const MERGE_NEIGHBOURS = 24;
/** Least weight each parent must have in a merge, seen from the nearest other checkpoint. */
const MERGE_MIN_SHARE = 0.15;
/** Least drop of squared norm from the smaller parent to the merge, in units of the merge's squared distance to its nearer parent. */
const MERGE_MIN_SHRINK = 0.4;
const GROWTH_RATIO_MIN = 0.4;
const GROWTH_RATIO_MAX = 10;
/** Norm growth counts as evidence of direction only beyond this many times its chance variation. */
const GROWTH_MIN_SIGNIFICANCE = 3;

export interface GroupMember {
  id: string;
  values: Float32Array;
  /** False when declared facts already give this node a parent. */
  declaredParent: boolean;
  /** True when declared edges give this node children (a likely base). */
  declaredChildren: boolean;
  /** Trainer run folder and step, from trainer_state.json or a checkpoint-N folder name. */
  run?: { dir: string; step: number };
  /** Bytes of tensor data, to orient exact casts (the smaller dtype is the original). */
  bytes?: number;
}

export interface GroupMetrics {
  n: number;
  /** Pairwise distances, n x n row-major. */
  dist: Float64Array;
  /** Squared norms. */
  sqNorm: Float64Array;
  /** Estimated share of parameters that are bit-identical (non-trivial values only), n x n. */
  shared: Float64Array;
  /** Positions compared (sampled values whose tensor carries weight). */
  positions: number;
}

/** A value equal in unrelated models by construction (zero biases, unit norms): not evidence of descent. */
function trivial(x: number): boolean {
  return x === 0 || x === 1 || x === -1;
}

/**
 * Pairwise metrics of a group. `segments` gives each tensor's place in the fingerprints and
 * `numel` its element count (to weigh bit-identical shares by parameters, not by samples).
 */
export function groupMetrics(values: readonly Float32Array[], segments: readonly FingerprintSegment[], numel: readonly number[]): GroupMetrics {
  const n = values.length;
  const weights = segments.map((segment) => {
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
    return meanSquare > 0 && segment.count > 0 ? 1 / (meanSquare * segment.count) : 0; // squared weight
  });
  const totalNumel = segments.reduce((s, seg, i) => s + (weights[i] > 0 ? numel[i] : 0), 0) || 1;

  // Scaled float32 copies (NaN where a value is unusable or its tensor carries no weight), so the
  // pair loop below is flat arithmetic over half the bytes of float64.
  const length = values[0]?.length ?? 0;
  const scaled = values.map((v) => {
    const out = new Float32Array(length).fill(Number.NaN);
    segments.forEach((segment, s) => {
      const w = Math.sqrt(weights[s]);
      if (w === 0) return;
      for (let k = segment.offset; k < segment.offset + segment.count; k++) if (Number.isFinite(v[k])) out[k] = v[k] * w;
    });
    return out;
  });
  // Per member and tensor: the values that could be evidence of descent (not 0 or +-1).
  const informativeMask = values.map((v) => {
    const mask = new Uint8Array(length);
    for (let k = 0; k < length; k++) mask[k] = trivial(v[k]) ? 0 : 1;
    return mask;
  });
  const informativeCounts = informativeMask.map((mask) => segments.map((segment) => {
    let count = 0;
    for (let k = segment.offset; k < segment.offset + segment.count; k++) count += mask[k];
    return count;
  }));

  const sqNorm = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let total = 0;
    for (const x of scaled[i]) if (x === x) total += x * x;
    sqNorm[i] = total;
  }

  const dist = new Float64Array(n * n);
  const shared = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const a = scaled[i];
    const ra = values[i];
    const ma = informativeMask[i];
    for (let j = i + 1; j < n; j++) {
      const b = scaled[j];
      const rb = values[j];
      const mb = informativeMask[j];
      let d2 = 0;
      let sharedParams = 0;
      for (let s = 0; s < segments.length; s++) {
        if (weights[s] === 0) continue;
        const end = segments[s].offset + segments[s].count;
        let equal = 0;
        for (let k = segments[s].offset; k < end; k++) {
          const diff = a[k] - b[k];
          if (diff !== diff) continue; // NaN: a value that could not be decoded
          d2 += diff * diff;
          // Scaled float32 values can round two neighbours together: confirm on the raw values.
          if (diff === 0 && (ma[k] | mb[k]) !== 0 && ra[k] === rb[k]) equal++;
        }
        // Share of this tensor's informative values that are bit-identical, weighed by its size.
        const informative = Math.max(informativeCounts[i][s], informativeCounts[j][s]);
        if (equal > 0) sharedParams += (equal / informative) * numel[s];
      }
      dist[i * n + j] = dist[j * n + i] = Math.sqrt(d2);
      shared[i * n + j] = shared[j * n + i] = sharedParams / totalNumel;
    }
  }
  let positions = 0;
  for (const x of scaled[0] ?? []) if (x === x) positions++;
  return { n, dist, sqNorm, shared, positions };
}

/** Parents of each node through declared and merge edges, to keep the graph free of cycles. */
class Ancestry {
  private parents = new Map<string, string[]>();
  add(parent: string, child: string): void {
    const list = this.parents.get(child);
    if (list) list.push(parent);
    else this.parents.set(child, [parent]);
  }
  /** `id` and everything reachable from it by following parents. */
  ancestorsOf(id: string): Set<string> {
    const seen = new Set<string>();
    const stack = [id];
    while (stack.length > 0) {
      const current = stack.pop()!;
      if (seen.has(current)) continue;
      seen.add(current);
      appendAll(stack, this.parents.get(current) ?? []);
    }
    return seen;
  }
}

/** Union-find over member indices; each set remembers its members and the node that must be its root. */
class Forest {
  private readonly parent: number[];
  readonly members: number[][];
  readonly fixedRoot: (number | undefined)[];
  constructor(n: number, fixed: (i: number) => boolean) {
    this.parent = Array.from({ length: n }, (_, i) => i);
    this.members = Array.from({ length: n }, (_, i) => [i]);
    this.fixedRoot = Array.from({ length: n }, (_, i) => (fixed(i) ? i : undefined));
  }
  find(x: number): number {
    while (this.parent[x] !== x) {
      this.parent[x] = this.parent[this.parent[x]];
      x = this.parent[x];
    }
    return x;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    this.parent[rb] = ra;
    appendAll(this.members[ra], this.members[rb]);
    this.members[rb] = [];
    this.fixedRoot[ra] ??= this.fixedRoot[rb];
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Inferred edges for one architecture group. `declared` are all declared edges of the graph (used
 * to avoid cycles and to know which nodes already have parents).
 */
export function inferGroupEdges(members: readonly GroupMember[], metrics: GroupMetrics, declared: readonly LineageEdge[]): LineageEdge[] {
  const n = members.length;
  const { dist, sqNorm, shared, positions } = metrics;
  const d = (i: number, j: number) => dist[i * n + j];
  const relativeDistance = (i: number, j: number) => d(i, j) / Math.sqrt(Math.max(1e-30, (sqNorm[i] + sqNorm[j]) / 2));
  const related = (i: number, j: number) => relativeDistance(i, j) <= RELATED_MAX_RELATIVE_DISTANCE;
  const id = (i: number) => members[i].id;

  const ancestry = new Ancestry();
  for (const e of declared) ancestry.add(e.parent, e.child);
  // Related members of each node, nearest first.
  const neighbours = members.map((_, m) => [...Array(n).keys()].filter((x) => x !== m && related(x, m)).sort((x, y) => d(x, m) - d(y, m)));

  const edges: LineageEdge[] = [];
  const mergeChild = new Set<number>();

  // Does m draw on both a and b? Seen from the nearest other checkpoint r (a stand-in for their
  // common ancestor), m - r regressed on a - r and b - r needs a real share of each. A point of one
  // branch near the root can lie between a later point of its branch and another branch, but its
  // offset from the root is explained by its own branch alone. Inner products come from distances.
  const drawsOnBoth = (m: number, a: number, b: number): boolean => {
    const r = neighbours[m].find((x) => x !== a && x !== b);
    if (r === undefined) return true; // three checkpoints: nothing to compare with
    const dot = (x: number, y: number) => ((x === r ? 0 : d(x, r) ** 2) + (y === r ? 0 : d(y, r) ** 2) - (x === y ? 0 : d(x, y) ** 2)) / 2;
    const [aa, bb, ab, ma, mb] = [dot(a, a), dot(b, b), dot(a, b), dot(m, a), dot(m, b)];
    const det = aa * bb - ab * ab;
    if (!(det > 1e-12 * aa * bb)) return false; // a and b in line with r: a run, not two branches
    const alpha = (ma * bb - mb * ab) / det;
    const beta = (mb * aa - ma * ab) / det;
    return alpha >= MERGE_MIN_SHARE && beta >= MERGE_MIN_SHARE;
  };

  // Merges first: a merge's parents are not tree edges.
  const candidates: { m: number; a: number; b: number; excess: number }[] = [];
  for (let m = 0; m < n; m++) {
    // A trainer checkpoint is a training state, never a merge (and sits between its run's neighbours by construction).
    if (members[m].declaredParent || members[m].run) continue;
    const near = neighbours[m].filter((x) => d(x, m) > 0).slice(0, MERGE_NEIGHBOURS);
    let best: { m: number; a: number; b: number; excess: number } | undefined;
    for (let p = 0; p < near.length; p++) {
      for (let q = p + 1; q < near.length; q++) {
        const a = near[p];
        const b = near[q];
        const dab = d(a, b);
        const dam = d(a, m);
        const dmb = d(m, b);
        // Averaging removes about half of each parent's squared offset: require a clear part of it.
        if (dab === 0 || Math.min(sqNorm[a], sqNorm[b]) - sqNorm[m] < MERGE_MIN_SHRINK * Math.min(dam, dmb) ** 2) continue;
        const excess = (dam + dmb) / dab;
        const balance = Math.min(dam, dmb) / Math.max(dam, dmb);
        if (excess > MERGE_MAX_EXCESS || balance < MERGE_MIN_BALANCE) continue;
        if (!drawsOnBoth(m, a, b)) continue;
        if (!best || excess < best.excess) best = { m, a, b, excess };
      }
    }
    if (best) candidates.push(best);
  }
  candidates.sort((x, y) => x.excess - y.excess);
  for (const c of candidates) {
    // Parents that descend from the merge (through declared or earlier merge edges) would make a cycle.
    const above = new Set([...ancestry.ancestorsOf(id(c.a)), ...ancestry.ancestorsOf(id(c.b))]);
    if (above.has(id(c.m))) continue;
    const confidence = round(Math.min(0.9, 0.4 + 0.5 * (MERGE_MAX_EXCESS - c.excess) / (MERGE_MAX_EXCESS - 1)));
    for (const parent of [c.a, c.b]) {
      edges.push({ parent: id(parent), child: id(c.m), relation: 'merge', source: 'weights', confidence });
      ancestry.add(id(parent), id(c.m));
    }
    mergeChild.add(c.m);
  }

  // Evidence that u is the parent of v: +2 / -2 for casts and trainer steps, +1 / -1 for significant norm growth, 0 for none.
  const evidence = (u: number, v: number): number => {
    // The same values in two dtypes: the smaller file is the original, the larger an exact upcast.
    if (d(u, v) === 0 && members[u].bytes !== undefined && members[v].bytes !== undefined && members[u].bytes !== members[v].bytes) {
      return members[u].bytes! < members[v].bytes! ? 2 : -2;
    }
    const ru = members[u].run;
    const rv = members[v].run;
    if (ru && rv && ru.dir === rv.dir && ru.step !== rv.step) return rv.step > ru.step ? 2 : -2;
    const d2 = d(u, v) ** 2;
    const growth = sqNorm[v] - sqNorm[u];
    // If v - u were uncorrelated with the weights, |v|^2 - |u|^2 would vary by about
    // 2 sqrt(sum(w^2 diff^2)) ~ 2 sqrt(|w|^2 d^2 / positions): growth below a few of those says nothing.
    const chance = 2 * Math.sqrt((((sqNorm[u] + sqNorm[v]) / 2) * d2) / Math.max(1, positions));
    if (d2 === 0 || Math.abs(growth) < GROWTH_MIN_SIGNIFICANCE * chance) return 0;
    const ratio = growth / d2;
    if (ratio >= GROWTH_RATIO_MIN && ratio <= GROWTH_RATIO_MAX) return 1;
    if (-ratio >= GROWTH_RATIO_MIN && -ratio <= GROWTH_RATIO_MAX) return -1;
    return 0;
  };

  // Tree edges, Kruskal-style over an undirected forest. A node with a declared parent or a merge
  // must be the root of its tree; no tree may hold two such nodes or one of its roots' ancestors.
  const fixed = (i: number) => members[i].declaredParent || mergeChild.has(i);
  const forest = new Forest(n, fixed);
  const baseline = median(pairValues(shared, n));
  const sharedThreshold = Math.max(SHARED_VALUES_MIN, SHARED_OVER_BASELINE * baseline);
  const pairs: { i: number; j: number; sharedFirst: boolean }[] = [];
  for (let i = 0; i < n; i++) for (const j of neighbours[i]) if (j > i) pairs.push({ i, j, sharedFirst: shared[i * n + j] >= sharedThreshold });
  pairs.sort((x, y) => {
    if (x.sharedFirst !== y.sharedFirst) return x.sharedFirst ? -1 : 1;
    if (x.sharedFirst) {
      const diff = shared[y.i * n + y.j] - shared[x.i * n + x.j];
      if (Math.abs(diff) > 1e-9) return diff;
    }
    return d(x.i, x.j) - d(y.i, y.j);
  });
  const treeEdges: { i: number; j: number; sharedFirst: boolean }[] = [];
  for (const pair of pairs) {
    const ri = forest.find(pair.i);
    const rj = forest.find(pair.j);
    if (ri === rj) continue;
    const rootI = forest.fixedRoot[ri];
    const rootJ = forest.fixedRoot[rj];
    if (rootI !== undefined && rootJ !== undefined) continue;
    const root = rootI ?? rootJ;
    if (root !== undefined) {
      // The edge will point away from the fixed root: fine unless the weights say the opposite...
      const [from, to] = rootI !== undefined ? [pair.i, pair.j] : [pair.j, pair.i];
      if (evidence(from, to) < 0) continue;
      // ...or the other tree holds an ancestor of that root (a cycle through declared or merge edges).
      const above = ancestry.ancestorsOf(id(root));
      if (forest.members[rootI !== undefined ? rj : ri].some((x) => above.has(id(x)))) continue;
    }
    forest.union(pair.i, pair.j);
    treeEdges.push(pair);
  }

  // Orient each tree from its root: its fixed node, else a node no directed evidence puts below
  // another, preferring one with declared children, then the smallest norm (training grows norms).
  const adjacency = new Map<number, number[]>();
  for (const { i, j } of treeEdges) {
    adjacency.set(i, [...(adjacency.get(i) ?? []), j]);
    adjacency.set(j, [...(adjacency.get(j) ?? []), i]);
  }
  const parentOf = new Map<number, number>();
  const declaredRoot = new Set<number>();
  for (let r = 0; r < n; r++) {
    if (forest.find(r) !== r || forest.members[r].length < 2) continue;
    const component = forest.members[r];
    let root = forest.fixedRoot[r];
    if (root === undefined) {
      // Count, for each candidate root, the tree edges whose evidence its orientation contradicts.
      const contradictions = (candidate: number) => {
        let count = 0;
        const stack: [number, number][] = [[candidate, -1]];
        while (stack.length > 0) {
          const [node, from] = stack.pop()!;
          for (const next of adjacency.get(node) ?? []) {
            if (next === from) continue;
            if (evidence(node, next) < 0) count++;
            stack.push([next, node]);
          }
        }
        return count;
      };
      const scored = component.map((x) => ({ x, bad: component.length <= 256 ? contradictions(x) : 0 }));
      const fewest = minOf(scored.map((c) => c.bad));
      const eligible = scored.filter((c) => c.bad === fewest).map((c) => c.x);
      const withChildren = eligible.filter((x) => members[x].declaredChildren);
      root = (withChildren.length > 0 ? withChildren : eligible).reduce((best, x) => (sqNorm[x] < sqNorm[best] ? x : best));
    }
    if (members[root].declaredParent || members[root].declaredChildren) declaredRoot.add(r);
    const stack: [number, number][] = [[root, -1]];
    while (stack.length > 0) {
      const [node, from] = stack.pop()!;
      for (const next of adjacency.get(node) ?? []) {
        if (next === from) continue;
        parentOf.set(next, node);
        stack.push([next, node]);
      }
    }
  }

  for (const { i, j, sharedFirst } of treeEdges) {
    const [parent, child] = parentOf.get(j) === i ? [i, j] : [j, i];
    const directed = evidence(parent, child) > 0 || declaredRoot.has(forest.find(i));
    const second = neighbours[child].find((x) => x !== parent);
    const margin = second !== undefined && d(child, second) > 0 ? Math.max(0, Math.min(1, 1 - d(i, j) / d(child, second))) : 0.5;
    const confidence = round(Math.min(0.95, 0.5 + (sharedFirst ? 0.25 : 0) + 0.15 * margin + (directed ? 0.05 : 0)));
    const edge: LineageEdge = { parent: id(parent), child: id(child), relation: d(i, j) === 0 ? 'copy' : 'finetune', source: 'weights', confidence };
    if (!directed) edge.undirected = true;
    edges.push(edge);
  }
  return edges;
}

function pairValues(matrix: Float64Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push(matrix[i * n + j]);
  return out;
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
