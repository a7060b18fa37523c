// The element loops of the merge methods (src/core/merge/), four elements per step, each the port
// of a JavaScript loop that stays beside its caller as the reference. Every value is float32 and
// every operation a single float32 operation in the reference's order, so results are bit for bit
// those of the JavaScript loops (IEEE float32 arithmetic is exactly rounded in both; only the
// payload bits of NaNs are unspecified). Tables of operand pointers and weights are passed in ARGS.
import { ARGS, VALUE_INDEX } from './memory';

@inline function pointerAt(i: i32): usize {
  return <usize>load<u32>(ARGS + (<usize>i << 2));
}

@inline function weightAt(table: i32, i: i32): f32 {
  return load<f32>(ARGS + (<usize>(table + i) << 2));
}

/** out = a - b (the task vectors: x - base). */
export function subtract(a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    v128.store(out + at, f32x4.sub(v128.load(a + at), v128.load(b + at)));
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    store<f32>(out + at, load<f32>(a + at) - load<f32>(b + at));
  }
}

/** Clears the sign bits in place: |x| as a key whose unsigned order is the numeric order. */
export function clearSigns(values: usize, n: i32): void {
  const mask = i32x4.splat(0x7fffffff);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = values + (<usize>i << 2);
    v128.store(at, v128.and(v128.load(at), mask));
  }
  for (; i < n; i++) {
    const at = values + (<usize>i << 2);
    store<u32>(at, load<u32>(at) & 0x7fffffff);
  }
}

/** values *= r, in place (the L1 rescale of magnitude-sparsified task vectors). */
export function scaleInPlace(values: usize, n: i32, r: f32): void {
  const factor = f32x4.splat(r);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = values + (<usize>i << 2);
    v128.store(at, f32x4.mul(v128.load(at), factor));
  }
  for (; i < n; i++) {
    const at = values + (<usize>i << 2);
    store<f32>(at, load<f32>(at) * r);
  }
}

/** u32 hist[65536] += counts of keys >>> 16: the first pass of a rank cut. */
export function histogramHigh(keys: usize, n: i32, hist: usize): void {
  for (let i = 0; i < n; i++) {
    const slot = hist + (<usize>(load<u32>(keys + (<usize>i << 2)) >>> 16) << 2);
    store<u32>(slot, load<u32>(slot) + 1);
  }
}

/** The non-empty bins of u32 hist[n] (n a multiple of 4), ascending: indices into u32 `bins`, counts into u32 `counts`; returns how many. */
export function nonEmptyBins(hist: usize, n: i32, bins: usize, counts: usize): i32 {
  let m = 0;
  for (let i = 0; i < n; i += 4) {
    const v = v128.load(hist + (<usize>i << 2));
    // Most of a task's 65536 bins are empty: four at a time.
    if (!v128.any_true(v)) continue;
    for (let lane = 0; lane < 4; lane++) {
      const c = load<u32>(hist + (<usize>(i + lane) << 2));
      store<u32>(bins + (<usize>m << 2), i + lane);
      store<u32>(counts + (<usize>m << 2), c);
      m += c != 0 ? 1 : 0;
    }
  }
  return m;
}

/** u32 hist[65536] += counts of keys & 0xffff among the keys whose top half is `bucket`. */
export function histogramLow(keys: usize, n: i32, bucket: u32, hist: usize): void {
  for (let i = 0; i < n; i++) {
    const key = load<u32>(keys + (<usize>i << 2));
    if (key >>> 16 != bucket) continue;
    const slot = hist + (<usize>(key & 0xffff) << 2);
    store<u32>(slot, load<u32>(slot) + 1);
  }
}

/** u32 counts[i / block] += 1 for every key equal to `threshold`. */
export function countEqual(keys: usize, n: i32, threshold: u32, block: i32, counts: usize): void {
  const target = i32x4.splat(threshold);
  for (let start = 0; start < n; start += block) {
    const end = min(n, start + block);
    let equal = i32x4.splat(0);
    let i = start;
    for (; i + 4 <= end; i += 4) equal = i32x4.sub(equal, i32x4.eq(v128.load(keys + (<usize>i << 2)), target));
    let total = laneSum(equal);
    for (; i < end; i++) if (load<u32>(keys + (<usize>i << 2)) == threshold) total++;
    addTo(counts, <u32>(start / block), total);
  }
}

@inline function laneSum(v: v128): u32 {
  return <u32>(i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3));
}

@inline function addTo(counts: usize, index: u32, amount: u32): void {
  const slot = counts + (<usize>index << 2);
  store<u32>(slot, load<u32>(slot) + amount);
}

/**
 * Zeroes the values outside a magnitude rank cut, in place: kept are keys (|x| bits) above the
 * threshold (below it when ascending) and the first `need` - `eqBefore` keys equal to it, in index
 * order. Returns how many keys equal to the threshold were seen, eqBefore included.
 */
export function keepInCut(values: usize, n: i32, threshold: u32, need: f64, eqBefore: f64, descending: bool): f64 {
  const target = i32x4.splat(threshold);
  const magnitude = i32x4.splat(0x7fffffff);
  let seen = eqBefore;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = values + (<usize>i << 2);
    const v = v128.load(at);
    const key = v128.and(v, magnitude);
    let keep = descending ? i32x4.gt_u(key, target) : i32x4.lt_u(key, target);
    const tied = i32x4.eq(key, target);
    const equal = i32x4.bitmask(tied);
    const ties = <f64>popcnt(equal);
    // Threshold ties are taken in index order while the cut still needs them. Whether this group's
    // all fit is a select, not a branch: with 16-bit inputs ties are common and come at random.
    const fit = seen + ties <= need;
    keep = v128.or(keep, v128.and(tied, i32x4.splat(fit ? -1 : 0)));
    if (!fit && seen < need) {
      // The one group (per cut) that takes some of its ties: lane by lane.
      for (let lane = 0; lane < 4; lane++) {
        if (!((equal >>> lane) & 1)) continue;
        if (seen + countBelow(equal, lane) < need) keep = setLane(keep, lane);
      }
    }
    seen += ties;
    v128.store(at, v128.and(v, keep));
  }
  for (; i < n; i++) {
    const at = values + (<usize>i << 2);
    const key = load<u32>(at) & 0x7fffffff;
    let kept = descending ? key > threshold : key < threshold;
    if (key == threshold) {
      kept = seen < need;
      seen += 1;
    }
    if (!kept) store<u32>(at, 0);
  }
  return seen;
}

/** Set bits of `mask` below bit `lane`: the threshold ties before that lane in its group. */
@inline function countBelow(mask: i32, lane: i32): f64 {
  return <f64>popcnt(mask & ((1 << lane) - 1));
}

@inline function setLane(v: v128, lane: i32): v128 {
  if (lane == 0) return i32x4.replace_lane(v, 0, -1);
  if (lane == 1) return i32x4.replace_lane(v, 1, -1);
  if (lane == 2) return i32x4.replace_lane(v, 2, -1);
  return i32x4.replace_lane(v, 3, -1);
}

/**
 * linear: out = (sum_i w_i x_i) / divisor (no division unless `normalize`), the sum taken from 0
 * in model order. ARGS: `models` pointers, then `models` f32 weights.
 */
export function weightedSum(models: i32, n: i32, normalize: bool, divisor: f32, out: usize): void {
  const by = f32x4.splat(divisor);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    let s = f32x4.splat(0);
    for (let m = 0; m < models; m++) s = f32x4.add(s, f32x4.mul(f32x4.splat(weightAt(models, m)), v128.load(pointerAt(m) + at)));
    v128.store(out + at, normalize ? f32x4.div(s, by) : s);
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    let s: f32 = 0;
    for (let m = 0; m < models; m++) s = s + weightAt(models, m) * load<f32>(pointerAt(m) + at);
    store<f32>(out + at, normalize ? s / divisor : s);
  }
}

/**
 * weightedSum over models stored as bf16 (the ARGS pointers are to their 16-bit patterns), each
 * decoded in registers: the same float32 operations in the same order, so the same bits, without
 * writing the decoded values out and reading them back.
 */
export function weightedSumBf16(models: i32, n: i32, normalize: bool, divisor: f32, out: usize): void {
  const by = f32x4.splat(divisor);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    let lo = f32x4.splat(0);
    let hi = f32x4.splat(0);
    for (let m = 0; m < models; m++) {
      const bits = v128.load(pointerAt(m) + (<usize>i << 1));
      const w = f32x4.splat(weightAt(models, m));
      lo = f32x4.add(lo, f32x4.mul(w, i32x4.shl(i32x4.extend_low_i16x8_u(bits), 16)));
      hi = f32x4.add(hi, f32x4.mul(w, i32x4.shl(i32x4.extend_high_i16x8_u(bits), 16)));
    }
    v128.store(out + (<usize>i << 2), normalize ? f32x4.div(lo, by) : lo);
    v128.store(out + (<usize>i << 2), normalize ? f32x4.div(hi, by) : hi, 16);
  }
  for (; i < n; i++) {
    let s: f32 = 0;
    for (let m = 0; m < models; m++) s = s + weightAt(models, m) * reinterpret<f32>(<u32>load<u16>(pointerAt(m) + (<usize>i << 1)) << 16);
    store<f32>(out + (<usize>i << 2), normalize ? s / divisor : s);
  }
}

/**
 * The task-vector combination of mergekit's generalized task arithmetic over sparsified deltas:
 * wd_i = d_i w_i; without consensus mixed = sum wd_i (over `divisor` when normalizing); with
 * consensus (TIES) the sign of sum wd_i is elected (>= 0 counts as +), and mixed sums the wd_i of
 * that sign, over the sum of their weights (1 when that is 0) when normalizing. out = base + mixed.
 * ARGS: `models` delta pointers, then `models` f32 weights.
 */
export function taskCombine(models: i32, base: usize, n: i32, consensus: bool, normalize: bool, divisor: f32, out: usize): void {
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  const by = f32x4.splat(divisor);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    let mixed = zero;
    if (!consensus) {
      for (let m = 0; m < models; m++) mixed = f32x4.add(mixed, f32x4.mul(v128.load(pointerAt(m) + at), f32x4.splat(weightAt(models, m))));
      if (normalize) mixed = f32x4.div(mixed, by);
    } else {
      let total = zero;
      for (let m = 0; m < models; m++) total = f32x4.add(total, f32x4.mul(v128.load(pointerAt(m) + at), f32x4.splat(weightAt(models, m))));
      const positive = f32x4.ge(total, zero);
      let weights = zero;
      for (let m = 0; m < models; m++) {
        const w = f32x4.splat(weightAt(models, m));
        const wd = f32x4.mul(v128.load(pointerAt(m) + at), w);
        // Zeros and NaNs agree with neither sign.
        const agree = v128.bitselect(f32x4.gt(wd, zero), f32x4.lt(wd, zero), positive);
        mixed = f32x4.add(mixed, v128.and(wd, agree));
        weights = f32x4.add(weights, v128.and(w, agree));
      }
      if (normalize) mixed = f32x4.div(mixed, v128.bitselect(one, weights, f32x4.eq(weights, zero)));
    }
    v128.store(out + at, f32x4.add(v128.load(base + at), mixed));
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    let mixed: f32 = 0;
    if (!consensus) {
      for (let m = 0; m < models; m++) mixed = mixed + load<f32>(pointerAt(m) + at) * weightAt(models, m);
      if (normalize) mixed = mixed / divisor;
    } else {
      let total: f32 = 0;
      for (let m = 0; m < models; m++) total = total + load<f32>(pointerAt(m) + at) * weightAt(models, m);
      const positive = total >= 0;
      let weights: f32 = 0;
      for (let m = 0; m < models; m++) {
        const w = weightAt(models, m);
        const wd = load<f32>(pointerAt(m) + at) * w;
        if (positive ? wd > 0 : wd < 0) {
          mixed = mixed + wd;
          weights = weights + w;
        }
      }
      if (normalize) mixed = mixed / (weights == 0 ? 1 : weights);
    }
    store<f32>(out + at, load<f32>(base + at) + mixed);
  }
}

// The passes of a rank cut over the magnitudes of task vectors, fused: the key of element i is
// the bits of |x[i] - base[i]| (float32), computed in registers instead of written out first.

@inline function deltaKeys(x: usize, base: usize, at: usize): v128 {
  return v128.and(f32x4.sub(v128.load(x + at), v128.load(base + at)), i32x4.splat(0x7fffffff));
}

@inline function deltaKey(x: usize, base: usize, at: usize): u32 {
  return reinterpret<u32>(load<f32>(x + at) - load<f32>(base + at)) & 0x7fffffff;
}

/**
 * deltaKeys of elements i..i+3, of float32 operands or, with `bf16`, of operands still stored as
 * bf16 bits (widened to float32 bits in registers: the same keys, without a decoded copy).
 */
@inline function deltaKeysAt(x: usize, base: usize, i: i32, bf16: bool): v128 {
  if (!bf16) return deltaKeys(x, base, <usize>i << 2);
  const xs = i32x4.shl(v128.load16x4_u(x + (<usize>i << 1)), 16);
  const bs = i32x4.shl(v128.load16x4_u(base + (<usize>i << 1)), 16);
  return v128.and(f32x4.sub(xs, bs), i32x4.splat(0x7fffffff));
}

@inline function deltaKeyAt(x: usize, base: usize, i: i32, bf16: bool): u32 {
  if (!bf16) return deltaKey(x, base, <usize>i << 2);
  const xs = reinterpret<f32>(<u32>load<u16>(x + (<usize>i << 1)) << 16);
  const bs = reinterpret<f32>(<u32>load<u16>(base + (<usize>i << 1)) << 16);
  return reinterpret<u32>(xs - bs) & 0x7fffffff;
}

@inline function bump(hist: usize, index: u32): void {
  const slot = hist + (<usize>index << 2);
  store<u32>(slot, load<u32>(slot) + 1);
}

/** histogramHigh over the keys of x - base (bf16 bits with `bf16`, else float32). */
export function deltaHistogramHigh(x: usize, base: usize, n: i32, hist: usize, bf16: bool): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const keys = i32x4.shr_u(deltaKeysAt(x, base, i, bf16), 16);
    bump(hist, i32x4.extract_lane(keys, 0));
    bump(hist, i32x4.extract_lane(keys, 1));
    bump(hist, i32x4.extract_lane(keys, 2));
    bump(hist, i32x4.extract_lane(keys, 3));
  }
  for (; i < n; i++) bump(hist, deltaKeyAt(x, base, i, bf16) >>> 16);
}

/** histogramLow over the keys of x - base. */
export function deltaHistogramLow(x: usize, base: usize, n: i32, bucket: u32, hist: usize): void {
  const inBucket = i32x4.splat(bucket);
  const lowBits = i32x4.splat(0xffff);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const keys = deltaKeys(x, base, <usize>i << 2);
    const lanes = i32x4.bitmask(i32x4.eq(i32x4.shr_u(keys, 16), inBucket));
    // Most groups hold no key of the bucket.
    if (!lanes) continue;
    const low = v128.and(keys, lowBits);
    if (lanes & 1) bump(hist, i32x4.extract_lane(low, 0));
    if (lanes & 2) bump(hist, i32x4.extract_lane(low, 1));
    if (lanes & 4) bump(hist, i32x4.extract_lane(low, 2));
    if (lanes & 8) bump(hist, i32x4.extract_lane(low, 3));
  }
  for (; i < n; i++) {
    const key = deltaKey(x, base, <usize>i << 2);
    if (key >>> 16 == bucket) bump(hist, key & 0xffff);
  }
}

/** countEqual over the keys of x - base. */
export function deltaCountEqual(x: usize, base: usize, n: i32, threshold: u32, block: i32, counts: usize): void {
  const target = i32x4.splat(threshold);
  for (let start = 0; start < n; start += block) {
    const end = min(n, start + block);
    let equal = i32x4.splat(0);
    let i = start;
    for (; i + 4 <= end; i += 4) equal = i32x4.sub(equal, i32x4.eq(deltaKeys(x, base, <usize>i << 2), target));
    let total = laneSum(equal);
    for (; i < end; i++) if (deltaKey(x, base, <usize>i << 2) == threshold) total++;
    addTo(counts, <u32>(start / block), total);
  }
}

/**
 * deltaHistogramLow that also lists the bucket's members in index order (of bf16 operands' bits with `bf16`), so the cut's threshold
 * ties can be counted per block once the threshold is known, without another pass over the
 * inputs: the low key bits of each member go to u16 `values`, and u32 `blockCounts[i / block]`
 * counts the members among elements [i, i + block) (`block` a multiple of 4). `values` has room
 * for `capacity` members and 4 more (the compaction below writes up to 3 past the last one).
 * Returns how many members there are, or -1 when there are more than `capacity` (the histogram
 * is whole either way).
 */
export function deltaHistogramLowMembers(x: usize, base: usize, n: i32, bucket: u32, hist: usize, block: i32, blockCounts: usize, values: usize, capacity: i32, bf16: bool): i32 {
  const inBucket = i32x4.splat(bucket);
  const lowBits = i32x4.splat(0xffff);
  let count = 0;
  let i = 0;
  let blockEnd = 0;
  let inBlock: u32 = 0;
  for (; i + 4 <= n; i += 4) {
    if (i >= blockEnd) {
      // Block by block (no division per group): `block` is a multiple of 4.
      if (inBlock) addTo(blockCounts, <u32>((blockEnd - 1) / block), inBlock);
      inBlock = 0;
      blockEnd = i + block;
    }
    const keys = deltaKeysAt(x, base, i, bf16);
    const lanes = i32x4.bitmask(i32x4.eq(i32x4.shr_u(keys, 16), inBucket));
    if (!lanes) continue;
    const low = v128.and(keys, lowBits);
    inBlock += <u32>popcnt(lanes);
    // Members of a group come at random with 16-bit inputs: every lane is counted and stored
    // without a branch, with 0 or 1 as its increment, the store position advancing by members
    // only (and held at `capacity` once the list is full).
    const m0 = <u32>(lanes & 1);
    const m1 = <u32>((lanes >>> 1) & 1);
    const m2 = <u32>((lanes >>> 2) & 1);
    const m3 = <u32>((lanes >>> 3) & 1);
    bumpBy(hist, i32x4.extract_lane(low, 0), m0);
    bumpBy(hist, i32x4.extract_lane(low, 1), m1);
    bumpBy(hist, i32x4.extract_lane(low, 2), m2);
    bumpBy(hist, i32x4.extract_lane(low, 3), m3);
    let at = values + (<usize>(count < capacity ? count : capacity) << 1);
    store<u16>(at, <u16>i32x4.extract_lane(low, 0));
    at += m0 << 1;
    store<u16>(at, <u16>i32x4.extract_lane(low, 1));
    at += m1 << 1;
    store<u16>(at, <u16>i32x4.extract_lane(low, 2));
    at += m2 << 1;
    store<u16>(at, <u16>i32x4.extract_lane(low, 3));
    count += <i32>(m0 + m1 + m2 + m3);
  }
  if (inBlock) addTo(blockCounts, <u32>((blockEnd - 1) / block), inBlock);
  for (; i < n; i++) {
    const key = deltaKeyAt(x, base, i, bf16);
    if (key >>> 16 != bucket) continue;
    addTo(blockCounts, <u32>(i / block), 1);
    bump(hist, key & 0xffff);
    if (count < capacity) store<u16>(values + (<usize>count << 1), <u16>(key & 0xffff));
    count++;
  }
  return count > capacity ? -1 : count;
}

@inline function bumpBy(hist: usize, index: u32, amount: u32): void {
  const slot = hist + (<usize>index << 2);
  store<u32>(slot, load<u32>(slot) + amount);
}

/**
 * The members of `bucket` among the keys |x - base| counted per block by their low key bits, for
 * when a few low values repeat (the deltas of 16-bit weights are a few units of their rounding):
 * no list of members, just `lows` (u16, the distinct values in order of first appearance) and u16
 * `tally[((b * 4) + lane) * maxLows + j]`, how many members of block b (`block` elements, a
 * multiple of 4) at that lane of a group of four have lows[j] (the caller adds the four lanes;
 * apart, their counts do not wait on one another). `tally` is zeroed by the caller. Returns how
 * many distinct lows there are, or -1 as soon as there are more than `maxLows` (the caller then
 * lists the members instead).
 */
export function deltaBucketTally(x: usize, base: usize, n: i32, bucket: u32, block: i32, lows: usize, tally: usize, maxLows: i32, bf16: bool): i32 {
  const inBucket = i32x4.splat(bucket);
  const lowBits = i32x4.splat(0xffff);
  const laneStride = <usize>maxLows << 1;
  let distinct = 0;
  let row = tally;
  let blockEnd = block;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    if (i >= blockEnd) {
      row += laneStride << 2;
      blockEnd += block;
    }
    const keys = deltaKeysAt(x, base, i, bf16);
    const inside = i32x4.eq(i32x4.shr_u(keys, 16), inBucket);
    if (!v128.any_true(inside)) continue;
    // Lane by lane without a branch on membership (it comes at random): a non-member counts 0,
    // at value 0 so that its lookup stays in the cache.
    const low = v128.and(v128.and(keys, lowBits), inside);
    const lanes = i32x4.bitmask(inside);
    distinct = tallyLane(i32x4.extract_lane(low, 0), lanes & 1, row, lows, distinct, maxLows);
    distinct = tallyLane(i32x4.extract_lane(low, 1), (lanes >>> 1) & 1, row + laneStride, lows, distinct, maxLows);
    distinct = tallyLane(i32x4.extract_lane(low, 2), (lanes >>> 2) & 1, row + 2 * laneStride, lows, distinct, maxLows);
    distinct = tallyLane(i32x4.extract_lane(low, 3), (lanes >>> 3) & 1, row + 3 * laneStride, lows, distinct, maxLows);
    if (distinct < 0) break;
  }
  for (; i < n && distinct >= 0; i++) {
    if (i >= blockEnd) {
      row += laneStride << 2;
      blockEnd += block;
    }
    const key = deltaKeyAt(x, base, i, bf16);
    const member = key >>> 16 == bucket ? 1 : 0;
    distinct = tallyLane(member ? <i32>(key & 0xffff) : 0, member, row, lows, distinct, maxLows);
  }
  // Leave the index all 0 for the next call.
  const seen = distinct < 0 ? maxLows : distinct;
  for (let j = 0; j < seen; j++) store<u32>(VALUE_INDEX + (<usize>load<u16>(lows + (<usize>j << 1)) << 2), 0);
  return distinct;
}

/** Counts one lane (`member` 0 or 1) of value `low` in its tally row; the distinct count, or -1 once over maxLows. */
@inline function tallyLane(low: i32, member: i32, row: usize, lows: usize, distinct: i32, maxLows: i32): i32 {
  if (distinct < 0) return distinct;
  const at = VALUE_INDEX + (<usize>low << 2);
  let slot = load<i32>(at);
  if (member && slot == 0) {
    // A new value: rare, so the branch is well predicted.
    if (distinct == maxLows) return -1;
    store<u16>(lows + (<usize>distinct << 1), <u16>low);
    slot = ++distinct;
    store<i32>(at, slot);
  }
  const cell = row + (<usize>(member ? slot - 1 : 0) << 1);
  store<u16>(cell, load<u16>(cell) + <u16>member);
  return distinct;
}
