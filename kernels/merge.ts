// The element loops of the merge methods (src/core/merge/), four elements per step, each the port
// of a JavaScript loop that stays beside its caller as the reference. Every value is float32 and
// every operation a single float32 operation in the reference's order, so results are bit for bit
// those of the JavaScript loops (IEEE float32 arithmetic is exactly rounded in both; only the
// payload bits of NaNs are unspecified). Tables of operand pointers and weights are passed in ARGS.
import { ARGS } from './memory';

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
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    // Most groups of four hold no key equal to the threshold.
    if (!v128.any_true(i32x4.eq(v128.load(keys + (<usize>i << 2)), target))) continue;
    for (let j = i; j < i + 4; j++) countOne(keys, j, threshold, block, counts);
  }
  for (; i < n; i++) countOne(keys, i, threshold, block, counts);
}

@inline function countOne(keys: usize, i: i32, threshold: u32, block: i32, counts: usize): void {
  if (load<u32>(keys + (<usize>i << 2)) != threshold) return;
  const slot = counts + (<usize>(i / block) << 2);
  store<u32>(slot, load<u32>(slot) + 1);
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
    const equal = i32x4.eq(key, target);
    if (v128.any_true(equal)) {
      // Threshold ties are taken in index order while the cut still needs them.
      for (let lane = 0; lane < 4; lane++) {
        if ((load<u32>(at + (<usize>lane << 2)) & 0x7fffffff) != threshold) continue;
        const taken = seen < need;
        seen += 1;
        if (taken) keep = setLane(keep, lane);
      }
    }
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
