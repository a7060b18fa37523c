// Element decoding and encoding between float32 and the 16-bit float formats, in SIMD. The
// decoders give what src/core/safetensors/dtypes.ts's lookup tables give, bit for bit (every
// F16 NaN becomes the one quiet NaN 0x7fc00000, as a NaN stored into a Float32Array does); the
// encoders round as f32BitsToBf16 / f32BitsToF16 do (torch's CPU casts).

/** Element kinds of an operand in memory, shared with src/core/kernels/kernels.ts. */
export const KIND_F32: i32 = 0;
export const KIND_BF16: i32 = 1;
export const KIND_F16: i32 = 2;

const CANONICAL_NAN: u32 = 0x7fc00000;

/** bf16 bits -> f32: the bits are the top half of the f32. */
export function decodeBf16(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
  }
  for (; i < n; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

// f16 -> f32 without a table: the 15 bits below the sign, shifted into an f32's exponent and
// mantissa, read as an f32 and scaled by 2^112 (the difference of the two exponent biases), give
// every finite f16 exactly, subnormals included. Infinities and NaNs are patched in after.
const F16_SCALE: f32 = reinterpret<f32>(<u32>0x77800000); // 2^112

@inline function f16x4(h: v128): v128 {
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const rest = v128.and(h, i32x4.splat(0x7fff));
  const finite = v128.or(sign, f32x4.mul(i32x4.shl(rest, 13), f32x4.splat(F16_SCALE)));
  const infinity = v128.or(sign, i32x4.splat(0x7f800000));
  const special = v128.bitselect(i32x4.splat(CANONICAL_NAN), infinity, i32x4.gt_s(rest, i32x4.splat(0x7c00)));
  return v128.bitselect(special, finite, i32x4.ge_s(rest, i32x4.splat(0x7c00)));
}

@inline function f16Scalar(h: u32): u32 {
  const sign = (h & 0x8000) << 16;
  const rest = h & 0x7fff;
  if (rest > 0x7c00) return CANONICAL_NAN;
  if (rest == 0x7c00) return sign | 0x7f800000;
  return sign | reinterpret<u32>(reinterpret<f32>(rest << 13) * F16_SCALE);
}

export function decodeF16(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), f16x4(i32x4.extend_low_i16x8_u(h)));
    v128.store(dst + (<usize>i << 2), f16x4(i32x4.extend_high_i16x8_u(h)), 16);
  }
  for (; i < n; i++) store<u32>(dst + (<usize>i << 2), f16Scalar(<u32>load<u16>(src + (<usize>i << 1))));
}

/** Decodes n elements of `kind` at src into f32 at dst (a copy for f32). */
export function decode(kind: i32, src: usize, dst: usize, n: i32): void {
  if (kind == KIND_BF16) decodeBf16(src, dst, n);
  else if (kind == KIND_F16) decodeF16(src, dst, n);
  else memory.copy(dst, src, <usize>n << 2);
}

/** f32 bits -> bf16 bits, round to nearest even; every NaN becomes 0xffff. */
@inline function bf16x4(bits: v128): v128 {
  const isNan = i32x4.gt_u(v128.and(bits, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  const rounding = i32x4.add(i32x4.splat(0x7fff), v128.and(i32x4.shr_u(bits, 16), i32x4.splat(1)));
  const rounded = i32x4.shr_u(i32x4.add(bits, rounding), 16);
  return v128.or(rounded, v128.and(isNan, i32x4.splat(0xffff)));
}

export function encodeBf16(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const lo = bf16x4(v128.load(src + (<usize>i << 2)));
    const hi = bf16x4(v128.load(src + (<usize>i << 2), 16));
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(lo, hi));
  }
  for (; i < n; i++) {
    const bits = load<u32>(src + (<usize>i << 2));
    const out: u32 = (bits & 0x7fffffff) > 0x7f800000 ? 0xffff : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
    store<u16>(dst + (<usize>i << 1), <u16>out);
  }
}

/**
 * f32 bits -> f16 bits: round to nearest even, overflow to inf, gradual underflow; a NaN keeps
 * its sign and the top of its payload with the quiet bit set (what F16C writes).
 */
@inline function f16FromF32x4(bits: v128): v128 {
  const sign = v128.and(i32x4.shr_u(bits, 16), i32x4.splat(0x8000));
  const exponent = v128.and(i32x4.shr_u(bits, 23), i32x4.splat(0xff));
  const mantissa = v128.and(bits, i32x4.splat(0x7fffff));
  const e = i32x4.sub(exponent, i32x4.splat(127 - 15));
  // Normal results (1 <= e <= 30): keep 10 mantissa bits, round the 13 dropped ones to even;
  // a carry into the exponent is correct, and from 0x7bff it gives inf.
  const truncated = v128.or(i32x4.shl(e, 10), i32x4.shr_u(mantissa, 13));
  const remainder = v128.and(mantissa, i32x4.splat(0x1fff));
  const odd = v128.and(truncated, i32x4.splat(1));
  const up = v128.or(i32x4.gt_s(remainder, i32x4.splat(0x1000)), v128.and(i32x4.eq(remainder, i32x4.splat(0x1000)), i32x4.eq(odd, i32x4.splat(1))));
  const normal = i32x4.sub(truncated, up); // up is -1 where rounding up
  // Subnormal results (-10 <= e <= 0): shift the whole significand right by 14 - e (14..24).
  const significand = v128.or(mantissa, i32x4.splat(0x800000));
  const shift = i32x4.sub(i32x4.splat(14), e);
  // Rare in weights: the lane-by-lane path runs only when some lane needs it.
  const subnormal = v128.and(i32x4.le_s(e, i32x4.splat(0)), i32x4.ge_s(e, i32x4.splat(-10)));
  const sub = v128.any_true(subnormal) ? subnormalx4(significand, shift) : i32x4.splat(0);
  const finite = v128.bitselect(normal, sub, i32x4.gt_s(e, i32x4.splat(0)));
  const tiny = i32x4.lt_s(e, i32x4.splat(-10));
  const overflow = i32x4.ge_s(e, i32x4.splat(0x1f));
  let out = v128.andnot(finite, tiny);
  out = v128.bitselect(i32x4.splat(0x7c00), out, overflow);
  const special = v128.bitselect(
    v128.or(i32x4.splat(0x7e00), i32x4.shr_u(mantissa, 13)),
    i32x4.splat(0x7c00),
    v128.not(i32x4.eq(mantissa, i32x4.splat(0))),
  );
  out = v128.bitselect(special, out, i32x4.eq(exponent, i32x4.splat(0xff)));
  return v128.or(sign, out);
}

/** Per lane: significand >> shift rounded to nearest even, for shifts 14..24 (other lanes are discarded). */
@inline function subnormalx4(significand: v128, shift: v128): v128 {
  // No per-lane variable shift in wasm SIMD: do the lanes one by one.
  let out = i32x4.splat(0);
  out = i32x4.replace_lane(out, 0, subnormalScalar(i32x4.extract_lane(significand, 0), i32x4.extract_lane(shift, 0)));
  out = i32x4.replace_lane(out, 1, subnormalScalar(i32x4.extract_lane(significand, 1), i32x4.extract_lane(shift, 1)));
  out = i32x4.replace_lane(out, 2, subnormalScalar(i32x4.extract_lane(significand, 2), i32x4.extract_lane(shift, 2)));
  out = i32x4.replace_lane(out, 3, subnormalScalar(i32x4.extract_lane(significand, 3), i32x4.extract_lane(shift, 3)));
  return out;
}

@inline function subnormalScalar(significand: i32, shift: i32): i32 {
  if (shift < 14 || shift > 24) return 0;
  const truncated = <u32>significand >>> shift;
  const remainder = <u32>significand & ((1 << shift) - 1);
  const half: u32 = 1 << (shift - 1);
  const up = remainder > half || (remainder == half && (truncated & 1) == 1);
  return <i32>(truncated + (up ? 1 : 0));
}

export function encodeF16(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const lo = f16FromF32x4(v128.load(src + (<usize>i << 2)));
    const hi = f16FromF32x4(v128.load(src + (<usize>i << 2), 16));
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(lo, hi));
  }
  for (; i < n; i++) {
    const v = i32x4.extract_lane(f16FromF32x4(i32x4.splat(load<i32>(src + (<usize>i << 2)))), 0);
    store<u16>(dst + (<usize>i << 1), <u16>v);
  }
}
