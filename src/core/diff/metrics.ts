// The diff metrics as sums that merge exactly: a kernel accumulates one DiffPartial per element
// range, the orchestrator adds the partials of a tensor's ranges (in any order, from any worker)
// and turns the total into metrics. Float64 throughout; the edge cases are documented in types.ts.
import type { FloatArray } from '../tensors/chunkReader';
import type { TensorDiff } from './types';

/** Sums over the finite positions of one element range (or a merge of several). */
export interface DiffPartial {
  /** Positions where every input is finite: what the metrics are over. */
  count: number;
  /** Positions with NaN or +-Infinity in an input, left out. */
  nonfinite: number;
  sumA2: number;
  sumB2: number;
  sumAB: number;
  /** d = b - a */
  sumD: number;
  sumD2: number;
  maxAbs: number;
  /** Positions with b != a. */
  changed: number;
  /** With a base c: da = a - c, db = b - c. Zero without a base. */
  sumC2: number;
  sumDa2: number;
  sumDb2: number;
  sumDaDb: number;
  /** Positions where da and db are both non-zero, with equal and with opposite signs. */
  signAgree: number;
  signConflict: number;
}


export function emptyPartial(): DiffPartial {
  return {
    count: 0, nonfinite: 0, sumA2: 0, sumB2: 0, sumAB: 0, sumD: 0, sumD2: 0, maxAbs: 0, changed: 0,
    sumC2: 0, sumDa2: 0, sumDb2: 0, sumDaDb: 0, signAgree: 0, signConflict: 0,
  };
}

/** Adds `from` into `into`: sums and counts add, the maximum is the larger. */
export function mergePartial(into: DiffPartial, from: DiffPartial): void {
  into.count += from.count;
  into.nonfinite += from.nonfinite;
  into.sumA2 += from.sumA2;
  into.sumB2 += from.sumB2;
  into.sumAB += from.sumAB;
  into.sumD += from.sumD;
  into.sumD2 += from.sumD2;
  into.maxAbs = Math.max(into.maxAbs, from.maxAbs);
  into.changed += from.changed;
  into.sumC2 += from.sumC2;
  into.sumDa2 += from.sumDa2;
  into.sumDb2 += from.sumDb2;
  into.sumDaDb += from.sumDaDb;
  into.signAgree += from.signAgree;
  into.signConflict += from.signConflict;
}

/**
 * Every additive field times `factor`: turns the sums of a sample into estimates for the whole
 * tensor (factor = numel / sampled), so ratios are unchanged and norms scale by sqrt(factor).
 */
export function scalePartial(p: DiffPartial, factor: number): DiffPartial {
  return {
    count: p.count * factor, nonfinite: p.nonfinite * factor, sumA2: p.sumA2 * factor, sumB2: p.sumB2 * factor,
    sumAB: p.sumAB * factor, sumD: p.sumD * factor, sumD2: p.sumD2 * factor, maxAbs: p.maxAbs, changed: p.changed * factor,
    sumC2: p.sumC2 * factor, sumDa2: p.sumDa2 * factor, sumDb2: p.sumDb2 * factor, sumDaDb: p.sumDaDb * factor,
    signAgree: p.signAgree * factor, signConflict: p.signConflict * factor,
  };
}

// The loops below are the hot path of a diff: locals only, no calls, no allocation, no `continue`
// (V8 compiles the if/else shape several times faster). `d - d === 0` holds exactly when d is
// finite, i.e. when neither input is NaN or infinite.

/** Accumulates positions [0, length) of a and b into p, leaving out non-finite pairs. */
export function accumulatePair(p: DiffPartial, a: FloatArray, b: FloatArray, length: number): void {
  let count = 0, nonfinite = 0, changed = 0;
  let sumA2 = 0, sumB2 = 0, sumAB = 0, sumD = 0, sumD2 = 0, maxAbs = p.maxAbs;
  for (let i = 0; i < length; i++) {
    const x = a[i];
    const y = b[i];
    const d = y - x;
    if (d - d === 0) {
      count++;
      sumA2 += x * x;
      sumB2 += y * y;
      sumAB += x * y;
      sumD += d;
      sumD2 += d * d;
      const ad = d < 0 ? -d : d;
      if (ad > maxAbs) maxAbs = ad;
      if (d !== 0) changed++;
    } else {
      nonfinite++;
    }
  }
  p.count += count;
  p.nonfinite += nonfinite;
  p.changed += changed;
  p.sumA2 += sumA2;
  p.sumB2 += sumB2;
  p.sumAB += sumAB;
  p.sumD += sumD;
  p.sumD2 += sumD2;
  p.maxAbs = maxAbs;
}

/** Accumulates positions [0, length) of a and b, with the task vectors over the base c, into p. */
export function accumulateWithBase(p: DiffPartial, a: FloatArray, b: FloatArray, c: FloatArray, length: number): void {
  let count = 0, nonfinite = 0, changed = 0, signAgree = 0, signConflict = 0;
  let sumA2 = 0, sumB2 = 0, sumAB = 0, sumD = 0, sumD2 = 0, maxAbs = p.maxAbs;
  let sumC2 = 0, sumDa2 = 0, sumDb2 = 0, sumDaDb = 0;
  for (let i = 0; i < length; i++) {
    const x = a[i];
    const y = b[i];
    const z = c[i];
    const d = y - x;
    const da = x - z;
    const db = y - z;
    if (d - d === 0 && da - da === 0) {
      count++;
      sumA2 += x * x;
      sumB2 += y * y;
      sumAB += x * y;
      sumD += d;
      sumD2 += d * d;
      const ad = d < 0 ? -d : d;
      if (ad > maxAbs) maxAbs = ad;
      if (d !== 0) changed++;
      sumC2 += z * z;
      sumDa2 += da * da;
      sumDb2 += db * db;
      sumDaDb += da * db;
      if (da !== 0 && db !== 0) {
        if ((da > 0) === (db > 0)) signAgree++;
        else signConflict++;
      }
    } else {
      nonfinite++;
    }
  }
  p.count += count;
  p.nonfinite += nonfinite;
  p.changed += changed;
  p.sumA2 += sumA2;
  p.sumB2 += sumB2;
  p.sumAB += sumAB;
  p.sumD += sumD;
  p.sumD2 += sumD2;
  p.maxAbs = maxAbs;
  p.sumC2 += sumC2;
  p.sumDa2 += sumDa2;
  p.sumDb2 += sumDb2;
  p.sumDaDb += sumDaDb;
  p.signAgree += signAgree;
  p.signConflict += signConflict;
}

// The fast loops. Two things make them several times faster than the loops above:
// - No finiteness test per element: a NaN or infinity anywhere makes the squared sums non-finite,
//   and the caller then redoes the range with the loops above (hasFiniteSums).
// - No data-dependent branch (a changed/unchanged or agree/conflict branch mispredicts about half
//   the time on real diffs). Counts are made with arithmetic that is exact for float32 inputs:
//   for v = |x| * 2^210, v / (v + 1) is exactly 1 when x != 0 (the smallest non-zero difference of
//   float32 values, 2^-149, lands above 2^53 where v + 1 rounds to v) and 0 when x = 0; the same
//   with u = da * db * 2^400 gives the sign of the product (+1, -1 or 0) without a compare. Both
//   stay finite for the largest float32 values. F64 inputs do not meet these bounds: they take the
//   loops above.
const NONZERO_SCALE = 2 ** 210;
const SIGN_SCALE = 2 ** 400;

/** accumulatePair for finite float32 values. */
export function accumulatePairF32(p: DiffPartial, a: Float32Array, b: Float32Array, length: number): void {
  let changed = 0;
  let sumA2 = 0, sumB2 = 0, sumAB = 0, sumD = 0, sumD2 = 0, maxAbs = p.maxAbs;
  for (let i = 0; i < length; i++) {
    const x = a[i];
    const y = b[i];
    const d = y - x;
    sumA2 += x * x;
    sumB2 += y * y;
    sumAB += x * y;
    sumD += d;
    sumD2 += d * d;
    const ad = Math.abs(d);
    if (ad > maxAbs) maxAbs = ad;
    const v = ad * NONZERO_SCALE;
    changed += v / (v + 1);
  }
  addPairSums(p, length, changed, sumA2, sumB2, sumAB, sumD, sumD2, maxAbs);
}

/** accumulateWithBase for finite float32 values. */
export function accumulateWithBaseF32(p: DiffPartial, a: Float32Array, b: Float32Array, c: Float32Array, length: number): void {
  let changed = 0, bothNonZero = 0, signSum = 0;
  let sumA2 = 0, sumB2 = 0, sumAB = 0, sumD = 0, sumD2 = 0, maxAbs = p.maxAbs;
  let sumC2 = 0, sumDa2 = 0, sumDb2 = 0, sumDaDb = 0;
  for (let i = 0; i < length; i++) {
    const x = a[i];
    const y = b[i];
    const z = c[i];
    const d = y - x;
    const da = x - z;
    const db = y - z;
    sumA2 += x * x;
    sumB2 += y * y;
    sumAB += x * y;
    sumD += d;
    sumD2 += d * d;
    const ad = Math.abs(d);
    if (ad > maxAbs) maxAbs = ad;
    const v = ad * NONZERO_SCALE;
    changed += v / (v + 1);
    sumC2 += z * z;
    sumDa2 += da * da;
    sumDb2 += db * db;
    sumDaDb += da * db;
    const u = da * db * SIGN_SCALE;
    const sign = u / (Math.abs(u) + 1);
    signSum += sign;
    bothNonZero += sign * sign;
  }
  addPairSums(p, length, changed, sumA2, sumB2, sumAB, sumD, sumD2, maxAbs);
  addBaseSums(p, sumC2, sumDa2, sumDb2, sumDaDb, bothNonZero, signSum);
}

// 16-bit checkpoints (bf16, f16) are accumulated straight from their raw bits through a 64K-entry
// table (256 KiB, stays in cache): no decoded copy is written and read back.

/** accumulatePairF32 over 16-bit patterns decoded by lookup. */
export function accumulatePairBits(p: DiffPartial, a: Uint16Array, tableA: Float32Array, b: Uint16Array, tableB: Float32Array, length: number): void {
  let changed = 0;
  let sumA2 = 0, sumB2 = 0, sumAB = 0, sumD = 0, sumD2 = 0, maxAbs = p.maxAbs;
  for (let i = 0; i < length; i++) {
    const x = tableA[a[i]];
    const y = tableB[b[i]];
    const d = y - x;
    sumA2 += x * x;
    sumB2 += y * y;
    sumAB += x * y;
    sumD += d;
    sumD2 += d * d;
    const ad = Math.abs(d);
    if (ad > maxAbs) maxAbs = ad;
    const v = ad * NONZERO_SCALE;
    changed += v / (v + 1);
  }
  addPairSums(p, length, changed, sumA2, sumB2, sumAB, sumD, sumD2, maxAbs);
}

/** accumulateWithBaseF32 over 16-bit patterns decoded by lookup. */
export function accumulateWithBaseBits(
  p: DiffPartial, a: Uint16Array, tableA: Float32Array, b: Uint16Array, tableB: Float32Array, c: Uint16Array, tableC: Float32Array, length: number,
): void {
  let changed = 0, bothNonZero = 0, signSum = 0;
  let sumA2 = 0, sumB2 = 0, sumAB = 0, sumD = 0, sumD2 = 0, maxAbs = p.maxAbs;
  let sumC2 = 0, sumDa2 = 0, sumDb2 = 0, sumDaDb = 0;
  for (let i = 0; i < length; i++) {
    const x = tableA[a[i]];
    const y = tableB[b[i]];
    const z = tableC[c[i]];
    const d = y - x;
    const da = x - z;
    const db = y - z;
    sumA2 += x * x;
    sumB2 += y * y;
    sumAB += x * y;
    sumD += d;
    sumD2 += d * d;
    const ad = Math.abs(d);
    if (ad > maxAbs) maxAbs = ad;
    const v = ad * NONZERO_SCALE;
    changed += v / (v + 1);
    sumC2 += z * z;
    sumDa2 += da * da;
    sumDb2 += db * db;
    sumDaDb += da * db;
    const u = da * db * SIGN_SCALE;
    const sign = u / (Math.abs(u) + 1);
    signSum += sign;
    bothNonZero += sign * sign;
  }
  addPairSums(p, length, changed, sumA2, sumB2, sumAB, sumD, sumD2, maxAbs);
  addBaseSums(p, sumC2, sumDa2, sumDb2, sumDaDb, bothNonZero, signSum);
}

function addPairSums(p: DiffPartial, count: number, changed: number, sumA2: number, sumB2: number, sumAB: number, sumD: number, sumD2: number, maxAbs: number): void {
  p.count += count;
  p.changed += changed;
  p.sumA2 += sumA2;
  p.sumB2 += sumB2;
  p.sumAB += sumAB;
  p.sumD += sumD;
  p.sumD2 += sumD2;
  p.maxAbs = maxAbs;
}

/** signSum = agreeing - conflicting positions, bothNonZero = agreeing + conflicting. */
function addBaseSums(p: DiffPartial, sumC2: number, sumDa2: number, sumDb2: number, sumDaDb: number, bothNonZero: number, signSum: number): void {
  p.sumC2 += sumC2;
  p.sumDa2 += sumDa2;
  p.sumDb2 += sumDb2;
  p.sumDaDb += sumDaDb;
  p.signAgree += (bothNonZero + signSum) / 2;
  p.signConflict += (bothNonZero - signSum) / 2;
}

/** False when an input held NaN or infinity (it reaches the sums of squares). */
export function hasFiniteSums(p: DiffPartial): boolean {
  return Number.isFinite(p.sumA2 + p.sumB2 + p.sumC2 + p.maxAbs);
}

/** The metrics of a (merged) partial; task-vector fields only when `withBase`. */
export type DiffMetrics = Pick<
  TensorDiff,
  'l2_diff' | 'rel_l2' | 'cosine' | 'max_abs_diff' | 'frac_changed' | 'mean_diff' | 'std_diff' | 'cosine_tv' | 'sign_agreement' | 'conflict' | 'rel_norm_a' | 'rel_norm_b' | 'norm_tv_a' | 'norm_tv_b' | 'norm_base'
> & { norm_a: number; norm_b: number };

export function finalizeMetrics(p: DiffPartial, withBase: boolean): DiffMetrics {
  const normA = Math.sqrt(p.sumA2);
  const normB = Math.sqrt(p.sumB2);
  const l2 = Math.sqrt(p.sumD2);
  const n = p.count;
  const mean = n > 0 ? p.sumD / n : 0;
  // Population variance from the two sums; clamped because rounding can leave a tiny negative.
  const variance = n > 0 ? Math.max(0, p.sumD2 / n - mean * mean) : 0;
  const metrics: DiffMetrics = {
    l2_diff: l2,
    rel_l2: ratio(l2, normA),
    norm_a: normA,
    norm_b: normB,
    cosine: cosine(p.sumAB, normA, normB),
    max_abs_diff: p.maxAbs,
    frac_changed: n > 0 ? p.changed / n : 0,
    mean_diff: mean,
    std_diff: Math.sqrt(variance),
  };
  if (withBase) {
    const normC = Math.sqrt(p.sumC2);
    const normDa = Math.sqrt(p.sumDa2);
    const normDb = Math.sqrt(p.sumDb2);
    const bothNonZero = p.signAgree + p.signConflict;
    metrics.cosine_tv = cosine(p.sumDaDb, normDa, normDb);
    metrics.sign_agreement = bothNonZero > 0 ? p.signAgree / bothNonZero : null;
    metrics.conflict = n > 0 ? p.signConflict / n : 0;
    metrics.rel_norm_a = ratio(normDa, normC);
    metrics.rel_norm_b = ratio(normDb, normC);
    metrics.norm_tv_a = normDa;
    metrics.norm_tv_b = normDb;
    metrics.norm_base = normC;
  }
  return metrics;
}

/** x / reference; 0 when both are 0, null when only the reference is (unbounded). */
function ratio(x: number, reference: number): number | null {
  if (reference > 0) return x / reference;
  return x === 0 ? 0 : null;
}

/** dot / (|x| |y|), clamped against rounding; 1 for two zero vectors (equal), 0 when one is zero. */
function cosine(dot: number, normX: number, normY: number): number {
  if (normX > 0 && normY > 0) return Math.min(1, Math.max(-1, dot / normX / normY));
  return normX === 0 && normY === 0 ? 1 : 0;
}
