// The statistics of src/core/stats/accumulate.ts (summarize's two passes, addToHistogram) over
// f32, bf16 or f16 elements: the same float64 operations per element, the sums kept in two lanes
// (a reordering of the additions), the counts and extremes exact.
import { decode, KIND_F32 } from './codec';
import { BLOCK, RESULTS, scratch } from './memory';

const FIRST_LANE = i64x2(-1, 0);

@inline function pair(at: usize, last: bool): v128 {
  if (last) return v128.load32_zero(at);
  return v128.load64_zero(at);
}

@inline function block(kind: i32, src: usize, start: i32, m: i32): usize {
  if (kind == KIND_F32) return src + (<usize>start << 2);
  const out = scratch(0);
  decode(kind, src + (<usize>start << 1), out, m);
  return out;
}

/** First pass: RESULTS = [finite, sum, min, max, zeros, nan, inf] over the finite elements. */
export function statsSums(kind: i32, src: usize, n: i32): void {
  const zero = f64x2.splat(0);
  let finite = i64x2.splat(0), zeros = i64x2.splat(0), nan = i64x2.splat(0);
  let sum = f64x2.splat(0), lo = f64x2.splat(Infinity), hi = f64x2.splat(-Infinity);
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const p = block(kind, src, start, m);
    for (let i = 0; i < m; i += 2) {
      const last = i + 1 == m;
      const v = f64x2.promote_low_f32x4(pair(p + (<usize>i << 2), last));
      let isFinite = f64x2.eq(f64x2.sub(v, v), zero);
      let isNan = f64x2.ne(v, v);
      let isZero = f64x2.eq(v, zero);
      if (last) {
        isFinite = v128.and(isFinite, FIRST_LANE);
        isNan = v128.and(isNan, FIRST_LANE);
        isZero = v128.and(isZero, FIRST_LANE);
      }
      finite = i64x2.sub(finite, isFinite);
      nan = i64x2.sub(nan, isNan);
      zeros = i64x2.sub(zeros, isZero);
      sum = f64x2.add(sum, v128.and(v, isFinite));
      lo = f64x2.pmin(lo, v128.bitselect(v, f64x2.splat(Infinity), isFinite));
      hi = f64x2.pmax(hi, v128.bitselect(v, f64x2.splat(-Infinity), isFinite));
    }
  }
  const finiteCount = <f64>(i64x2.extract_lane(finite, 0) + i64x2.extract_lane(finite, 1));
  const nanCount = <f64>(i64x2.extract_lane(nan, 0) + i64x2.extract_lane(nan, 1));
  const lo0 = f64x2.extract_lane(lo, 0), lo1 = f64x2.extract_lane(lo, 1);
  const hi0 = f64x2.extract_lane(hi, 0), hi1 = f64x2.extract_lane(hi, 1);
  store<f64>(RESULTS, finiteCount, 0);
  store<f64>(RESULTS, f64x2.extract_lane(sum, 0) + f64x2.extract_lane(sum, 1), 8);
  store<f64>(RESULTS, lo1 < lo0 ? lo1 : lo0, 16);
  store<f64>(RESULTS, hi1 > hi0 ? hi1 : hi0, 24);
  store<f64>(RESULTS, <f64>(i64x2.extract_lane(zeros, 0) + i64x2.extract_lane(zeros, 1)), 32);
  store<f64>(RESULTS, nanCount, 40);
  store<f64>(RESULTS, <f64>n - finiteCount - nanCount, 48);
}

/** Second pass: RESULTS[0] = the sum of (v - mean)^2 over the finite elements. */
export function statsM2(kind: i32, src: usize, n: i32, mean: f64): void {
  const zero = f64x2.splat(0);
  const center = f64x2.splat(mean);
  let m2 = f64x2.splat(0);
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const p = block(kind, src, start, m);
    for (let i = 0; i < m; i += 2) {
      const last = i + 1 == m;
      const v = f64x2.promote_low_f32x4(pair(p + (<usize>i << 2), last));
      let isFinite = f64x2.eq(f64x2.sub(v, v), zero);
      if (last) isFinite = v128.and(isFinite, FIRST_LANE);
      const d = f64x2.sub(v, center);
      m2 = f64x2.add(m2, v128.and(f64x2.mul(d, d), isFinite));
    }
  }
  store<f64>(RESULTS, f64x2.extract_lane(m2, 0) + f64x2.extract_lane(m2, 1), 0);
}

/**
 * Adds the finite elements in [lo, hi] to u32 `counts` of `bins` equal bins (hi in the last one);
 * `scale` is bins / (hi - lo), or 0 when lo == hi, computed by the caller as addToHistogram does.
 */
export function histogram(kind: i32, src: usize, n: i32, lo: f64, hi: f64, scale: f64, bins: i32, counts: usize): void {
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const p = block(kind, src, start, m);
    for (let i = 0; i < m; i++) {
      const v = <f64>load<f32>(p + (<usize>i << 2));
      if (!(v >= lo && v <= hi)) continue;
      const at = Math.floor((v - lo) * scale);
      // NaN (an infinite scale times zero) is dropped, as a typed array ignores counts[NaN]++.
      if (at != at) continue;
      const bin = at >= <f64>bins ? bins - 1 : <i32>at;
      const slot = counts + (<usize>bin << 2);
      store<u32>(slot, load<u32>(slot) + 1);
    }
  }
}
