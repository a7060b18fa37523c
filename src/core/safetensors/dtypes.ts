// Element types: bit sizes as the reference defines them, decoding raw little-endian bytes to
// float32/float64, and float32 -> F32/F16/BF16 encoding bit-identical to torch's CPU casts.

import { SafetensorsError } from './errors';
import type { DType } from './types';

const BITS: Record<DType, number> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64,
};

/** Bits per element (4 for F4, 6 for F6_*). */
export function dtypeBits(dtype: DType): number {
  return BITS[dtype];
}

/** Bytes taken by `numel` elements; sub-byte types pack, so numel x bits must be a multiple of 8. */
export function byteLengthOf(dtype: DType, numel: number): number {
  return (numel * BITS[dtype]) / 8;
}

/** Dtypes whose values decode to float64 (wider than float32's 24-bit mantissa). */
const DECODES_TO_F64 = new Set<DType>(['F64', 'I64', 'U64', 'I32', 'U32']);

export function decodesToFloat64(dtype: DType): boolean {
  return DECODES_TO_F64.has(dtype);
}

/** Dtypes this module can decode to numbers. */
export function canDecode(dtype: DType): boolean {
  return dtype !== 'C64' && dtype !== 'F6_E2M3' && dtype !== 'F6_E3M2';
}

export function unsupportedDecode(dtype: DType): SafetensorsError {
  const why =
    dtype === 'C64'
      ? 'decoding C64 (complex) tensors to real numbers is not supported: inspect them by header only'
      : `decoding ${dtype} is not supported yet: its 6-bit packing is not standardised by safetensors, so values are not read`;
  return new SafetensorsError(why, { rule: 'unsupported-dtype' });
}

/** Typed arrays use the host's byte order; safetensors is little-endian. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Lookup tables, built once on first use.

let f16Table: Float32Array | undefined;
let bf16Table: Float32Array | undefined;

/** bfloat16 bits -> float32 value: bf16 is the top half of an f32, so each pattern shifts into place. */
export function bf16ToF32Table(): Float32Array {
  if (!bf16Table) {
    bf16Table = new Float32Array(65536);
    const words = new Uint32Array(bf16Table.buffer);
    for (let bits = 0; bits < 65536; bits++) words[bits] = bits << 16;
  }
  return bf16Table;
}

/** float16 bits -> float32 value, for all 65536 patterns (exact: every f16 is an f32). */
export function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = minifloat(h, 5, 10, 15, 'ieee');
  f16Table = table;
  return table;
}

/**
 * Value of a small float with `e` exponent and `m` mantissa bits below the sign bit.
 * 'ieee': all-ones exponent is inf/NaN. 'fn': no infinities, only all-ones is NaN.
 * 'fnuz': no infinities, no negative zero, the negative-zero pattern is NaN. 'finite': no specials.
 */
function minifloat(bits: number, e: number, m: number, bias: number, kind: 'ieee' | 'fn' | 'fnuz' | 'finite'): number {
  const sign = (bits >> (e + m)) & 1;
  const exponent = (bits >> m) & ((1 << e) - 1);
  const mantissa = bits & ((1 << m) - 1);
  const maxExponent = (1 << e) - 1;
  if (kind === 'ieee' && exponent === maxExponent) return mantissa === 0 ? (sign ? -Infinity : Infinity) : NaN;
  if (kind === 'fn' && exponent === maxExponent && mantissa === (1 << m) - 1) return NaN;
  if (kind === 'fnuz' && sign === 1 && exponent === 0 && mantissa === 0) return NaN;
  const magnitude = exponent === 0 ? mantissa * 2 ** (1 - bias - m) : (1 + mantissa / (1 << m)) * 2 ** (exponent - bias);
  return sign ? -magnitude : magnitude;
}

const byteTables = new Map<DType, Float32Array>();

/** 256-entry (16 for F4) tables for the 8-bit and 4-bit float formats. */
function byteTable(dtype: DType): Float32Array {
  let table = byteTables.get(dtype);
  if (table) return table;
  const size = dtype === 'F4' ? 16 : 256;
  table = new Float32Array(size);
  for (let b = 0; b < size; b++) {
    switch (dtype) {
      case 'F8_E4M3': table[b] = minifloat(b, 4, 3, 7, 'fn'); break;
      case 'F8_E5M2': table[b] = minifloat(b, 5, 2, 15, 'ieee'); break;
      case 'F8_E4M3FNUZ': table[b] = minifloat(b, 4, 3, 8, 'fnuz'); break;
      case 'F8_E5M2FNUZ': table[b] = minifloat(b, 5, 2, 16, 'fnuz'); break;
      // E8M0: a bare exponent (scale factor), 0xff is NaN.
      case 'F8_E8M0': table[b] = b === 0xff ? NaN : 2 ** (b - 127); break;
      // E2M1 (OCP MX FP4): no inf/NaN.
      case 'F4': table[b] = minifloat(b, 2, 1, 1, 'finite'); break;
      default: throw new Error(`no byte table for ${dtype}`);
    }
  }
  byteTables.set(dtype, table);
  return table;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

/** A copy of `bytes` at offset 0 of a fresh buffer when it is not aligned for `size`-byte reads. */
function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

function checkLength(dtype: DType, bytes: Uint8Array): void {
  const size = BITS[dtype] / 8;
  if (size >= 1 && bytes.byteLength % size !== 0) {
    throw new SafetensorsError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each).`, { rule: 'out-of-range' });
  }
}

/** Number of elements `bytes` holds (two per byte for F4). */
function elementsIn(dtype: DType, bytes: Uint8Array): number {
  return dtype === 'F4' ? bytes.length * 2 : bytes.byteLength / (BITS[dtype] / 8);
}

/**
 * Decodes little-endian `bytes` of `dtype` into numbers: float64 for F64/I64/U64/I32/U32 (exact
 * up to 2^53), float32 otherwise. BOOL gives 0/1. F4 gives two elements per byte, low nibble first
 * (torch's float4_e2m1fn_x2 layout). The result may share memory with `bytes` (F32/F64).
 */
export function decodeToFloat(dtype: DType, bytes: Uint8Array): Float32Array | Float64Array {
  if (!canDecode(dtype)) throw unsupportedDecode(dtype);
  checkLength(dtype, bytes);
  if (LITTLE_ENDIAN && dtype === 'F32') {
    const a = aligned(bytes, 4);
    return new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4);
  }
  if (LITTLE_ENDIAN && dtype === 'F64') {
    const a = aligned(bytes, 8);
    return new Float64Array(a.buffer, a.byteOffset, a.byteLength / 8);
  }
  const n = elementsIn(dtype, bytes);
  return decodeInto(dtype, bytes, decodesToFloat64(dtype) ? new Float64Array(n) : new Float32Array(n));
}

/**
 * Like decodeToFloat, but writes into `out` (Float64Array for the wide dtypes, Float32Array
 * otherwise, at least as long as the elements) and returns the filled part of it: lets a reader
 * reuse one buffer for every chunk of a tensor.
 */
export function decodeInto(dtype: DType, bytes: Uint8Array, out: Float32Array | Float64Array): Float32Array | Float64Array {
  if (!canDecode(dtype)) throw unsupportedDecode(dtype);
  checkLength(dtype, bytes);
  const n = elementsIn(dtype, bytes);
  if (out.length < n || (out instanceof Float64Array) !== decodesToFloat64(dtype)) {
    throw new RangeError(`decodeInto: ${dtype} needs a ${decodesToFloat64(dtype) ? 'Float64Array' : 'Float32Array'} of at least ${n} elements.`);
  }
  const result = out.subarray(0, n);
  if (!LITTLE_ENDIAN) {
    result.set(decodeWithDataView(dtype, bytes));
    return result;
  }
  switch (dtype) {
    case 'F32': {
      const a = aligned(bytes, 4);
      result.set(new Float32Array(a.buffer, a.byteOffset, n));
      break;
    }
    case 'F64': {
      const a = aligned(bytes, 8);
      result.set(new Float64Array(a.buffer, a.byteOffset, n));
      break;
    }
    case 'BF16': {
      const a = aligned(bytes, 2);
      const halves = new Uint16Array(a.buffer, a.byteOffset, n);
      // bf16 is the top half of an f32: shift the bits into place.
      const words = new Uint32Array(result.buffer, result.byteOffset, n);
      for (let i = 0; i < n; i++) words[i] = halves[i] << 16;
      break;
    }
    case 'F16': {
      const a = aligned(bytes, 2);
      const halves = new Uint16Array(a.buffer, a.byteOffset, n);
      const table = f16ToF32Table();
      for (let i = 0; i < n; i++) result[i] = table[halves[i]];
      break;
    }
    case 'I8':
      result.set(new Int8Array(bytes.buffer, bytes.byteOffset, n));
      break;
    case 'U8':
      result.set(bytes);
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) result[i] = bytes[i] !== 0 ? 1 : 0;
      break;
    case 'I16': {
      const a = aligned(bytes, 2);
      result.set(new Int16Array(a.buffer, a.byteOffset, n));
      break;
    }
    case 'U16': {
      const a = aligned(bytes, 2);
      result.set(new Uint16Array(a.buffer, a.byteOffset, n));
      break;
    }
    case 'I32': {
      const a = aligned(bytes, 4);
      result.set(new Int32Array(a.buffer, a.byteOffset, n));
      break;
    }
    case 'U32': {
      const a = aligned(bytes, 4);
      result.set(new Uint32Array(a.buffer, a.byteOffset, n));
      break;
    }
    case 'I64':
    case 'U64': {
      const a = aligned(bytes, 8);
      const words = new Uint32Array(a.buffer, a.byteOffset, n * 2);
      const signed = dtype === 'I64';
      for (let i = 0; i < n; i++) {
        const lo = words[2 * i];
        const hi = words[2 * i + 1];
        // hi * 2^32 is exact; adding lo rounds once, so the result is correctly rounded.
        result[i] = (signed ? hi | 0 : hi) * 4294967296 + lo;
      }
      break;
    }
    case 'F4': {
      const table = byteTable('F4');
      for (let i = 0; i < bytes.length; i++) {
        result[2 * i] = table[bytes[i] & 0x0f];
        result[2 * i + 1] = table[bytes[i] >> 4];
      }
      break;
    }
    default: {
      // The 8-bit float formats.
      const table = byteTable(dtype);
      for (let i = 0; i < n; i++) result[i] = table[bytes[i]];
    }
  }
  return result;
}

/** Big-endian hosts: read every element through a DataView (little-endian). */
function decodeWithDataView(dtype: DType, bytes: Uint8Array): Float32Array | Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = BITS[dtype] / 8;
  const n = bytes.byteLength / size;
  const out = decodesToFloat64(dtype) ? new Float64Array(n) : new Float32Array(n);
  const f16 = dtype === 'F16' ? f16ToF32Table() : undefined;
  for (let i = 0; i < n; i++) {
    const at = i * size;
    switch (dtype) {
      case 'F32': out[i] = view.getFloat32(at, true); break;
      case 'F64': out[i] = view.getFloat64(at, true); break;
      case 'BF16': out[i] = new Float32Array(new Uint32Array([view.getUint16(at, true) << 16]).buffer)[0]; break;
      case 'F16': out[i] = f16![view.getUint16(at, true)]; break;
      case 'I16': out[i] = view.getInt16(at, true); break;
      case 'U16': out[i] = view.getUint16(at, true); break;
      case 'I32': out[i] = view.getInt32(at, true); break;
      case 'U32': out[i] = view.getUint32(at, true); break;
      case 'I64': out[i] = Number(view.getBigInt64(at, true)); break;
      case 'U64': out[i] = Number(view.getBigUint64(at, true)); break;
      default: return decodeToFloatBytewise(dtype, bytes);
    }
  }
  return out;
}

/** Single-byte and sub-byte formats do not depend on endianness. */
function decodeToFloatBytewise(dtype: DType, bytes: Uint8Array): Float32Array {
  if (dtype === 'I8') return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (dtype === 'U8') return Float32Array.from(bytes);
  if (dtype === 'BOOL') return Float32Array.from(bytes, (b) => (b !== 0 ? 1 : 0));
  const table = byteTable(dtype);
  if (dtype === 'F4') {
    const out = new Float32Array(bytes.length * 2);
    for (let i = 0; i < bytes.length; i++) {
      out[2 * i] = table[bytes[i] & 0x0f];
      out[2 * i + 1] = table[bytes[i] >> 4];
    }
    return out;
  }
  return Float32Array.from(bytes, (b) => table[b]);
}

// ---------------------------------------------------------------------------------------------
// Encoding float32 -> F32 / F16 / BF16, bit-identical to torch on CPU.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * float32 bits -> bfloat16 bits: round to nearest, ties to even (overflow rounds to inf).
 * NaN becomes 0xffff, which is what torch's vectorised CPU cast writes for every NaN
 * (checked against test/fixtures/formats/rounding.safetensors).
 */
export function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0xffff;
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

/**
 * float32 bits -> float16 bits: round to nearest even, overflow to inf, gradual underflow to
 * subnormals. NaN keeps its sign and the top of its payload with the quiet bit set, as the F16C
 * instruction torch uses does.
 */
export function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa !== 0 ? sign | 0x7e00 | (mantissa >>> 13) : sign | 0x7c00;
  // Unbiased exponent rebased for f16.
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) in f16: shift the full significand right, rounding to nearest even.
    if (e < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - e; // 13 to drop f32's extra mantissa bits, plus 1 - e to denormalise
    const truncated = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    const roundUp = remainder > half || (remainder === half && (truncated & 1) === 1);
    return sign | (truncated + (roundUp ? 1 : 0));
  }
  const truncated = (e << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (truncated & 1) === 1);
  // A carry out of the mantissa bumps the exponent, and from 0x7bff rounds to inf: both correct.
  return sign | (truncated + (roundUp ? 1 : 0));
}

/** One float32 value's bits. */
export function f32Bits(value: number): number {
  f32Scratch[0] = value;
  return u32Scratch[0];
}

/**
 * Encodes float32 values as F32, F16 or BF16 little-endian bytes (torch-exact rounding).
 * Other dtypes are refused: converting to integers or 8-bit floats would need a rounding policy.
 */
export function encodeFromFloat32(dtype: DType, values: Float32Array): Uint8Array {
  if (dtype === 'F32') {
    const copy = new Float32Array(values);
    return toLittleEndianBytes(new Uint8Array(copy.buffer), 4);
  }
  if (dtype !== 'F16' && dtype !== 'BF16') {
    throw new SafetensorsError(`Encoding float32 values as ${dtype} is not supported: use F32, F16 or BF16.`, { rule: 'unsupported-dtype' });
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  const convert = dtype === 'BF16' ? f32BitsToBf16 : f32BitsToF16;
  for (let i = 0; i < bits.length; i++) out[i] = convert(bits[i]);
  return toLittleEndianBytes(new Uint8Array(out.buffer), 2);
}

function toLittleEndianBytes(bytes: Uint8Array, size: number): Uint8Array {
  if (LITTLE_ENDIAN) return bytes;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  return bytes;
}
