// Exact sums for whole-tensor reductions (norms, dot products). A float64 running sum depends on
// the order of additions, so a merge whose coefficients come from such sums would change with the
// chunk size or the number of workers. Here elements are summed in float64 inside fixed blocks
// aligned to absolute element positions (the same blocks however the tensor is split), and the
// block sums are added exactly as scaled integers, so the result is the same for any split.

/** Elements per block: every chunk boundary is a multiple of this (see engine.ts). */
export const SUM_BLOCK = 1024;

/** Every finite float64 is an integer multiple of 2^-1074; 2^-1100 leaves room for exponent 0. */
const SCALE_BITS = 1100;

const view = new DataView(new ArrayBuffer(8));

/** The float64 `x` as an exact integer multiple of 2^-SCALE_BITS. Infinities and NaN are refused. */
export function toScaled(x: number): bigint {
  if (x === 0) return 0n;
  if (!Number.isFinite(x)) throw new RangeError(`Cannot sum a non-finite value (${x}) exactly.`);
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const exponent = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let shift: number;
  if (exponent === 0) {
    shift = SCALE_BITS - 1074; // subnormal: mantissa x 2^-1074
  } else {
    mantissa |= 1n << 52n;
    shift = exponent - 1075 + SCALE_BITS;
  }
  const scaled = mantissa << BigInt(shift);
  return x < 0 ? -scaled : scaled;
}

/** The exact integer sum (in units of 2^-SCALE_BITS) rounded once to the nearest float64. */
export function fromScaled(sum: bigint): number {
  if (sum === 0n) return 0;
  const negative = sum < 0n;
  let magnitude = negative ? -sum : sum;
  const bits = magnitude.toString(2).length;
  let exponent = -SCALE_BITS;
  if (bits > 62) {
    const drop = bits - 62;
    const kept = magnitude >> BigInt(drop);
    // A sticky bit below the 53 kept bits makes Number() round as the exact value would.
    const sticky = (magnitude & ((1n << BigInt(drop)) - 1n)) !== 0n ? 1n : 0n;
    magnitude = kept | sticky;
    exponent += drop;
  }
  let value = Number(magnitude);
  // Scale by 2^exponent in steps that stay inside the float64 range.
  while (exponent < -1000) {
    value *= 2 ** -1000;
    exponent += 1000;
  }
  while (exponent > 1000) {
    value *= 2 ** 1000;
    exponent -= 1000;
  }
  value *= 2 ** exponent;
  return negative ? -value : value;
}

/** Several exact sums accumulated together (e.g. the entries of a Gram matrix). */
export class ExactSums {
  readonly totals: bigint[];

  constructor(readonly size: number, totals?: bigint[]) {
    this.totals = totals ?? new Array<bigint>(size).fill(0n);
  }

  /** Adds one float64 block sum to quantity `i`. */
  add(i: number, blockSum: number): void {
    if (blockSum !== 0) this.totals[i] += toScaled(blockSum);
  }

  static merge(a: bigint[], b: bigint[]): bigint[] {
    return a.map((x, i) => x + b[i]);
  }

  static values(totals: bigint[]): number[] {
    return totals.map(fromScaled);
  }
}
