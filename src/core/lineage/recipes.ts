// Tests of how one checkpoint was made from others, on fingerprints (see infer.ts):
// - affineFit: the child as an exact affine combination of candidates (linear merges, task arithmetic);
// - segmentFit: the child as a combination of two candidates with per-tensor coefficients (SLERP, per-layer weights);
// - sparseFit: the child as base plus, per value, a masked combination of the candidates' task vectors (TIES, DARE);
// - blockRank: the rank of a difference confined to a few matrices (a merged low-rank adapter).
// "Exact" always means: within the child's own rounding noise, never a tuned tolerance.
import { maxOf } from '../collections';
import { ulp, type GroupMetrics, type Precision } from './metrics';

/** A fit is exact when its squared residual is within this many times the child's rounding noise (ulp^2/12 per value): a merge rounded once gives about 1, a few roundings of float32 or bfloat16 arithmetic on the way up to about 4. */
export const ROUNDING_ALLOWANCE = 6;

/** Expected squared rounding error of stored values, in the group's weighted metric. */
export function roundingNoise(values: Float32Array, weightAt: Float64Array, precision: Precision): number {
  let total = 0;
  for (let k = 0; k < values.length; k++) {
    if (weightAt[k] === 0 || !Number.isFinite(values[k])) continue;
    const u = ulp(values[k], precision);
    total += (weightAt[k] * u * u) / 12;
  }
  return total;
}

/** Solves the symmetric system G c = g by Gaussian elimination with pivoting; undefined when G is (nearly) singular. */
export function solve(G: number[][], g: number[]): number[] | undefined {
  const k = g.length;
  const a = G.map((row, i) => [...row, g[i]]);
  const scale = Math.max(maxOf(G.map((row, i) => Math.abs(row[i]))), 1e-300);
  for (let col = 0; col < k; col++) {
    let pivot = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    if (Math.abs(a[pivot][col]) < 1e-10 * scale) return undefined;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    for (let r = 0; r < k; r++) {
      if (r === col) continue;
      const f = a[r][col] / a[col][col];
      for (let c = col; c <= k; c++) a[r][c] -= f * a[col][c];
    }
  }
  return a.map((row, i) => row[k] / row[i]);
}

export interface AffineFit {
  /** Coefficient of each candidate (they sum to 1). */
  coefficients: number[];
  residualSq: number;
  /** Squared distance from the child to the first candidate (the scale of what is explained). */
  spanSq: number;
}

/**
 * Least squares of child - r on candidate - r (r the first candidate), from distances alone:
 * <x - r, y - r> = (d(x, r)^2 + d(y, r)^2 - d(x, y)^2) / 2. Affine: coefficients sum to 1, which
 * covers linear merges (weights summing to 1) and task arithmetic (base coefficient 1 - sum of lambdas).
 */
export function affineFit(metrics: GroupMetrics, child: number, candidates: readonly number[]): AffineFit | undefined {
  const d2 = (x: number, y: number) => metrics.dist(x, y) ** 2;
  const r = candidates[0];
  const rest = candidates.slice(1);
  const dot = (x: number, y: number) => (d2(x, r) + d2(y, r) - d2(x, y)) / 2;
  const G = rest.map((x) => rest.map((y) => (x === y ? d2(x, r) : dot(x, y))));
  const g = rest.map((x) => dot(x, child));
  const spanSq = d2(child, r);
  const c = solve(G, g);
  if (!c) return undefined;
  const residualSq = Math.max(0, spanSq - c.reduce((s, ci, i) => s + ci * g[i], 0));
  return { coefficients: [1 - c.reduce((a, b) => a + b, 0), ...c], residualSq, spanSq };
}

export interface SegmentFit {
  residualSq: number;
  /** Per segment where the two candidates differ: coefficients of a and b, and the segment's weight. */
  alpha: number[];
  beta: number[];
  weight: number[];
}

/**
 * child ~ alpha_t a + beta_t b, tensor by tensor (free coefficients per tensor). Solved as
 * child - a on [a, b - a] so that the small differences, not the large weights, are fitted.
 */
export function segmentFit(metrics: GroupMetrics, child: number, a: number, b: number): SegmentFit {
  const vm = metrics.values[child];
  const va = metrics.values[a];
  const vb = metrics.values[b];
  const out: SegmentFit = { residualSq: 0, alpha: [], beta: [], weight: [] };
  metrics.segments.forEach((segment, s) => {
    const w = metrics.segmentWeight[s];
    if (w === 0) return;
    let aa = 0;
    let ae = 0;
    let ee = 0;
    let ay = 0;
    let ey = 0;
    let yy = 0;
    for (let k = segment.offset; k < segment.offset + segment.count; k++) {
      const x = va[k];
      const e = vb[k] - x;
      const y = vm[k] - x;
      if (!(Number.isFinite(e) && Number.isFinite(y))) continue;
      aa += x * x;
      ae += x * e;
      ee += e * e;
      ay += x * y;
      ey += e * y;
      yy += y * y;
    }
    if (yy === 0) return; // the child kept a's values: nothing to explain here
    if (ee === 0) {
      // a and b agree here: only a rescaling of a can explain the child.
      const c0 = aa > 0 ? ay / aa : 0;
      out.residualSq += w * Math.max(0, yy - c0 * ay);
      return;
    }
    const c = solve([[aa, ae], [ae, ee]], [ay, ey]);
    if (!c) {
      const c1 = ey / ee;
      out.residualSq += w * Math.max(0, yy - c1 * ey);
      out.alpha.push(1 - c1);
      out.beta.push(c1);
      out.weight.push(w * ee);
      return;
    }
    out.residualSq += w * Math.max(0, yy - c[0] * ay - c[1] * ey);
    out.alpha.push(1 + c[0] - c[1]);
    out.beta.push(c[1]);
    out.weight.push(w * ee);
  });
  return out;
}

export interface SparseParent {
  member: number;
  /** The coefficient its task vector has where it alone survived. */
  coefficient: number;
  matches: number;
}

export interface SparseFit {
  parents: SparseParent[];
  /** Share of the child's changed values the masked combination explains. */
  explained: number;
  /** The same with the parents' task vectors misaligned (what chance explains). */
  chance: number;
  /** Trimmed by magnitude (TIES) rather than dropped at random (DARE). */
  trimmedByMagnitude: boolean;
}

interface SparseContext {
  metrics: GroupMetrics;
  child: number;
  base: number;
  /** Usable positions where the child's change from the base is well above its rounding: where chance rarely matches a prediction. */
  changed: number[];
  tolerance: Float64Array;
  segmentOf: Int32Array;
}

/** Share of its changed values a sparse merge's model must explain. */
export const SPARSE_MIN_EXPLAINED = 0.9;
/** Least share of changed values a sparse merge's parent must explain that no other parent does. */
const SPARSE_MIN_CONTRIBUTION = 0.02;
/** Changes this many times the tolerance or more count as informative (about 8 units in the last place). */
const INFORMATIVE = 16;

function sparseContext(metrics: GroupMetrics, child: number, base: number, precision: Precision): SparseContext {
  const vm = metrics.values[child];
  const vb = metrics.values[base];
  const changed: number[] = [];
  const tolerance = new Float64Array(vm.length);
  for (let k = 0; k < vm.length; k++) {
    if (metrics.weightAt[k] === 0 || !Number.isFinite(vm[k]) || !Number.isFinite(vb[k])) continue;
    // The child's own rounding (half a unit in its last place), and arithmetic on the task vectors
    // done at worst in the child's precision (one relative unit of the change).
    const dm = vm[k] - vb[k];
    tolerance[k] = 0.5 * ulp(vm[k], precision) + 2 ** -precision.mantissa * Math.abs(dm);
    if (Math.abs(vm[k] - vb[k]) > INFORMATIVE * tolerance[k]) changed.push(k);
  }
  const segmentOf = new Int32Array(vm.length);
  metrics.segments.forEach((segment, s) => segmentOf.fill(s, segment.offset, segment.offset + segment.count));
  return { metrics, child, base, changed, tolerance, segmentOf };
}

/** Share of the positions where child and base differ inside tensors they differ in, that are equal: the mark of a sparse merge. */
export function scatteredEquality(metrics: GroupMetrics, child: number, base: number): number {
  const vm = metrics.values[child];
  const vb = metrics.values[base];
  let equal = 0;
  let total = 0;
  // Every member is screened against its nearest candidates: one pass per tensor, no per-value weight lookup.
  for (let s = 0; s < metrics.segments.length; s++) {
    if (metrics.segmentWeight[s] === 0) continue;
    const { offset, count } = metrics.segments[s];
    let segmentEqual = 0;
    let segmentTotal = 0;
    for (let k = offset; k < offset + count; k++) {
      const x = vm[k];
      if (x - x !== 0) continue; // NaN or an infinity
      segmentTotal++;
      if (x === vb[k]) segmentEqual++;
    }
    if (segmentEqual < segmentTotal) {
      equal += segmentEqual;
      total += segmentTotal;
    }
  }
  return total > 0 ? equal / total : 0;
}

/** The centre of the densest window of relative width `width` among positive values, and its count. */
function densest(values: number[], width: number): { centre: number; count: number } {
  values.sort((x, y) => x - y);
  let centre = 0;
  let count = 0;
  for (let lo = 0, hi = 0; lo < values.length; lo++) {
    if (hi < lo) hi = lo;
    while (hi < values.length && values[hi] - values[lo] <= width * Math.abs(values[lo])) hi++;
    if (hi - lo > count && values[lo] > 0) {
      count = hi - lo;
      centre = values[lo + Math.floor((hi - lo) / 2)];
    }
  }
  return { centre, count };
}

/**
 * A coefficient that many positions share exactly, located from the ratio of two changes at each
 * position: `numerator(k) / denominator(k)`. Only precise ratios are used (changes well above the
 * rounding: finer in float32, coarser in 16 bits). Its count of exact matches is compared with the
 * counts at nearby coefficients, which measure what chance gives; undefined when it is no spike.
 */
function spike(ctx: SparseContext, positions: readonly number[], numerator: (k: number) => number, denominator: (k: number) => number): { coefficient: number; matches: number } | undefined {
  let ratios: number[] = [];
  let factor = 256;
  for (; factor >= 16; factor /= 4) {
    ratios = [];
    for (const k of positions) {
      const den = denominator(k);
      const num = numerator(k);
      if (den !== 0 && Number.isFinite(den) && Math.abs(num) > factor * ctx.tolerance[k]) ratios.push(num / den);
    }
    if (ratios.length >= 64) break;
  }
  if (ratios.length < 16) return undefined;
  const width = 2 / Math.max(16, factor);
  const { centre, count: inWindow } = densest(ratios, width);
  if (inWindow < 8) return undefined;
  // With a shift, the denominator is read further on within its tensor: misaligned, what chance matches.
  const at = (k: number, shift: number) => {
    if (shift === 0) return k;
    const segment = ctx.metrics.segments[ctx.segmentOf[k]];
    return segment.offset + ((k - segment.offset + shift) % segment.count);
  };
  const matching = (c: number, shift: number) => positions.filter((k) => Math.abs(numerator(k) - c * denominator(at(k, shift))) <= ctx.tolerance[k]);
  // The window locates the coefficient to its width; least squares on the values it matches
  // (weighed by their precision) pins it down to the rounding.
  let coefficient = centre;
  for (let round = 0; round < 2; round++) {
    let xy = 0;
    let xx = 0;
    for (const k of matching(coefficient, 0)) {
      const w = 1 / ctx.tolerance[k] ** 2;
      xy += w * numerator(k) * denominator(k);
      xx += w * denominator(k) ** 2;
    }
    if (xx > 0) coefficient = xy / xx;
  }
  const count = matching(coefficient, 0).length;
  const chance = maxOf(SHIFTS.map((shift) => matching(coefficient, shift).length));
  if (count < 16 || count < 2 * chance + 4 * Math.sqrt(chance) + 8) return undefined;
  return { coefficient, matches: count };
}

/** Misalignments (in places within a tensor) that measure what chance explains: several runs of 16 apart, off the run grid. */
const SHIFTS = [5 * 16 + 3, 9 * 16 + 7, 13 * 16 + 11];

/** What a sparse merge predicts at one position for each set of surviving parents. */
type Prediction = (k: number, delta: (p: number, k: number) => number) => number[];

/** Share of informative changed positions that some set of survivors explains within the rounding. */
function explainedShare(ctx: SparseContext, predict: Prediction, shift: number, changed: readonly number[]): number {
  const { metrics, tolerance } = ctx;
  const vm = metrics.values[ctx.child];
  const vb = metrics.values[ctx.base];
  // With a shift, each parent's task vector is read `shift` places further on within its tensor: misaligned.
  const at = (k: number) => {
    if (shift === 0) return k;
    const segment = metrics.segments[ctx.segmentOf[k]];
    return segment.offset + ((k - segment.offset + shift) % segment.count);
  };
  const delta = (p: number, k: number) => metrics.values[p][at(k)] - vb[at(k)];
  let explained = 0;
  for (const k of changed) {
    const dm = vm[k] - vb[k];
    if (predict(k, delta).some((x) => Math.abs(dm - x) <= tolerance[k])) explained++;
  }
  return changed.length > 0 ? explained / changed.length : 0;
}

function subsets<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let mask = 1; mask < 1 << items.length; mask++) out.push(items.filter((_, i) => mask & (1 << i)));
  return out;
}

/**
 * child = base + per value a masked combination of the candidates' task vectors (TIES, DARE and
 * their kin). Parents are the candidates whose task vector appears alone at many positions with one
 * coefficient (where the others were dropped); values where several survived are predicted two
 * ways: summed with those same coefficients (DARE), or averaged with weights (TIES: lambda times
 * the weighted mean, the weights read off another spike). The prediction must explain nearly every
 * informative changed value, far more than with the task vectors misaligned.
 */
export function sparseFit(metrics: GroupMetrics, child: number, base: number, candidates: readonly number[], precision: Precision): SparseFit | undefined {
  const ctx = sparseContext(metrics, child, base, precision);
  if (ctx.changed.length < 32) return undefined;
  const vm = metrics.values[child];
  const vb = metrics.values[base];
  const dm = (k: number) => vm[k] - vb[k];
  // Each candidate's task vector, computed once: the fits below read it many times per position.
  const taskVectors = new Map<number, (k: number) => number>();
  const dp = (p: number) => {
    let read = taskVectors.get(p);
    if (!read) {
      const vp = metrics.values[p];
      const delta = new Float64Array(vp.length);
      for (let k = 0; k < vp.length; k++) delta[k] = vp[k] - vb[k];
      read = (k: number) => delta[k];
      taskVectors.set(p, read);
    }
    return read;
  };
  const parents: SparseParent[] = [];
  for (const p of candidates) {
    const vp = metrics.values[p];
    const found = spike(ctx, ctx.changed, dm, (k) => vp[k] - vb[k]);
    if (found) parents.push({ member: p, coefficient: found.coefficient, matches: found.matches });
  }
  parents.sort((x, y) => y.matches - x.matches);
  parents.splice(4);
  if (parents.length < 2) return undefined;
  // A value equal to a candidate's proves nothing in 16 bits: small updates leave many values as
  // they were, so a fine-tune or the next training step equals its neighbours at many positions
  // (a coefficient-1 "spike"). The fit is judged where the child equals none of them.
  const judged = ctx.changed.filter((k) => !parents.some((p) => metrics.values[p.member][k] === vm[k]));
  if (judged.length < 32) return undefined;

  const predictor = (chosen: readonly SparseParent[]): Prediction => {
    // TIES: every single survivor carries lambda; weights from pairs: (dm/lambda - d_j) / (d_i - d_j) = w_i / (w_i + w_j).
    const lambda = chosen.reduce((s, p) => s + p.coefficient, 0) / chosen.length;
    // Where one parent alone (or none) explains the change, the pair's ratio is 1 or 0: look elsewhere.
    const reads = chosen.map((p) => dp(p.member));
    const several = ctx.changed.filter((k) => Math.abs(dm(k)) > ctx.tolerance[k] && !chosen.some((p, i) => Math.abs(dm(k) - p.coefficient * reads[i](k)) <= ctx.tolerance[k]));
    const weights = [1];
    for (let j = 1; j < chosen.length; j++) {
      const [first, other] = [dp(chosen[0].member), dp(chosen[j].member)];
      const share = spike(ctx, several, (k) => dm(k) / lambda - other(k), (k) => first(k) - other(k));
      weights.push(share && share.coefficient < 1 ? (1 - share.coefficient) / share.coefficient : Number.NaN);
    }
    const groups = subsets(chosen.map((p, i) => ({ ...p, weight: weights[i] })));
    // Any other fixed combination per set of survivors: least squares where several survived,
    // refitted on the values it nearly explains (the others belong to other sets).
    const fitted = groups.map((group) => {
      if (group.length < 2) return undefined;
      let positions = several;
      let c: number[] | undefined;
      const groupReads = group.map((p) => dp(p.member));
      for (let round = 0; round < 2 && positions.length >= 4 * group.length; round++) {
        const G = groupReads.map((x) => groupReads.map((y) => positions.reduce((s, k) => s + x(k) * y(k), 0)));
        const g = groupReads.map((x) => positions.reduce((s, k) => s + x(k) * dm(k), 0));
        c = solve(G, g);
        if (!c) return undefined;
        const coefficients = c;
        positions = positions.filter((k) => Math.abs(dm(k) - groupReads.reduce((s, x, i) => s + coefficients[i] * x(k), 0)) <= 64 * ctx.tolerance[k]);
      }
      return c;
    });
    return (k, delta) => {
      const out = [0];
      groups.forEach((group, g) => {
        const c = fitted[g];
        if (c) out.push(group.reduce((s, p, i) => s + c[i] * delta(p.member, k), 0));
      });
      for (const group of groups) {
        out.push(group.reduce((s, p) => s + p.coefficient * delta(p.member, k), 0));
        const total = group.reduce((s, p) => s + p.weight, 0);
        if (group.length > 1 && Number.isFinite(total)) out.push((lambda * group.reduce((s, p) => s + p.weight * delta(p.member, k), 0)) / total);
      }
      return out;
    };
  };
  // Backward elimination: a parent stays only if the fit needs it (another merge of the same
  // parents, or a model trained from one of them, also shows spikes but explains nothing new).
  let explained = explainedShare(ctx, predictor(parents), 0, judged);
  // Fewer parents never explain more: a set that falls short now is no sparse merge (and the
  // elimination and chance passes, the costly part, are spared for the many checkpoints that are not).
  if (explained < SPARSE_MIN_EXPLAINED) return undefined;
  for (let i = parents.length - 1; i >= 0 && parents.length > 2; i--) {
    const without = parents.filter((_, j) => j !== i);
    const rest = explainedShare(ctx, predictor(without), 0, judged);
    if (explained - rest < SPARSE_MIN_CONTRIBUTION) {
      parents.splice(i, 1);
      explained = rest;
    }
  }
  const predict = predictor(parents);
  const chance = maxOf(SHIFTS.map((shift) => explainedShare(ctx, predict, shift, judged)));
  // TIES trims the smallest task-vector values: where the child kept the base, the parents' changes are small.
  const kept: number[] = [];
  const dropped: number[] = [];
  const first = dp(parents[0].member);
  for (let k = 0; k < vm.length; k++) {
    if (metrics.weightAt[k] === 0 || !Number.isFinite(vm[k])) continue;
    const size = Math.abs(first(k));
    if (size === 0) continue;
    if (vm[k] === vb[k]) dropped.push(size);
    else kept.push(size);
  }
  const median = (xs: number[]) => (xs.length ? xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] : 0);
  const trimmedByMagnitude = dropped.length > 0 && median(dropped) < 0.5 * median(kept);
  return { parents, explained, chance, trimmedByMagnitude };
}

/** Eigenvalues of a symmetric matrix (cyclic Jacobi), largest first. */
function eigenvalues(m: number[][]): number[] {
  const a = m.map((row) => [...row]);
  const k = a.length;
  for (let sweep = 0; sweep < 30; sweep++) {
    let off = 0;
    for (let p = 0; p < k; p++) for (let q = p + 1; q < k; q++) off += a[p][q] * a[p][q];
    if (off < 1e-30) break;
    for (let p = 0; p < k; p++) {
      for (let q = p + 1; q < k; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < k; r++) {
          const arp = a[r][p];
          const arq = a[r][q];
          a[r][p] = c * arp - s * arq;
          a[r][q] = s * arp + c * arq;
        }
        for (let r = 0; r < k; r++) {
          const apr = a[p][r];
          const aqr = a[q][r];
          a[p][r] = c * apr - s * aqr;
          a[q][r] = s * apr + c * aqr;
        }
      }
    }
  }
  return a.map((row, i) => row[i]).sort((x, y) => y - x);
}

/**
 * Rank of a sampled block of (child - parent): `rows` runs of `cols` consecutive values in distinct
 * rows at one column (blockPlan). Singular values above the rounding noise count; undefined when
 * the block cannot bound the rank (it is as large as the rank could be).
 */
export function blockRank(child: Float32Array, parent: Float32Array, offset: number, rows: number, cols: number, precision: Precision): number | undefined {
  const block: number[][] = [];
  let noise = 0;
  for (let r = 0; r < rows; r++) {
    const row: number[] = [];
    for (let c = 0; c < cols; c++) {
      const k = offset + r * cols + c;
      row.push(child[k] - parent[k]);
      const u = ulp(Math.max(Math.abs(child[k]), Math.abs(parent[k])), precision);
      noise += (u * u) / 12;
    }
    block.push(row);
  }
  const gram = Array.from({ length: cols }, (_, i) => Array.from({ length: cols }, (__, j) => block.reduce((s, row) => s + row[i] * row[j], 0)));
  const singular = eigenvalues(gram).map((e) => Math.sqrt(Math.max(0, e)));
  // Noise of i.i.d. rounding errors: singular values up to about rms x (sqrt(rows) + sqrt(cols)).
  const rms = Math.sqrt(noise / (rows * cols));
  const floor = 4 * rms * (Math.sqrt(rows) + Math.sqrt(cols)) + 1e-6 * (singular[0] ?? 0);
  const rank = singular.filter((s) => s > floor).length;
  return rank < Math.min(rows, cols) - 1 ? rank : undefined;
}
