// Lineage from weights alone, for checkpoints of one architecture that declare nothing.
// Fingerprints (fingerprint.ts) are compared in one weighted metric (metrics.ts); recipes.ts holds
// the tests of how a checkpoint was made. In order:
// 1. Casts and copies. A checkpoint whose every value is another's rounded to its own lower
//    precision (within one unit in its last place) is a cast of it: relation 'quantized', from the
//    higher precision. The same values in another dtype (distance 0) are a 'copy' from the smaller
//    file. Casts and copies then stand aside: they sit on their source and explain nothing else.
// 2. Merges. A merge lies between its parents and would otherwise be drawn as a chain through
//    them. Each checkpoint is tested as
//    - an affine combination of two to four of its nearest relatives, exact to within its own
//      rounding noise (linear merges; task arithmetic, where the base has coefficient
//      1 - sum of lambdas): least squares on inner products taken from distances;
//    - a per-tensor combination of two (SLERP: per-tensor coefficients summing to more than 1);
//    - base + per value a masked combination of task vectors (TIES, DARE): at many positions one
//      parent's task vector appears alone with one coefficient, a spike no chance produces, and the
//      masked model explains nearly every changed value.
//    Parents get positive coefficients (a merge draws on each); a base may be negative. A parent
//    can also read as an exact combination of its merge, the base and the other parent; such a
//    reading entangles its task vectors (separately trained ones are nearly orthogonal), so among
//    readings of one set of checkpoints the least entangled wins.
// 3. Tree. The remaining links join by shared bit-identical values first (fine-tuning leaves the
//    weights it barely moved bit-identical; unrelated models share none), then by increasing
//    distance (Kruskal over each member's near neighbours), skipping pairs too far apart to be
//    related (independently trained models are about sqrt(2) apart in relative terms).
//    A difference confined to a few matrices whose sampled blocks are low-rank is a merged
//    adapter (relation 'adapter', with the estimated rank).
// 4. Direction. Training adds an update d roughly uncorrelated with the weights w, so
//    |w + d|^2 ~ |w|^2 + |d|^2: a child's squared norm exceeds its parent's by about their squared
//    distance (when significant beyond chance). Trainer steps, casts (higher to lower precision),
//    merges (parents to merge) and declared facts take precedence; each tree is rooted where the
//    fewest of these signals are contradicted, then at its least trained member. Edges whose
//    direction no signal settles are marked undirected.
// Declared edges win: a node with a declared parent gets no inferred parent, and no inferred edge
// makes a node its own ancestor.
import { appendAll, minOf } from '../collections';
import { precisionOf, type GroupMetrics, type Precision } from './metrics';
import { affineFit, blockRank, roundingNoise, ROUNDING_ALLOWANCE, scatteredEquality, segmentFit, sparseFit, SPARSE_MIN_EXPLAINED } from './recipes';
import type { LineageEdge } from './types';

export { groupMetrics, type GroupMetrics } from './metrics';

/** Relative distance beyond which two checkpoints are not considered related at all. */
export const RELATED_MAX_RELATIVE_DISTANCE = 0.9;
/** Share of bit-identical parameters that counts as evidence of direct descent (and several times the group's typical share). */
export const SHARED_VALUES_MIN = 0.02;
const SHARED_OVER_BASELINE = 3;
const GROWTH_RATIO_MIN = 0.4;
const GROWTH_RATIO_MAX = 10;
/** Norm growth counts as evidence of direction only beyond this many times its chance variation. */
const GROWTH_MIN_SIGNIFICANCE = 3;
/** Candidate parents examined for each possible merge: its nearest related checkpoints. */
const MERGE_CANDIDATES = 10;
/** The same in large groups (the index is in use): a merge lies between its parents, so they are among its very nearest. */
const MERGE_CANDIDATES_INDEXED = 6;
/** Least coefficient a parent must have in a merge (below it the merge does not draw on it, and a smaller set fits too). */
const MERGE_MIN_COEFFICIENT = 0.02;
/** Sets kept at each size when growing candidate parent sets in large groups. */
const BEAM = 5;
/** Largest |cosine| between the task vectors of a merge's parents over its base. */
const MAX_ENTANGLEMENT = 0.95;
/** A larger set of parents replaces an exact smaller one only if its residual is at most this share of the smaller one's. */
const SUPERSET_GAIN = 0.8;
/** A per-tensor fit is only tried where the affine one already explains most of the difference (a cheap screen). */
const SEGMENT_SCREEN = 0.05;
/** Least margin over chance of the share of its changed values a sparse merge's model explains. */
const SPARSE_MIN_MARGIN = 0.4;
/** Share of values equal to a candidate base, scattered inside changed tensors, that makes a sparse merge worth testing. */
const SPARSE_SCREEN = 0.01;
/** Candidate bases tried for a sparse merge: those the child equals most often (its parents, in TIES with lambda 1, may come first). */
const SPARSE_BASES = 6;
/** The same in large groups (the index is in use): a long bf16 training run equals its neighbours everywhere, and each try costs. */
const SPARSE_BASES_INDEXED = 3;
/** A cast may disagree with rounding at this share of values (non-finite or clamped values). */
const CAST_MAX_MISMATCH = 0.001;

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
  /** The dtype most of its bytes are stored in (read off the values when absent). */
  dtype?: string;
}

/** Parents recorded (declared and inferred so far), to refuse edges that would make a cycle. */
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
const short = (x: number) => (Math.abs(x) >= 10 ? x.toFixed(0) : Math.abs(x) >= 0.095 ? x.toFixed(2).replace(/0$/, '') : x.toPrecision(2));

interface MergeReading {
  child: number;
  parents: { member: number; weight: number }[];
  base?: number;
  recipe: string;
  confidence: number;
  /** Lower is read first: exact fits before per-tensor ones before sparse ones, fewer parents first. */
  rank: number;
  /** Largest |cosine| between the parents' task vectors over the base (0 without a base). */
  entanglement: number;
}

function combinations<T>(items: readonly T[], size: number): T[][] {
  if (size === 0) return [[]];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of combinations(items.slice(i + 1), size - 1)) out.push([item, ...rest]);
  });
  return out;
}

/**
 * Inferred edges for one architecture group. `declared` are all declared edges of the graph (used
 * to avoid cycles and to know which nodes already have parents).
 */
export function inferGroupEdges(members: readonly GroupMember[], metrics: GroupMetrics, declared: readonly LineageEdge[]): LineageEdge[] {
  const n = members.length;
  const { sqNorm, positions, values, neighbours } = metrics;
  const d = metrics.dist;
  const relativeDistance = (i: number, j: number) => d(i, j) / Math.sqrt(Math.max(1e-30, (sqNorm[i] + sqNorm[j]) / 2));
  const related = (i: number, j: number) => relativeDistance(i, j) <= RELATED_MAX_RELATIVE_DISTANCE;
  const id = (i: number) => members[i].id;
  const name = (i: number) => id(i).split('/').filter(Boolean).pop() ?? id(i);
  const precision: Precision[] = members.map((m, i) => precisionOf(m.dtype, values[i]));
  const noise = values.map((v, i) => roundingNoise(v, metrics.weightAt, precision[i]));

  const ancestry = new Ancestry();
  for (const e of declared) ancestry.add(e.parent, e.child);
  const edges: LineageEdge[] = [];

  // 1. Casts and copies.
  const aliasOf = new Map<number, number>();
  const isCastOf = (cast: number, source: number): boolean => {
    const vc = values[cast];
    const vs = values[source];
    let compared = 0;
    let mismatched = 0;
    let differs = false;
    for (let k = 0; k < vc.length; k++) {
      if (metrics.weightAt[k] === 0 || !Number.isFinite(vc[k]) || !Number.isFinite(vs[k])) continue;
      compared++;
      if (vc[k] === vs[k]) continue;
      differs = true;
      const u = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(vc[k]), Math.abs(vs[k])))) - precision[cast].mantissa);
      if (Math.abs(vc[k] - vs[k]) > Math.max(u, 2 ** (precision[cast].minExponent - precision[cast].mantissa))) mismatched++;
    }
    return differs && compared > 0 && mismatched <= CAST_MAX_MISMATCH * compared;
  };
  for (let j = 0; j < n; j++) {
    if (members[j].declaredParent) continue;
    let source: number | undefined;
    let relation: 'quantized' | 'copy' = 'quantized';
    for (const i of neighbours[j]) {
      if (!related(i, j)) continue;
      if (d(i, j) === 0) {
        // The same values in two dtypes: the smaller file is the original, the larger an exact upcast.
        const bi = members[i].bytes ?? 0;
        const bj = members[j].bytes ?? 0;
        if (bi < bj || (bi === bj && i < j)) {
          source = i;
          relation = 'copy';
          break;
        }
        continue;
      }
      if (precision[i].mantissa <= precision[j].mantissa || !isCastOf(j, i)) continue;
      if (source === undefined || precision[i].mantissa > precision[source].mantissa) source = i;
    }
    if (source === undefined) continue;
    aliasOf.set(j, source);
    const sameSize = relation === 'copy' && (members[source].bytes ?? 0) === (members[j].bytes ?? 0);
    edges.push({ parent: id(source), child: id(j), relation, source: 'weights', confidence: 0.95, ...(sameSize ? { undirected: true } : {}) });
    ancestry.add(id(source), id(j));
  }
  // A copy of a copy: the chain is kept, but only checkpoints that are no one's alias take part below.
  const active = (i: number) => !aliasOf.has(i);

  // 2. Merges.
  const readings: MergeReading[] = [];
  const mergeCandidates = metrics.indexed ? MERGE_CANDIDATES_INDEXED : MERGE_CANDIDATES;
  for (let m = 0; m < n; m++) {
    // A trainer checkpoint is a training state, never a merge (and sits between its run's neighbours by construction).
    if (!active(m) || members[m].declaredParent || members[m].run) continue;
    const near = neighbours[m].filter((x) => active(x) && d(x, m) > 0 && related(x, m)).slice(0, mergeCandidates);
    const reading = exactReading(m, near) ?? segmentReading(m, near) ?? sparseReading(m, near);
    if (reading) readings.push({ ...reading, entanglement: entanglement(reading) });
  }

  // Task vectors of separately trained models are nearly orthogonal. Reading a parent as the merge
  // of the merge and another model (over the true base, or over that other parent) entangles them:
  // among readings of one set of checkpoints, the least entangled is the true one.
  function entanglement(reading: Pick<MergeReading, 'parents' | 'base'>): number {
    const base = reading.base;
    if (base === undefined) return 0;
    const dot = (x: number, y: number) => (d(x, base) ** 2 + d(y, base) ** 2 - d(x, y) ** 2) / 2;
    let worst = 0;
    for (const [p, q] of combinations(reading.parents.map((x) => x.member), 2)) {
      worst = Math.max(worst, Math.abs(dot(p, q)) / Math.max(1e-300, d(p, base) * d(q, base)));
    }
    return worst;
  }

  function exactReading(m: number, near: number[]): Omit<MergeReading, 'entanglement'> | undefined {
    let best: { set: number[]; coefficients: number[]; base?: number; excess: number } | undefined;
    // The smallest set that fits exactly; a larger one only if it fits clearly better (an extra
    // candidate that plays no part lowers the residual by about one value's rounding, 1/positions of it).
    // Small groups try every set; large ones (the index is in use) grow the best few sets by one (a beam).
    let beam: number[][] = [];
    for (let size = 2; size <= Math.min(4, near.length); size++) {
      const sets = size === 2 || !metrics.indexed ? combinations(near, size) : beam.flatMap((set) => near.filter((x) => x > set[set.length - 1]).map((x) => [...set, x]));
      const scored: { set: number[]; residual: number }[] = [];
      for (const set of sets) {
        const fit = affineFit(metrics, m, set);
        if (fit) scored.push({ set, residual: fit.residualSq });
        if (!fit || fit.residualSq > ROUNDING_ALLOWANCE * noise[m]) continue;
        if (!fit || fit.residualSq > ROUNDING_ALLOWANCE * noise[m]) continue;
        const negative = set.filter((_, i) => fit.coefficients[i] < 0);
        if (negative.length > 1 || fit.coefficients.some((c) => Math.abs(c) < MERGE_MIN_COEFFICIENT)) continue;
        const base = negative[0];
        const parents = set.filter((x) => x !== base);
        if (parents.length < 2) continue;
        const excess = fit.residualSq / Math.max(1e-300, noise[m]);
        // Parents whose task vectors are nearly colinear make a degenerate set: any reading of it is unreliable.
        if (base !== undefined && entanglement({ parents: parents.map((member) => ({ member, weight: 0 })), base }) > MAX_ENTANGLEMENT) continue;
        const better = !best || (set.length === best.set.length ? excess < best.excess : excess < SUPERSET_GAIN * best.excess);
        if (better) best = { set, coefficients: fit.coefficients, ...(base !== undefined ? { base } : {}), excess };
      }
      beam = scored.sort((x, y) => x.residual - y.residual).slice(0, BEAM).map((x) => x.set);
    }
    if (!best) return undefined;
    const { set, coefficients, base } = best;
    const parents = set.map((member, i) => ({ member, weight: round(coefficients[i]) })).filter((p) => p.member !== base);
    const recipe = base === undefined
      ? `≈ ${parents.map((p) => `${short(p.weight)} ${name(p.member)}`).join(' + ')}`
      : `task arithmetic over ${name(base)}: ≈ ${name(base)} + ${parents.map((p) => `${short(p.weight)} Δ${name(p.member)}`).join(' + ')}`;
    return { child: m, parents, ...(base !== undefined ? { base } : {}), recipe, confidence: 0.9, rank: set.length };
  }

  function segmentReading(m: number, near: number[]): Omit<MergeReading, 'entanglement'> | undefined {
    let best: { a: number; b: number; alpha: number; beta: number; excess: number; slerp: boolean } | undefined;
    for (const [a, b] of combinations(near, 2)) {
      const screen = affineFit(metrics, m, [a, b]);
      if (!screen || screen.residualSq > SEGMENT_SCREEN * screen.spanSq) continue;
      const fit = segmentFit(metrics, m, a, b);
      if (fit.residualSq > ROUNDING_ALLOWANCE * noise[m] || fit.weight.length === 0) continue;
      if (fit.alpha.some((x) => x < -MERGE_MIN_COEFFICIENT) || fit.beta.some((x) => x < -MERGE_MIN_COEFFICIENT)) continue;
      const total = fit.weight.reduce((s, w) => s + w, 0);
      const mean = (xs: number[]) => xs.reduce((s, x, i) => s + x * fit.weight[i], 0) / total;
      const alpha = mean(fit.alpha);
      const beta = mean(fit.beta);
      if (alpha < MERGE_MIN_COEFFICIENT || beta < MERGE_MIN_COEFFICIENT) continue;
      // Spherical interpolation gives coefficients summing to more than 1 in every tensor.
      const slerp = fit.alpha.every((x, i) => x + fit.beta[i] > 1);
      const excess = fit.residualSq / Math.max(1e-300, noise[m]);
      if (!best || excess < best.excess) best = { a, b, alpha, beta, excess, slerp };
    }
    if (!best) return undefined;
    const t = best.beta / (best.alpha + best.beta);
    const recipe = best.slerp
      ? `SLERP-like: t ≈ ${short(t)} from ${name(best.a)} to ${name(best.b)}`
      : `≈ ${short(best.alpha)} ${name(best.a)} + ${short(best.beta)} ${name(best.b)}, weights varying by tensor`;
    return { child: m, parents: [{ member: best.a, weight: round(best.alpha) }, { member: best.b, weight: round(best.beta) }], recipe, confidence: 0.85, rank: 10 };
  }

  function sparseReading(m: number, near: number[]): Omit<MergeReading, 'entanglement'> | undefined {
    let best: { base: number; fit: NonNullable<ReturnType<typeof sparseFit>> } | undefined;
    // The base of a sparse merge is among the candidates the child most often equals inside changed tensors (where all parents were dropped).
    const bases = near.map((x) => ({ x, share: scatteredEquality(metrics, m, x) })).filter((c) => c.share >= SPARSE_SCREEN)
      .sort((a, b) => b.share - a.share).slice(0, metrics.indexed ? SPARSE_BASES_INDEXED : SPARSE_BASES).map((c) => c.x);
    for (const base of bases) {
      const candidates = [...new Set([...near, ...neighbours[base].filter((x) => active(x) && related(x, base)).slice(0, mergeCandidates)])]
        .filter((x) => x !== m && x !== base);
      const fit = sparseFit(metrics, m, base, candidates, precision[m]);
      if (!fit || fit.explained < SPARSE_MIN_EXPLAINED || fit.explained - fit.chance < SPARSE_MIN_MARGIN) continue;
      // Nearly colinear task vectors (a merge and a model it was made of) explain each other's values: no evidence of a merge of both.
      if (entanglement({ parents: fit.parents.map((p) => ({ member: p.member, weight: 0 })), base }) > MAX_ENTANGLEMENT) continue;
      if (!best || fit.explained > best.fit.explained) best = { base, fit };
    }
    if (!best) return undefined;
    const { base, fit } = best;
    const parents = fit.parents.map((p) => ({ member: p.member, weight: round(p.coefficient) }));
    const recipe = fit.trimmedByMagnitude
      ? `TIES-like: sparse, sign-elected over ${name(base)} (λ ≈ ${parents.map((p) => short(p.weight)).join(', ')})`
      : `DARE-like: random drop and rescale over ${name(base)}: ≈ ${name(base)} + ${parents.map((p) => `${short(p.weight)} Δ${name(p.member)}`).join(' + ')}`;
    return { child: m, parents, base, recipe, confidence: round(Math.min(0.9, 0.5 + 0.4 * (fit.explained - fit.chance))), rank: 20 + parents.length };
  }

  readings.sort((x, y) => x.rank - y.rank || x.entanglement - y.entanglement || x.child - y.child);
  const mergeChild = new Set<number>();
  const readSets = new Set<string>();
  for (const r of readings) {
    const all = [...r.parents.map((p) => p.member), ...(r.base !== undefined ? [r.base] : [])];
    const setKey = [...all, r.child].sort((a, b) => a - b).join(',');
    if (readSets.has(setKey)) continue;
    // Parents that descend from the merge (through declared or earlier merge edges) would make a cycle.
    const above = new Set(all.flatMap((p) => [...ancestry.ancestorsOf(id(p))]));
    if (above.has(id(r.child))) continue;
    readSets.add(setKey);
    mergeChild.add(r.child);
    for (const p of r.parents) {
      edges.push({ parent: id(p.member), child: id(r.child), relation: 'merge', source: 'weights', confidence: r.confidence, weight: p.weight, recipe: r.recipe });
      ancestry.add(id(p.member), id(r.child));
    }
    if (r.base !== undefined) {
      edges.push({ parent: id(r.base), child: id(r.child), relation: 'merge', source: 'weights', confidence: r.confidence, recipe: r.recipe });
      ancestry.add(id(r.base), id(r.child));
    }
  }

  // Evidence that u is the parent of v: +2 / -2 for trainer steps, +1 / -1 for significant norm growth, 0 for none.
  const evidence = (u: number, v: number): number => {
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

  // 3. Tree edges, Kruskal-style over an undirected forest. A node with a declared parent or a merge
  // must be the root of its tree; no tree may hold two such nodes or one of its roots' ancestors.
  const fixed = (i: number) => members[i].declaredParent || mergeChild.has(i);
  const forest = new Forest(n, fixed);
  const pairs: { i: number; j: number; sharedFirst: boolean }[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (!active(i)) continue;
    for (const j of neighbours[i]) {
      const key = i < j ? i * n + j : j * n + i;
      if (!active(j) || seen.has(key) || !related(i, j)) continue;
      seen.add(key);
      pairs.push({ i: Math.min(i, j), j: Math.max(i, j), sharedFirst: false });
    }
  }
  const sharedOfPair = new Map(pairs.map((p) => [p.i * n + p.j, metrics.shared(p.i, p.j)]));
  const sharedOf = (p: { i: number; j: number }) => sharedOfPair.get(p.i * n + p.j)!;
  const baseline = median(pairs.map(sharedOf));
  const sharedThreshold = Math.max(SHARED_VALUES_MIN, SHARED_OVER_BASELINE * baseline);
  for (const p of pairs) p.sharedFirst = sharedOf(p) >= sharedThreshold;
  pairs.sort((x, y) => {
    if (x.sharedFirst !== y.sharedFirst) return x.sharedFirst ? -1 : 1;
    if (x.sharedFirst) {
      const diff = sharedOf(y) - sharedOf(x);
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
    const second = neighbours[child].find((x) => x !== parent && active(x));
    const margin = second !== undefined && d(child, second) > 0 ? Math.max(0, Math.min(1, 1 - d(i, j) / d(child, second))) : 0.5;
    const confidence = round(Math.min(0.95, 0.5 + (sharedFirst ? 0.25 : 0) + 0.15 * margin + (directed ? 0.05 : 0)));
    const rank = adapterRank(parent, child);
    const edge: LineageEdge = rank !== undefined
      ? { parent: id(parent), child: id(child), relation: 'adapter', source: 'weights', confidence, rank }
      : { parent: id(parent), child: id(child), relation: 'finetune', source: 'weights', confidence };
    if (!directed) edge.undirected = true;
    edges.push(edge);
  }

  /**
   * The rank of a merged adapter between u and v: the difference is confined to some matrices
   * (every other tensor bit-identical), and each changed matrix's sampled block is low-rank.
   */
  function adapterRank(u: number, v: number): number | undefined {
    const a = values[u];
    const b = values[v];
    const segmentDiffers = (s: number) => {
      const { offset, count } = metrics.segments[s];
      for (let k = offset; k < offset + count; k++) if (a[k] !== b[k] && Number.isFinite(a[k]) && Number.isFinite(b[k])) return true;
      return false;
    };
    // A change everywhere is no merged adapter: no need to estimate ranks.
    if (metrics.segments.every((_, s) => metrics.segmentWeight[s] === 0 || segmentDiffers(s))) return undefined;
    let untouched = 0;
    let rank = 0;
    for (let s = 0; s < metrics.segments.length; s++) {
      const { offset, count } = metrics.segments[s];
      if (metrics.segmentWeight[s] === 0) continue;
      if (!segmentDiffers(s)) {
        untouched++;
        continue;
      }
      // Blocks are runs of 16 in distinct rows (blockPlan); a tensor sampled whole or in one run bounds nothing.
      const rows = count / 16;
      if (!Number.isInteger(rows) || rows < 4 || count >= metrics.numel[s]) return undefined;
      const r = blockRank(b, a, offset, rows, 16, precision[v].mantissa < precision[u].mantissa ? precision[v] : precision[u]);
      if (r === undefined) return undefined;
      rank = Math.max(rank, r);
    }
    return untouched > 0 && rank > 0 ? rank : undefined;
  }

  return edges;
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
