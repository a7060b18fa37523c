// The diff accumulations of src/core/diff/metrics.ts (accumulatePair / accumulateWithBase) over
// f32, bf16 or f16 operands. Per element the same float64 operations as the JavaScript loops, so
// every term is identical; the sums are kept in two float64 lanes and added at the end, which only
// reorders the additions. Non-finite positions are masked out of the sums and counted, in the
// same pass. Operands are decoded a block at a time into cache-resident scratch. Two elements per
// step (one float64 pair); an odd last element is loaded alone and its padding lane masked.
import { decode, KIND_BF16, KIND_F32 } from './codec';
import { BLOCK, RESULTS, scratch } from './memory';

// Result slots (float64), read by src/core/kernels/kernels.ts in this order.
const COUNT = 0, NONFINITE = 1, SUM_A2 = 2, SUM_B2 = 3, SUM_AB = 4, SUM_D = 5, SUM_D2 = 6, MAX_ABS = 7, CHANGED = 8;
const SUM_C2 = 9, SUM_DA2 = 10, SUM_DB2 = 11, SUM_DADB = 12, SIGN_AGREE = 13, SIGN_CONFLICT = 14;

@inline function sumLanes(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

@inline function countLanes(v: v128): f64 {
  return <f64>(i64x2.extract_lane(v, 0) + i64x2.extract_lane(v, 1));
}

/** Counts of four i32 lanes (each below 2^31: a call covers fewer than 2^33 elements). */
@inline function laneTotal(v: v128): f64 {
  return <f64>(<u32>i32x4.extract_lane(v, 0)) + <f64>(<u32>i32x4.extract_lane(v, 1)) + <f64>(<u32>i32x4.extract_lane(v, 2)) + <f64>(<u32>i32x4.extract_lane(v, 3));
}

@inline function maxLanes(v: v128): f64 {
  const x = f64x2.extract_lane(v, 0);
  const y = f64x2.extract_lane(v, 1);
  return y > x ? y : x;
}

/** Masks the padding lane of an odd last element out of every sum and count. */
const FIRST_LANE = i64x2(-1, 0);

/** Two f32 elements into the low half; the last element of an odd count alone (the other lane zero). */
@inline function pair(at: usize, last: bool): v128 {
  if (last) return v128.load32_zero(at);
  return v128.load64_zero(at);
}

@inline function block(kind: i32, src: usize, start: i32, m: i32, slot: i32): usize {
  const size: usize = kind == KIND_F32 ? 4 : 2;
  const at = src + <usize>start * size;
  if (kind == KIND_F32) return at;
  const out = scratch(slot);
  decode(kind, at, out, m);
  return out;
}

/** accumulatePair over n elements, non-finite pairs masked out; sums into RESULTS[0..9). */
function diffPairChecked(kindA: i32, a: usize, kindB: i32, b: usize, n: i32): void {
  let sumA2 = f64x2.splat(0), sumB2 = f64x2.splat(0), sumAB = f64x2.splat(0), sumD = f64x2.splat(0), sumD2 = f64x2.splat(0);
  let maxAbs = f64x2.splat(0), count = i64x2.splat(0), changed = i64x2.splat(0);
  const zero = f64x2.splat(0);
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const pa = block(kindA, a, start, m, 0);
    const pb = block(kindB, b, start, m, 1);
    for (let i = 0; i < m; i += 2) {
      const off = <usize>i << 2;
      const last = i + 1 == m;
      const x = f64x2.promote_low_f32x4(pair(pa + off, last));
      const y = f64x2.promote_low_f32x4(pair(pb + off, last));
      const d = f64x2.sub(y, x);
      let finite = f64x2.eq(f64x2.sub(d, d), zero);
      if (last) finite = v128.and(finite, FIRST_LANE);
      count = i64x2.sub(count, finite);
      sumA2 = f64x2.add(sumA2, v128.and(f64x2.mul(x, x), finite));
      sumB2 = f64x2.add(sumB2, v128.and(f64x2.mul(y, y), finite));
      sumAB = f64x2.add(sumAB, v128.and(f64x2.mul(x, y), finite));
      sumD = f64x2.add(sumD, v128.and(d, finite));
      sumD2 = f64x2.add(sumD2, v128.and(f64x2.mul(d, d), finite));
      maxAbs = f64x2.pmax(maxAbs, v128.and(f64x2.abs(d), finite));
      changed = i64x2.sub(changed, v128.and(f64x2.ne(d, zero), finite));
    }
  }
  const counted = countLanes(count);
  store<f64>(RESULTS, counted, COUNT << 3);
  store<f64>(RESULTS, <f64>n - counted, NONFINITE << 3);
  store<f64>(RESULTS, sumLanes(sumA2), SUM_A2 << 3);
  store<f64>(RESULTS, sumLanes(sumB2), SUM_B2 << 3);
  store<f64>(RESULTS, sumLanes(sumAB), SUM_AB << 3);
  store<f64>(RESULTS, sumLanes(sumD), SUM_D << 3);
  store<f64>(RESULTS, sumLanes(sumD2), SUM_D2 << 3);
  store<f64>(RESULTS, maxLanes(maxAbs), MAX_ABS << 3);
  store<f64>(RESULTS, countLanes(changed), CHANGED << 3);
}

/** accumulateWithBase over n elements, non-finite positions masked out; sums into RESULTS[0..15). */
function diffWithBaseChecked(kindA: i32, a: usize, kindB: i32, b: usize, kindC: i32, c: usize, n: i32): void {
  let sumA2 = f64x2.splat(0), sumB2 = f64x2.splat(0), sumAB = f64x2.splat(0), sumD = f64x2.splat(0), sumD2 = f64x2.splat(0);
  let sumC2 = f64x2.splat(0), sumDa2 = f64x2.splat(0), sumDb2 = f64x2.splat(0), sumDaDb = f64x2.splat(0);
  let maxAbs = f64x2.splat(0), count = i64x2.splat(0), changed = i64x2.splat(0), agree = i64x2.splat(0), conflict = i64x2.splat(0);
  const zero = f64x2.splat(0);
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const pa = block(kindA, a, start, m, 0);
    const pb = block(kindB, b, start, m, 1);
    const pc = block(kindC, c, start, m, 2);
    for (let i = 0; i < m; i += 2) {
      const off = <usize>i << 2;
      const last = i + 1 == m;
      const x = f64x2.promote_low_f32x4(pair(pa + off, last));
      const y = f64x2.promote_low_f32x4(pair(pb + off, last));
      const z = f64x2.promote_low_f32x4(pair(pc + off, last));
      const d = f64x2.sub(y, x);
      const da = f64x2.sub(x, z);
      const db = f64x2.sub(y, z);
      let finite = v128.and(f64x2.eq(f64x2.sub(d, d), zero), f64x2.eq(f64x2.sub(da, da), zero));
      if (last) finite = v128.and(finite, FIRST_LANE);
      count = i64x2.sub(count, finite);
      sumA2 = f64x2.add(sumA2, v128.and(f64x2.mul(x, x), finite));
      sumB2 = f64x2.add(sumB2, v128.and(f64x2.mul(y, y), finite));
      sumAB = f64x2.add(sumAB, v128.and(f64x2.mul(x, y), finite));
      sumD = f64x2.add(sumD, v128.and(d, finite));
      sumD2 = f64x2.add(sumD2, v128.and(f64x2.mul(d, d), finite));
      maxAbs = f64x2.pmax(maxAbs, v128.and(f64x2.abs(d), finite));
      changed = i64x2.sub(changed, v128.and(f64x2.ne(d, zero), finite));
      sumC2 = f64x2.add(sumC2, v128.and(f64x2.mul(z, z), finite));
      sumDa2 = f64x2.add(sumDa2, v128.and(f64x2.mul(da, da), finite));
      sumDb2 = f64x2.add(sumDb2, v128.and(f64x2.mul(db, db), finite));
      sumDaDb = f64x2.add(sumDaDb, v128.and(f64x2.mul(da, db), finite));
      const both = v128.and(v128.and(f64x2.ne(da, zero), f64x2.ne(db, zero)), finite);
      const same = i64x2.eq(f64x2.gt(da, zero), f64x2.gt(db, zero));
      agree = i64x2.sub(agree, v128.and(both, same));
      conflict = i64x2.sub(conflict, v128.andnot(both, same));
    }
  }
  const counted = countLanes(count);
  store<f64>(RESULTS, counted, COUNT << 3);
  store<f64>(RESULTS, <f64>n - counted, NONFINITE << 3);
  store<f64>(RESULTS, sumLanes(sumA2), SUM_A2 << 3);
  store<f64>(RESULTS, sumLanes(sumB2), SUM_B2 << 3);
  store<f64>(RESULTS, sumLanes(sumAB), SUM_AB << 3);
  store<f64>(RESULTS, sumLanes(sumD), SUM_D << 3);
  store<f64>(RESULTS, sumLanes(sumD2), SUM_D2 << 3);
  store<f64>(RESULTS, maxLanes(maxAbs), MAX_ABS << 3);
  store<f64>(RESULTS, countLanes(changed), CHANGED << 3);
  store<f64>(RESULTS, sumLanes(sumC2), SUM_C2 << 3);
  store<f64>(RESULTS, sumLanes(sumDa2), SUM_DA2 << 3);
  store<f64>(RESULTS, sumLanes(sumDb2), SUM_DB2 << 3);
  store<f64>(RESULTS, sumLanes(sumDaDb), SUM_DADB << 3);
  store<f64>(RESULTS, countLanes(agree), SIGN_AGREE << 3);
  store<f64>(RESULTS, countLanes(conflict), SIGN_CONFLICT << 3);
}

// The fast passes: no finiteness mask (a NaN or infinity reaches the sums of squares, and the
// checked pass above then redoes the call), four elements per step with separate accumulators for
// the low and high pairs (two independent chains of additions), and the odd tail of a call padded
// with zeros, which add nothing and change nothing.

const PADS = memory.data(3 * 16, 16);

/** Loads 4 elements, the last m & 3 of a block padded with zeros (in a slot apart from any operand). */
@inline function quad(p: usize, i: i32, m: i32, slot: i32): v128 {
  if (i + 4 <= m) return v128.load(p + (<usize>i << 2));
  const pad = PADS + (<usize>slot << 4);
  v128.store(pad, f32x4.splat(0));
  memory.copy(pad, p + (<usize>i << 2), <usize>(m - i) << 2);
  return v128.load(pad);
}

@inline function finiteSum(offsets: i32): bool {
  const s = load<f64>(RESULTS, SUM_A2 << 3) + load<f64>(RESULTS, SUM_B2 << 3) + load<f64>(RESULTS, MAX_ABS << 3) + (offsets ? load<f64>(RESULTS, SUM_C2 << 3) : 0);
  return s - s == 0;
}

/** accumulatePair over n elements; sums into RESULTS[0..9). */
export function diffPair(kindA: i32, a: usize, kindB: i32, b: usize, n: i32): void {
  if (kindA == KIND_BF16 && kindB == KIND_BF16) diffPairBf16(a, b, n);
  else diffPairDecoded(kindA, a, kindB, b, n);
  if (!finiteSum(0)) diffPairChecked(kindA, a, kindB, b, n);
}

/** The fast pair pass over operands decoded block by block (or f32 in place). */
function diffPairDecoded(kindA: i32, a: usize, kindB: i32, b: usize, n: i32): void {
  let sumA2l = f64x2.splat(0), sumB2l = f64x2.splat(0), sumABl = f64x2.splat(0), sumDl = f64x2.splat(0), sumD2l = f64x2.splat(0);
  let sumA2h = f64x2.splat(0), sumB2h = f64x2.splat(0), sumABh = f64x2.splat(0), sumDh = f64x2.splat(0), sumD2h = f64x2.splat(0);
  let maxAbs = f64x2.splat(0), changed = i32x4.splat(0);
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const pa = block(kindA, a, start, m, 0);
    const pb = block(kindB, b, start, m, 1);
    for (let i = 0; i < m; i += 4) {
      const va = quad(pa, i, m, 0);
      const vb = quad(pb, i, m, 1);
      const xl = f64x2.promote_low_f32x4(va);
      const yl = f64x2.promote_low_f32x4(vb);
      const xh = f64x2.promote_low_f32x4(i64x2.shuffle(va, va, 1, 1));
      const yh = f64x2.promote_low_f32x4(i64x2.shuffle(vb, vb, 1, 1));
      const dl = f64x2.sub(yl, xl);
      const dh = f64x2.sub(yh, xh);
      sumA2l = f64x2.add(sumA2l, f64x2.mul(xl, xl));
      sumA2h = f64x2.add(sumA2h, f64x2.mul(xh, xh));
      sumB2l = f64x2.add(sumB2l, f64x2.mul(yl, yl));
      sumB2h = f64x2.add(sumB2h, f64x2.mul(yh, yh));
      sumABl = f64x2.add(sumABl, f64x2.mul(xl, yl));
      sumABh = f64x2.add(sumABh, f64x2.mul(xh, yh));
      sumDl = f64x2.add(sumDl, dl);
      sumDh = f64x2.add(sumDh, dh);
      sumD2l = f64x2.add(sumD2l, f64x2.mul(dl, dl));
      sumD2h = f64x2.add(sumD2h, f64x2.mul(dh, dh));
      maxAbs = f64x2.pmax(maxAbs, f64x2.pmax(f64x2.abs(dl), f64x2.abs(dh)));
      // For finite values y - x != 0 exactly when y != x: one f32 compare for four elements.
      changed = i32x4.sub(changed, f32x4.ne(va, vb));
    }
  }
  store<f64>(RESULTS, <f64>n, COUNT << 3);
  store<f64>(RESULTS, 0, NONFINITE << 3);
  store<f64>(RESULTS, sumLanes(sumA2l) + sumLanes(sumA2h), SUM_A2 << 3);
  store<f64>(RESULTS, sumLanes(sumB2l) + sumLanes(sumB2h), SUM_B2 << 3);
  store<f64>(RESULTS, sumLanes(sumABl) + sumLanes(sumABh), SUM_AB << 3);
  store<f64>(RESULTS, sumLanes(sumDl) + sumLanes(sumDh), SUM_D << 3);
  store<f64>(RESULTS, sumLanes(sumD2l) + sumLanes(sumD2h), SUM_D2 << 3);
  store<f64>(RESULTS, maxLanes(maxAbs), MAX_ABS << 3);
  store<f64>(RESULTS, laneTotal(changed), CHANGED << 3);
}

/**
 * The fast pair pass for two BF16 operands, the common checkpoint case: eight elements per step
 * decoded in registers (a bf16 is the top half of an f32), no scratch; the tail of fewer than
 * eight goes through the decoded pass.
 */
function diffPairBf16(a: usize, b: usize, n: i32): void {
  // One accumulator per sum (the two halves' terms added first): fewer live registers than one
  // per half, which the loop spilled.
  let sumA2 = f64x2.splat(0), sumB2 = f64x2.splat(0), sumAB = f64x2.splat(0), sumDv = f64x2.splat(0), sumD2v = f64x2.splat(0);
  let maxAbs = f64x2.splat(0), changed = i32x4.splat(0);
  const whole = n & ~7;
  for (let i = 0; i < whole; i += 8) {
    const ha = v128.load(a + (<usize>i << 1));
    const hb = v128.load(b + (<usize>i << 1));
    // Equal 16-bit patterns are equal values except +0/-0, which compare equal as floats too: the
    // f32 compare below counts d != 0 for finite values.
    for (let half = 0; half < 2; half++) {
      const va = half ? i32x4.shl(i32x4.extend_high_i16x8_u(ha), 16) : i32x4.shl(i32x4.extend_low_i16x8_u(ha), 16);
      const vb = half ? i32x4.shl(i32x4.extend_high_i16x8_u(hb), 16) : i32x4.shl(i32x4.extend_low_i16x8_u(hb), 16);
      const xl = f64x2.promote_low_f32x4(va);
      const yl = f64x2.promote_low_f32x4(vb);
      const xh = f64x2.promote_low_f32x4(i64x2.shuffle(va, va, 1, 1));
      const yh = f64x2.promote_low_f32x4(i64x2.shuffle(vb, vb, 1, 1));
      const dl = f64x2.sub(yl, xl);
      const dh = f64x2.sub(yh, xh);
      sumA2 = f64x2.add(sumA2, f64x2.add(f64x2.mul(xl, xl), f64x2.mul(xh, xh)));
      sumB2 = f64x2.add(sumB2, f64x2.add(f64x2.mul(yl, yl), f64x2.mul(yh, yh)));
      sumAB = f64x2.add(sumAB, f64x2.add(f64x2.mul(xl, yl), f64x2.mul(xh, yh)));
      sumDv = f64x2.add(sumDv, f64x2.add(dl, dh));
      sumD2v = f64x2.add(sumD2v, f64x2.add(f64x2.mul(dl, dl), f64x2.mul(dh, dh)));
      maxAbs = f64x2.pmax(maxAbs, f64x2.pmax(f64x2.abs(dl), f64x2.abs(dh)));
      changed = i32x4.sub(changed, f32x4.ne(va, vb));
    }
  }
  let totalA2 = sumLanes(sumA2), totalB2 = sumLanes(sumB2), totalAB = sumLanes(sumAB);
  let sumD = sumLanes(sumDv), sumD2 = sumLanes(sumD2v), max = maxLanes(maxAbs), count = laneTotal(changed);
  if (whole < n) {
    diffPairDecoded(KIND_BF16, a + (<usize>whole << 1), KIND_BF16, b + (<usize>whole << 1), n - whole);
    totalA2 += load<f64>(RESULTS, SUM_A2 << 3);
    totalB2 += load<f64>(RESULTS, SUM_B2 << 3);
    totalAB += load<f64>(RESULTS, SUM_AB << 3);
    sumD += load<f64>(RESULTS, SUM_D << 3);
    sumD2 += load<f64>(RESULTS, SUM_D2 << 3);
    const tailMax = load<f64>(RESULTS, MAX_ABS << 3);
    if (tailMax > max) max = tailMax;
    count += load<f64>(RESULTS, CHANGED << 3);
  }
  store<f64>(RESULTS, <f64>n, COUNT << 3);
  store<f64>(RESULTS, 0, NONFINITE << 3);
  store<f64>(RESULTS, totalA2, SUM_A2 << 3);
  store<f64>(RESULTS, totalB2, SUM_B2 << 3);
  store<f64>(RESULTS, totalAB, SUM_AB << 3);
  store<f64>(RESULTS, sumD, SUM_D << 3);
  store<f64>(RESULTS, sumD2, SUM_D2 << 3);
  store<f64>(RESULTS, max, MAX_ABS << 3);
  store<f64>(RESULTS, count, CHANGED << 3);
}

/** accumulateWithBase over n elements; sums into RESULTS[0..15). */
export function diffWithBase(kindA: i32, a: usize, kindB: i32, b: usize, kindC: i32, c: usize, n: i32): void {
  let sumA2 = f64x2.splat(0), sumB2 = f64x2.splat(0), sumAB = f64x2.splat(0), sumD = f64x2.splat(0), sumD2 = f64x2.splat(0);
  let sumC2 = f64x2.splat(0), sumDa2 = f64x2.splat(0), sumDb2 = f64x2.splat(0), sumDaDb = f64x2.splat(0);
  let maxAbs = f64x2.splat(0), changed = i32x4.splat(0), agree = i32x4.splat(0), conflict = i32x4.splat(0);
  for (let start = 0; start < n; start += BLOCK) {
    const m = min(BLOCK, n - start);
    const pa = block(kindA, a, start, m, 0);
    const pb = block(kindB, b, start, m, 1);
    const pc = block(kindC, c, start, m, 2);
    for (let i = 0; i < m; i += 4) {
      const va = quad(pa, i, m, 0);
      const vb = quad(pb, i, m, 1);
      const vc = quad(pc, i, m, 2);
      for (let half = 0; half < 2; half++) {
        const x = f64x2.promote_low_f32x4(half ? i64x2.shuffle(va, va, 1, 1) : va);
        const y = f64x2.promote_low_f32x4(half ? i64x2.shuffle(vb, vb, 1, 1) : vb);
        const z = f64x2.promote_low_f32x4(half ? i64x2.shuffle(vc, vc, 1, 1) : vc);
        const d = f64x2.sub(y, x);
        const da = f64x2.sub(x, z);
        const db = f64x2.sub(y, z);
        sumA2 = f64x2.add(sumA2, f64x2.mul(x, x));
        sumB2 = f64x2.add(sumB2, f64x2.mul(y, y));
        sumAB = f64x2.add(sumAB, f64x2.mul(x, y));
        sumD = f64x2.add(sumD, d);
        sumD2 = f64x2.add(sumD2, f64x2.mul(d, d));
        maxAbs = f64x2.pmax(maxAbs, f64x2.abs(d));
        sumC2 = f64x2.add(sumC2, f64x2.mul(z, z));
        sumDa2 = f64x2.add(sumDa2, f64x2.mul(da, da));
        sumDb2 = f64x2.add(sumDb2, f64x2.mul(db, db));
        sumDaDb = f64x2.add(sumDaDb, f64x2.mul(da, db));
      }
      // For finite values the signs of x - z and y - z are those of the f32 compares.
      changed = i32x4.sub(changed, f32x4.ne(va, vb));
      const both = v128.and(f32x4.ne(va, vc), f32x4.ne(vb, vc));
      const same = i32x4.eq(f32x4.gt(va, vc), f32x4.gt(vb, vc));
      agree = i32x4.sub(agree, v128.and(both, same));
      conflict = i32x4.sub(conflict, v128.andnot(both, same));
    }
  }
  store<f64>(RESULTS, <f64>n, COUNT << 3);
  store<f64>(RESULTS, 0, NONFINITE << 3);
  store<f64>(RESULTS, sumLanes(sumA2), SUM_A2 << 3);
  store<f64>(RESULTS, sumLanes(sumB2), SUM_B2 << 3);
  store<f64>(RESULTS, sumLanes(sumAB), SUM_AB << 3);
  store<f64>(RESULTS, sumLanes(sumD), SUM_D << 3);
  store<f64>(RESULTS, sumLanes(sumD2), SUM_D2 << 3);
  store<f64>(RESULTS, maxLanes(maxAbs), MAX_ABS << 3);
  store<f64>(RESULTS, laneTotal(changed), CHANGED << 3);
  store<f64>(RESULTS, sumLanes(sumC2), SUM_C2 << 3);
  store<f64>(RESULTS, sumLanes(sumDa2), SUM_DA2 << 3);
  store<f64>(RESULTS, sumLanes(sumDb2), SUM_DB2 << 3);
  store<f64>(RESULTS, sumLanes(sumDaDb), SUM_DADB << 3);
  store<f64>(RESULTS, laneTotal(agree), SIGN_AGREE << 3);
  store<f64>(RESULTS, laneTotal(conflict), SIGN_CONFLICT << 3);
  if (!finiteSum(1)) diffWithBaseChecked(kindA, a, kindB, b, kindC, c, n);
}
