// The merge element loops on the WebAssembly kernels (kernels/merge.ts). A merge keeps a chunk's
// operands and temporaries in the module's memory (src/core/merge/tasks.ts places them there);
// each wrapper runs its kernel when every array it is given lives there and returns false
// otherwise, so the caller runs its JavaScript loop, the reference, instead. Results are bit for
// bit those of the JavaScript loops (test/unit/merge-kernels.test.ts).
import type { Kernels, KernelRegion } from './index';

/** The byte offset of `array` in the module's memory, or -1 when it lives elsewhere. */
function offsetIn(kernels: Kernels, array: ArrayBufferView): number {
  return array.buffer === kernels.exports.memory.buffer ? array.byteOffset : -1;
}

function allResident(kernels: Kernels, arrays: readonly ArrayBufferView[]): boolean {
  return arrays.every((a) => offsetIn(kernels, a) >= 0);
}

/** Words in the module's ARGS table (kernels/memory.ts): pointers and weights of up to 512 operands. */
const ARGS_WORDS = 1024;

/** Writes operand pointers then float32 weights into the ARGS table; false when they do not fit. */
function writeTable(kernels: Kernels, arrays: readonly ArrayBufferView[], weights: readonly number[]): boolean {
  if (2 * arrays.length > ARGS_WORDS) return false;
  const at = kernels.exports.args();
  const words = new Uint32Array(kernels.exports.memory.buffer, at, 2 * arrays.length);
  const floats = new Float32Array(kernels.exports.memory.buffer, at, 2 * arrays.length);
  arrays.forEach((a, i) => {
    words[i] = a.byteOffset;
    floats[arrays.length + i] = weights[i];
  });
  return true;
}

/**
 * A task's work memory in a region of the module's memory: float32 temporaries of one chunk,
 * bump-allocated from the bottom and all released by reset() before the next chunk, and u32
 * counters that last the whole task (partial results the kernels add every chunk into), from the
 * top. undefined when the region is full: the caller then takes JavaScript memory and loops.
 */
export class KernelWork {
  private used = 0;
  private top: number;
  private readonly counterArrays = new Map<string, Uint32Array | undefined>();

  constructor(
    readonly kernels: Kernels,
    private readonly region: KernelRegion,
  ) {
    this.top = region.byteLength;
  }

  floats(count: number): Float32Array | undefined {
    const bytes = Math.ceil((count * 4) / 64) * 64;
    if (this.used + bytes > this.top) return undefined;
    const view = new Float32Array(this.kernels.exports.memory.buffer, this.region.offset + this.used, count);
    this.used += bytes;
    return view;
  }

  /**
   * The task's u32 counters under `id`, zeroed when first asked for: the same array for every
   * chunk, or undefined for every chunk when there was no room the first time (so a caller either
   * always adds into them or never does).
   */
  counters(id: string, size: number): Uint32Array | undefined {
    if (this.counterArrays.has(id)) {
      const array = this.counterArrays.get(id);
      return array && array.length === size ? array : undefined;
    }
    const bytes = Math.ceil((size * 4) / 64) * 64;
    const array = this.top - bytes < this.used ? undefined : new Uint32Array(this.kernels.exports.memory.buffer, this.region.offset + this.top - bytes, size).fill(0);
    if (array) this.top -= bytes;
    this.counterArrays.set(id, array);
    return array;
  }

  reset(): void {
    this.used = 0;
  }
}

/**
 * `value` with every typed array in the kernels' memory replaced by a copy (arrays, objects and
 * arrays of them, three levels deep): what a task returns must not point into that memory.
 */
export function copiedOut<T>(kernels: Kernels, value: T, depth = 0): T {
  if (!value || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) return (offsetIn(kernels, value) >= 0 ? (value as unknown as Uint8Array).slice() : value) as T;
  if (depth >= 3) return value;
  if (Array.isArray(value)) return value.map((v) => copiedOut(kernels, v, depth + 1)) as T;
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copiedOut(kernels, v, depth + 1)])) as T;
}

/** out = a - b. */
export function subtractResident(kernels: Kernels, a: Float32Array, b: Float32Array, out: Float32Array): boolean {
  if (!allResident(kernels, [a, b, out])) return false;
  kernels.exports.subtract(a.byteOffset, b.byteOffset, out.byteOffset, out.length);
  return true;
}

/** Clears the sign bits of `values` in place. */
export function clearSignsResident(kernels: Kernels, values: Float32Array | Uint32Array): boolean {
  if (offsetIn(kernels, values) < 0) return false;
  kernels.exports.clearSigns(values.byteOffset, values.length);
  return true;
}

/** values *= r in place. */
export function scaleResident(kernels: Kernels, values: Float32Array, r: number): boolean {
  if (offsetIn(kernels, values) < 0) return false;
  kernels.exports.scaleInPlace(values.byteOffset, values.length, r);
  return true;
}

/** Zeroes values outside a rank cut in place; returns the threshold ties seen (eqBefore included), or undefined when not resident. */
export function keepInCutResident(kernels: Kernels, values: Float32Array, threshold: number, need: number, eqBefore: number, descending: boolean): number | undefined {
  if (offsetIn(kernels, values) < 0) return undefined;
  return kernels.exports.keepInCut(values.byteOffset, values.length, threshold, need, eqBefore, descending ? 1 : 0);
}

/** linear: out = sum_i w_i x_i (over divisor when normalizing). */
export function weightedSumResident(kernels: Kernels, models: readonly Float32Array[], weights: readonly number[], normalize: boolean, divisor: number, out: Float32Array): boolean {
  if (!allResident(kernels, [...models, out]) || !writeTable(kernels, models, weights)) return false;
  kernels.exports.weightedSum(models.length, out.length, normalize ? 1 : 0, divisor, out.byteOffset);
  return true;
}

/** weightedSumResident over models still stored as bf16 bits (decoded in the kernel's registers). */
export function weightedSumBf16Resident(kernels: Kernels, models: readonly Uint16Array[], weights: readonly number[], normalize: boolean, divisor: number, out: Float32Array): boolean {
  if (models.some((m) => m.length < out.length) || !allResident(kernels, [...models, out]) || !writeTable(kernels, models, weights)) return false;
  kernels.exports.weightedSumBf16(models.length, out.length, normalize ? 1 : 0, divisor, out.byteOffset);
  return true;
}

/** The task-vector combination (see kernels/merge.ts taskCombine): out = base + mixed. */
export function taskCombineResident(
  kernels: Kernels, deltas: readonly Float32Array[], weights: readonly number[], base: Float32Array, consensus: boolean, normalize: boolean, divisor: number, out: Float32Array,
): boolean {
  if (!allResident(kernels, [...deltas, base, out]) || !writeTable(kernels, deltas, weights)) return false;
  kernels.exports.taskCombine(deltas.length, base.byteOffset, out.length, consensus ? 1 : 0, normalize ? 1 : 0, divisor, out.byteOffset);
  return true;
}

/**
 * The non-empty bins of `hist` and their counts, ascending, copied out of the kernels' memory
 * (made in `work`'s temporaries); undefined when `hist` or the temporaries are not there.
 */
export function nonEmptyBinsResident(work: KernelWork, hist: Uint32Array): { bins: Uint32Array; counts: Uint32Array } | undefined {
  const kernels = work.kernels;
  if (hist.length % 4 !== 0 || !allResident(kernels, [hist])) return undefined;
  const bins = work.floats(hist.length + 3);
  const counts = work.floats(hist.length + 3);
  if (!bins || !counts) return undefined;
  const m = kernels.exports.nonEmptyBins(hist.byteOffset, hist.length, bins.byteOffset, counts.byteOffset);
  return { bins: new Uint32Array(bins.buffer, bins.byteOffset, m).slice(), counts: new Uint32Array(counts.buffer, counts.byteOffset, m).slice() };
}

/** Counts of keys >>> 16 (hi) or, among keys in `bucket`, of keys & 0xffff (lo), added into u32 `hist` (65536 bins). */
export function histogramResident(kernels: Kernels, keys: Uint32Array, hist: Uint32Array, bucket?: number): boolean {
  if (!allResident(kernels, [keys, hist])) return false;
  if (bucket === undefined) kernels.exports.histogramHigh(keys.byteOffset, keys.length, hist.byteOffset);
  else kernels.exports.histogramLow(keys.byteOffset, keys.length, bucket, hist.byteOffset);
  return true;
}

/** counts[i / block] += 1 for every key equal to threshold. */
export function countEqualResident(kernels: Kernels, keys: Uint32Array, threshold: number, block: number, counts: Uint32Array): boolean {
  if (!allResident(kernels, [keys, counts])) return false;
  kernels.exports.countEqual(keys.byteOffset, keys.length, threshold, block, counts.byteOffset);
  return true;
}

/** float32 values as BF16 or F16 bits (torch's rounding) in `into` (count / 2 floats or more of kernel memory); the bytes, or undefined. */
export function encodeResident(kernels: Kernels, dtype: 'BF16' | 'F16', values: Float32Array, into: Float32Array): Uint8Array | undefined {
  if (!allResident(kernels, [values, into]) || into.length * 2 < values.length) return undefined;
  if (dtype === 'BF16') kernels.exports.encodeBf16(values.byteOffset, into.byteOffset, values.length);
  else kernels.exports.encodeF16(values.byteOffset, into.byteOffset, values.length);
  return new Uint8Array(into.buffer, into.byteOffset, values.length * 2);
}

/**
 * Operands of the delta-key kernels: both float32, or both bf16 bits (Uint16Array) still as
 * stored; 1 for the kernels' `bf16` flag, 0 for float32, undefined for a mix or short base.
 */
function deltaForm(x: Float32Array | Uint16Array, base: Float32Array | Uint16Array): number | undefined {
  if (base.length < x.length) return undefined;
  if (x instanceof Float32Array && base instanceof Float32Array) return 0;
  if (x instanceof Uint16Array && base instanceof Uint16Array) return 1;
  return undefined;
}

/** histogramResident over the keys |x - base| (float32 bits), computed on the fly; the bucket pass (lo) takes float32 operands only. */
export function deltaHistogramResident(kernels: Kernels, x: Float32Array | Uint16Array, base: Float32Array | Uint16Array, hist: Uint32Array, bucket?: number): boolean {
  const form = deltaForm(x, base);
  if (form === undefined || !allResident(kernels, [x, base, hist])) return false;
  if (bucket === undefined) kernels.exports.deltaHistogramHigh(x.byteOffset, base.byteOffset, x.length, hist.byteOffset, form);
  else if (form === 0) kernels.exports.deltaHistogramLow(x.byteOffset, base.byteOffset, x.length, bucket, hist.byteOffset);
  else return false;
  return true;
}

/** countEqualResident over the keys |x - base|, computed on the fly. */
export function deltaCountEqualResident(kernels: Kernels, x: Float32Array, base: Float32Array, threshold: number, block: number, counts: Uint32Array): boolean {
  if (!allResident(kernels, [x, base, counts])) return false;
  kernels.exports.deltaCountEqual(x.byteOffset, base.byteOffset, x.length, threshold, block, counts.byteOffset);
  return true;
}

/**
 * Slots at the end of a member list that deltaBucketMembersResident's kernel may write past its
 * last member: a list with room for n members is n + MEMBER_SLACK long.
 */
export const MEMBER_SLACK = 4;

/**
 * deltaHistogramResident over one bucket that also lists its members (see kernels/merge.ts
 * deltaHistogramLowMembers) into u16 `values` and u32 `blockCounts` (added to): the member count,
 * -1 when `values` has no room for them all (room: its length less MEMBER_SLACK), or undefined when an array is outside the kernels' memory.
 */
export function deltaBucketMembersResident(
  kernels: Kernels, x: Float32Array | Uint16Array, base: Float32Array | Uint16Array, bucket: number, hist: Uint32Array, block: number, blockCounts: Uint32Array, values: Uint16Array,
): number | undefined {
  const form = deltaForm(x, base);
  if (form === undefined || !allResident(kernels, [x, base, hist, blockCounts, values]) || values.length < MEMBER_SLACK) return undefined;
  return kernels.exports.deltaHistogramLowMembers(x.byteOffset, base.byteOffset, x.length, bucket, hist.byteOffset, block, blockCounts.byteOffset, values.byteOffset, values.length - MEMBER_SLACK, form);
}

/**
 * The members of one bucket counted per block by low key bits (see kernels/merge.ts
 * deltaBucketTally) into u16 `lows` and the zeroed u16 `tally` (per block, four rows of
 * lows.length, one per lane, to be added up): the number of distinct lows, -1 when there are more
 * than lows.length, or undefined when an array is outside the kernels' memory (or the operands
 * are a mix of bits and values).
 */
export function deltaBucketTallyResident(
  kernels: Kernels, x: Float32Array | Uint16Array, base: Float32Array | Uint16Array, bucket: number, block: number, lows: Uint16Array, tally: Uint16Array,
): number | undefined {
  const form = deltaForm(x, base);
  if (form === undefined || block % 4 !== 0 || tally.length < Math.ceil(x.length / block) * 4 * lows.length || !allResident(kernels, [x, base, lows, tally])) return undefined;
  return kernels.exports.deltaBucketTally(x.byteOffset, base.byteOffset, x.length, bucket, block, lows.byteOffset, tally.byteOffset, lows.length, form);
}
