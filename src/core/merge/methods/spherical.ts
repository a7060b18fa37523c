// Interpolation on the sphere: slerp, nuslerp, multislerp and the Karcher mean. Each needs only the
// norms and pairwise dot products of its inputs (one exact Gram pass over the tensor, or per row or
// column for nuslerp without flattening); every vector these methods build is a combination of the
// inputs, so they are computed as coefficients in float64 and applied in one element pass.
import { applyCombination, bool, deltasOf, f32, gramDot, gramStage, num, WEIGHT, type GramSpace } from './shared';
import type { ChunkData, Found, MergeMethod, ParamValues, Stage, TensorView } from './types';

const modelsGram = gramStage('gram', 'models');
const deltasGram = gramStage('gram', 'deltas');

function gramNext(space: GramSpace): (t: TensorView, found: Found) => Stage | null {
  const stage = space === 'deltas' ? deltasGram : modelsGram;
  return (_t, found) => (found.gram ? null : (stage as Stage));
}

/**
 * mergekit's slerp of v0 (t = 0) and v1 (t = 1): normalised copies give the angle, lerp when
 * |cos| > 0.9995, and the weights apply to the unnormalised tensors.
 */
export function slerpCoefficients(t: number, gram: number[][], eps = 1e-8): [number, number] {
  const n0 = Math.sqrt(gram[0][0]);
  const n1 = Math.sqrt(gram[1][1]);
  const s0 = n0 > eps ? n0 : 1;
  const s1 = n1 > eps ? n1 : 1;
  const dot = gram[0][1] / (s0 * s1);
  if (Math.abs(dot) > 0.9995) return [1 - t, t];
  const theta = Math.acos(dot);
  const sinTheta = Math.sin(theta);
  return [Math.sin(theta - theta * t) / sinTheta, Math.sin(theta * t) / sinTheta];
}

export const slerp: MergeMethod = {
  name: 'slerp',
  summary: 'Spherical interpolation between two models (the base is the t = 0 end): keeps the geometry of the weights better than averaging.',
  reference: 'https://en.wikipedia.org/wiki/Slerp',
  base: 'optional',
  baseAsFirstModel: true,
  minModels: 2,
  maxModels: 2,
  parameters: [{ name: 't', kind: 'number', required: true, min: 0, max: 1, doc: 'Position between the base (0) and the other model (1); a list makes a gradient over layers.' }],
  tensorParameters: [],
  kernel: {
    // The planner puts the t = 0 end first in `models` (base, or the first model without one).
    nextStage: gramNext('models'),
    apply(t, found, chunk, out) {
      applyCombination(chunk, slerpCoefficients(num(t.globals, 't'), found.gram as number[][]), 'models', out);
    },
  },
};

/** nuslerp's weights for two vectors with Gram matrix `gram` (clamped normalisation, sin-colinear fallback). */
function nuslerpCoefficients(t: number, gram: number[][]): [number, number] {
  const n0 = Math.max(Math.sqrt(gram[0][0]), 1e-7);
  const n1 = Math.max(Math.sqrt(gram[1][1]), 1e-7);
  const cos = Math.min(1, Math.max(-1, gram[0][1] / (n0 * n1)));
  const theta = Math.acos(cos);
  const sinTheta = Math.sin(theta);
  if (Math.abs(sinTheta) < 1e-8) return [1 - t, t];
  return [Math.sin((1 - t) * theta) / sinTheta, Math.sin(t * theta) / sinTheta];
}

function nuslerpT(t: TensorView): number {
  const [w0, w1] = t.perModel.map((p) => num(p, 'weight'));
  return Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
}

/** Per-row Gram of two vectors over whole rows of a chunk. */
function rowCoefficients(chunk: ChunkData, rowLength: number, row: number, space: GramSpace, t: number): [number, number] {
  const [a, b] = chunk.models;
  const base = chunk.base;
  let aa = 0;
  let bb = 0;
  let ab = 0;
  for (let e = row * rowLength; e < (row + 1) * rowLength; e++) {
    const x = space === 'deltas' ? Math.fround(a[e] - base![e]) : a[e];
    const y = space === 'deltas' ? Math.fround(b[e] - base![e]) : b[e];
    aa += x * x;
    bb += y * y;
    ab += x * y;
  }
  return nuslerpCoefficients(t, [[aa, ab], [ab, bb]]);
}

/**
 * nuslerp_row_wise (mergekit's dim 0): the vectors are the tensor's columns, element e belongs to
 * vector e mod (numel / shape[0]). Their norms and dot products are strided over the whole tensor,
 * so they are accumulated per column in a fixed-point grid: one stage finds the largest magnitude,
 * which fixes a power-of-two grid where every column sum is an integer below 2^53. Integer sums in
 * float64 are exact in any order, so the result does not depend on how the tensor was split.
 */
function columnCount(t: TensorView): number {
  return t.shape.length > 1 ? t.numel / t.shape[0] : 1;
}

function columnVectors(chunk: ChunkData, space: GramSpace): Float32Array[] {
  return space === 'deltas' ? deltasOf(chunk, 'nuslerp') : chunk.models;
}

const columnScale: Stage<number[]> = {
  id: 'columnScale',
  map(t, _found, chunk) {
    const space: GramSpace = t.hasBase ? 'deltas' : 'models';
    // Math.max keeps a NaN, so a NaN input makes every later sum NaN, as it would in torch.
    return columnVectors(chunk, space).map((v) => {
      let m = 0;
      for (let e = 0; e < chunk.count; e++) m = Math.max(m, Math.abs(v[e]));
      return m;
    });
  },
  merge: (a, b) => a.map((x, i) => Math.max(x, b[i])),
  finalize: (p) => p,
};

/** The grid step for sums of `rows` products each at most `bound`: a power of two keeping them below 2^52. */
function gridStep(bound: number, rows: number): number {
  if (!(bound > 0) || !Number.isFinite(bound)) return 1;
  return 2 ** (Math.ceil(Math.log2(bound * rows)) - 51);
}

function columnSteps(t: TensorView, found: Found): [number, number, number] {
  const [ma, mb] = found.columnScale as number[];
  const rows = t.numel / columnCount(t);
  return [gridStep(ma * ma, rows), gridStep(ma * mb, rows), gridStep(mb * mb, rows)];
}

const columnGram: Stage<Float64Array> = {
  id: 'columnGram',
  map(t, found, chunk) {
    const inner = columnCount(t);
    const [a, b] = columnVectors(chunk, t.hasBase ? 'deltas' : 'models');
    const [saa, sab, sbb] = columnSteps(t, found);
    const sums = new Float64Array(3 * inner);
    let c = chunk.start % inner;
    for (let e = 0; e < chunk.count; e++) {
      const x = a[e];
      const y = b[e];
      sums[3 * c] += Math.round((x * x) / saa);
      sums[3 * c + 1] += Math.round((x * y) / sab);
      sums[3 * c + 2] += Math.round((y * y) / sbb);
      if (++c === inner) c = 0;
    }
    return sums;
  },
  merge(a, b) {
    const sum = new Float64Array(a.length);
    for (let i = 0; i < a.length; i++) sum[i] = a[i] + b[i];
    return sum;
  },
  /** Per column, its two nuslerp coefficients. */
  finalize(sums, t, found) {
    const inner = columnCount(t);
    const [saa, sab, sbb] = columnSteps(t, found);
    const tt = nuslerpT(t);
    const coefficients = new Float64Array(2 * inner);
    for (let c = 0; c < inner; c++) {
      const ab = sums[3 * c + 1] * sab;
      const [c0, c1] = nuslerpCoefficients(tt, [[sums[3 * c] * saa, ab], [ab, sums[3 * c + 2] * sbb]]);
      coefficients[2 * c] = c0;
      coefficients[2 * c + 1] = c1;
    }
    return coefficients;
  },
};

function applyColumns(t: TensorView, coefficients: Float64Array, chunk: ChunkData, out: Float32Array): void {
  const inner = columnCount(t);
  const [m0, m1] = chunk.models;
  const base = t.hasBase ? chunk.base! : undefined;
  let c = chunk.start % inner;
  // The same operations, in the same order, as applyCombination with this column's coefficients.
  for (let e = 0; e < chunk.count; e++) {
    const c0 = coefficients[2 * c];
    const c1 = coefficients[2 * c + 1];
    let s = 0;
    if (base) {
      const b = base[e];
      s += c0 * f32(m0[e] - b);
      s += c1 * f32(m1[e] - b);
      out[e] = s + b;
    } else {
      s += c0 * m0[e];
      s += c1 * m1[e];
      out[e] = s;
    }
    if (++c === inner) c = 0;
  }
}

type NuslerpMode = 'flat' | 'rows' | 'columns';

function nuslerpMode(globals: ParamValues): NuslerpMode {
  if (globals.nuslerp_flatten !== false) return 'flat';
  return globals.nuslerp_row_wise === true ? 'columns' : 'rows';
}

export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  summary: 'Slerp with per-model weights (t = w2 / (w1 + w2)), optionally of task vectors over a base, and per row or per column instead of over the whole tensor.',
  base: 'optional',
  minModels: 2,
  maxModels: 2,
  parameters: [
    { name: 'nuslerp_flatten', kind: 'boolean', default: true, doc: 'Treat each tensor as one vector (true) or interpolate each row (or column) separately (false).' },
    { name: 'nuslerp_row_wise', kind: 'boolean', default: false, doc: 'With nuslerp_flatten: false, interpolate the vectors along the first dimension (columns of a matrix) instead of rows.' },
  ],
  tensorParameters: [WEIGHT],
  rowWise: (globals) => nuslerpMode(globals) === 'rows',
  kernel: {
    nextStage(t, found) {
      switch (nuslerpMode(t.globals)) {
        case 'flat': return gramNext(t.hasBase ? 'deltas' : 'models')(t, found);
        case 'rows': return null;
        case 'columns': return !found.columnScale ? columnScale : !found.columnGram ? columnGram : null;
      }
    },
    apply(t, found, chunk, out) {
      const space: GramSpace = t.hasBase ? 'deltas' : 'models';
      const tt = nuslerpT(t);
      const mode = nuslerpMode(t.globals);
      if (mode === 'flat') {
        applyCombination(chunk, nuslerpCoefficients(tt, found.gram as number[][]), space, out);
        return;
      }
      if (mode === 'columns') {
        applyColumns(t, found.columnGram as Float64Array, chunk, out);
        return;
      }
      const row = t.rowLength;
      for (let r = 0; r * row < chunk.count; r++) {
        const c = rowCoefficients(chunk, row, r, space, tt);
        const rows: ChunkData = {
          start: chunk.start + r * row,
          count: row,
          base: chunk.base?.subarray(r * row, (r + 1) * row),
          models: chunk.models.map((m) => m.subarray(r * row, (r + 1) * row)),
        };
        applyCombination(rows, c, space, out.subarray(r * row, (r + 1) * row));
      }
    },
  },
};

/** multislerp's coefficients over the input vectors (barycentric interpolation on the sphere). */
export function multislerpCoefficients(gram: number[][], weights: number[], normalizeWeights: boolean, eps: number, tensorName: string): number[] {
  const n = weights.length;
  let w = weights.slice();
  if (normalizeWeights) {
    const s = w.reduce((a, b) => a + b, 0);
    w = w.map((x) => x / s);
  }
  const norms = gram.map((row, i) => Math.sqrt(row[i]));
  const unit = (i: number) => norms.map((_, j) => (j === i ? 1 / (norms[i] + eps) : 0));
  let mean = w.map((wi, i) => wi / (norms[i] + eps));
  const meanNorm = Math.sqrt(gramDot(gram, mean, mean));
  if (meanNorm < eps) {
    if (n === 2) return [w[0], w[1]];
    throw new Error(`multislerp: the weighted mean of the inputs of "${tensorName}" is zero (antipodal inputs with balancing weights); change the weights.`);
  }
  mean = mean.map((c) => c / meanNorm);
  const dots = w.map((_, i) => gramDot(gram, unit(i), mean));
  const weightedDots = w.reduce((s, wi, i) => s + wi * dots[i], 0);
  const tangent = w.map((wi, i) => wi / (norms[i] + eps) - weightedDots * mean[i]);
  const tangentNorm = Math.sqrt(Math.max(0, gramDot(gram, tangent, tangent))) + eps;
  const avgNorm = norms.reduce((s, ni, i) => s + ni * w[i], 0);
  return mean.map((m, i) => (m * Math.cos(tangentNorm) + tangent[i] * (Math.sin(tangentNorm) / tangentNorm)) * avgNorm);
}

export const multislerp: MergeMethod = {
  name: 'multislerp',
  summary: 'Barycentric spherical interpolation of any number of models (or their task vectors over a base).',
  reference: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  base: 'optional',
  minModels: 1,
  parameters: [
    { name: 'normalize_weights', kind: 'boolean', default: true, doc: 'Scale the weights to sum to 1.' },
    { name: 'eps', kind: 'number', default: 1e-8, doc: 'Numerical guard for norms.' },
  ],
  tensorParameters: [WEIGHT],
  kernel: {
    nextStage: (t, found) => gramNext(t.hasBase ? 'deltas' : 'models')(t, found),
    apply(t, found, chunk, out) {
      const weights = t.perModel.map((p) => num(p, 'weight'));
      if (weights.length === 1) {
        applyCombination(chunk, [1], t.hasBase ? 'deltas' : 'models', out);
        return;
      }
      const c = multislerpCoefficients(found.gram as number[][], weights, bool(t.globals, 'normalize_weights'), num(t.globals, 'eps'), t.name);
      applyCombination(chunk, c, t.hasBase ? 'deltas' : 'models', out);
    },
  },
};

/** The weighted Karcher (Riemannian) mean on the unit sphere, scaled by the mean norm, as coefficients. */
export function karcherCoefficients(gram: number[][], maxIter: number, tol: number): number[] {
  const n = gram.length;
  const alphas = new Array<number>(n).fill(1 / n);
  const norms = gram.map((row, i) => Math.sqrt(Math.max(0, row[i])));
  const valid = norms.map((x, i) => (x > tol ? i : -1)).filter((i) => i >= 0);
  if (valid.length === 0) return new Array<number>(n).fill(0);
  const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
  const a = new Array<number>(n).fill(0);
  for (const i of valid) a[i] = alphas[i] / alphaSum;
  const unit = (i: number) => norms.map((_, j) => (j === i ? 1 / norms[i] : 0));
  const dot = (p: number[], q: number[]) => gramDot(gram, p, q);
  let mean = new Array<number>(n).fill(0);
  for (const i of valid) mean[i] = a[i] / norms[i];
  const meanNorm = Math.sqrt(Math.max(0, dot(mean, mean)));
  mean = meanNorm < tol ? unit(valid[0]) : mean.map((c) => c / meanNorm);
  for (let iter = 0; iter < maxIter; iter++) {
    const tangent = new Array<number>(n).fill(0);
    for (const i of valid) {
      const u = unit(i);
      const d = Math.min(1, Math.max(-1, dot(mean, u)));
      const theta = Math.acos(d);
      if (theta < tol) continue;
      const f = (a[i] * theta) / Math.sin(theta);
      for (let j = 0; j < n; j++) tangent[j] += f * (u[j] - d * mean[j]);
    }
    const tangentNorm = Math.sqrt(Math.max(0, dot(tangent, tangent)));
    if (tangentNorm < tol) break;
    mean = mean.map((m, j) => Math.cos(tangentNorm) * m + Math.sin(tangentNorm) * (tangent[j] / tangentNorm));
    const unitNorm = Math.sqrt(Math.max(0, dot(mean, mean)));
    if (unitNorm > tol) mean = mean.map((m) => m / unitNorm);
  }
  const scale = alphas.reduce((s, al, i) => s + al * norms[i], 0);
  return mean.map((m) => m * scale);
}

export const karcher: MergeMethod = {
  name: 'karcher',
  summary: 'The Riemannian (Karcher) mean of the models on the sphere, scaled by their mean norm: an averaging that respects weight geometry.',
  reference: 'https://en.wikipedia.org/wiki/Karcher_mean',
  base: 'none',
  minModels: 1,
  parameters: [
    { name: 'max_iter', kind: 'number', default: 10, min: 1, doc: 'Iterations of the mean.' },
    { name: 'tol', kind: 'number', default: 1e-5, doc: 'Convergence tolerance.' },
  ],
  tensorParameters: [],
  kernel: {
    nextStage: gramNext('models'),
    apply(t, found, chunk, out) {
      if (t.models === 1) {
        out.set(chunk.models[0].subarray(0, chunk.count));
        return;
      }
      applyCombination(chunk, karcherCoefficients(found.gram as number[][], num(t.globals, 'max_iter'), num(t.globals, 'tol')), 'models', out);
    },
  },
};
