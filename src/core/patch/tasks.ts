// Patch kernels for the worker pool (registered in src/worker/tasks.ts). Each task covers one
// element range of one tensor and walks it in sub-chunks with the shared read-ahead loop, so a
// worker holds two sub-chunks of every operand whatever the tensor size.
//
// Differences are taken in float32 (as torch subtracts float32 or 16-bit tensors) unless the patch
// is stored as F64 or an input is wider than float32, then in float64. Applying adds in float64 and
// rounds once to the output dtype.
import type { TaskContext } from '../engine/task';
import { bf16ToF32Table, encodeFromFloat32, f16ToF32Table, f32Bits, f32BitsToBf16, f32BitsToF16 } from '../safetensors/dtypes';
import type { DType, TensorRef } from '../safetensors/types';
import { ChunkReader, type FloatArray } from '../tensors/chunkReader';
import { elementRanges, FileHandles, streamUnits } from '../tensors/stream';

/** Elements per sub-chunk inside a task (the read-ahead unit). */
const SUB_CHUNK = 1 << 18;
/** Bins of the magnitude histograms: 16 bits of a float32 magnitude at a time. */
export const HISTOGRAM_BINS = 1 << 16;

/** Float values of `refs` over each sub-chunk of [start, start + count), read one sub-chunk ahead. */
export async function forEachSubChunk(
  refs: TensorRef[], start: number, count: number, ctx: TaskContext, visit: (values: FloatArray[], offset: number, length: number) => void, subChunk = SUB_CHUNK,
): Promise<void> {
  const handles = new FileHandles();
  const slots = [refs.map(() => new ChunkReader()), refs.map(() => new ChunkReader())];
  let done = 0;
  try {
    await streamUnits(
      elementRanges(start, count, subChunk),
      async (range, slot) => Promise.all(refs.map(async (ref, i) => slots[slot][i].readValues(ref, await handles.get(ref.file), range.start, range.count))),
      (values, range) => {
        visit(values, range.start - start, range.count);
        done += range.count;
        ctx.progress(done / count);
      },
      ctx,
    );
  } finally {
    await handles.closeAll();
    for (const readers of slots) for (const r of readers) r.dispose();
  }
}

/** Whether the difference is taken in float64: F64 patches and inputs wider than float32. */
export function wideDifference(patchDtype: DType, model: FloatArray | DType, base: FloatArray | DType): boolean {
  const wide = (x: FloatArray | DType) => (typeof x === 'string' ? x === 'F64' : x instanceof Float64Array);
  return patchDtype === 'F64' || wide(model) || wide(base);
}

export interface PatchScanInput {
  model: TensorRef;
  base: TensorRef;
  start: number;
  count: number;
  /** 'sums' also histograms the high 16 bits of |d| when `histogram`; 'low' histograms the low 16 bits of |d| within `highBin`. */
  pass: 'sums' | 'low';
  histogram?: boolean;
  highBin?: number;
  wide: boolean;
}

export interface PatchScanOutput {
  /** Elements with d != 0. */
  changed: number;
  sumD2: number;
  sumBase2: number;
  histogram?: Uint32Array;
}

export interface PatchWriteInput {
  model: TensorRef;
  base: TensorRef;
  start: number;
  count: number;
  dtype: DType;
  wide: boolean;
  /** Keep d only where the float32 bits of |d| are at least this (0 keeps every element). */
  thresholdBits: number;
}

export interface PatchWriteOutput {
  bytes: Uint8Array;
  /** Non-zero elements stored. */
  kept: number;
  /** Stored elements for which base + d does not give the model's value back exactly (in the model's dtype). */
  inexact: number;
  sumStored2: number;
}

export interface PatchApplyInput {
  model: TensorRef;
  patches: { ref: TensorRef; scale: number }[];
  start: number;
  count: number;
  dtype: DType;
}

export interface PatchApplyOutput {
  bytes: Uint8Array;
  /** Sum of squares of the model's values over the range (for the distance from a patch's base). */
  sumModel2: number;
}

/** Values rounded to `dtype` (F64, F32, F16, BF16) and encoded as little-endian bytes. */
export function encodeValues(dtype: DType, values: Float64Array): Uint8Array {
  if (dtype === 'F64') {
    const copy = new Float64Array(values);
    return new Uint8Array(copy.buffer);
  }
  return encodeFromFloat32(dtype, Float32Array.from(values));
}

/** The value `dtype` holds for `x` (float32 rounding first for 16-bit dtypes, as encoding does). */
function roundedTo(dtype: DType, x: number): number {
  if (dtype === 'F64') return x;
  if (dtype === 'F32') return Math.fround(x);
  if (dtype === 'BF16') return bf16ToF32Table()[f32BitsToBf16(f32Bits(x))];
  if (dtype === 'F16') return f16ToF32Table()[f32BitsToF16(f32Bits(x))];
  return x;
}

export const patchTasks = {
  patchScan: async (input: PatchScanInput, ctx: TaskContext): Promise<PatchScanOutput> => {
    let changed = 0;
    let sumD2 = 0;
    let sumBase2 = 0;
    const histogram = input.pass === 'low' || input.histogram ? new Uint32Array(HISTOGRAM_BINS) : undefined;
    await forEachSubChunk([input.model, input.base], input.start, input.count, ctx, ([x, b], _offset, length) => {
      for (let i = 0; i < length; i++) {
        const d = input.wide ? x[i] - b[i] : Math.fround(x[i] - b[i]);
        sumBase2 += b[i] * b[i];
        if (d === 0 || d !== d) continue;
        changed++;
        sumD2 += d * d;
        if (!histogram) continue;
        const bits = f32Bits(Math.abs(d));
        if (input.pass === 'sums') histogram[bits >>> 16]++;
        else if (bits >>> 16 === input.highBin) histogram[bits & 0xffff]++;
      }
    });
    return { changed, sumD2, sumBase2, ...(histogram ? { histogram } : {}) };
  },

  patchWrite: async (input: PatchWriteInput, ctx: TaskContext): Promise<PatchWriteOutput> => {
    const stored = new Float64Array(input.count);
    let kept = 0;
    let inexact = 0;
    let sumStored2 = 0;
    await forEachSubChunk([input.model, input.base], input.start, input.count, ctx, ([x, b], offset, length) => {
      for (let i = 0; i < length; i++) {
        const raw = input.wide ? x[i] - b[i] : Math.fround(x[i] - b[i]);
        if (raw === 0 || (input.thresholdBits > 0 && !(f32Bits(Math.abs(raw)) >= input.thresholdBits))) continue;
        const d = roundedTo(input.dtype, raw);
        stored[offset + i] = d;
        if (d !== 0) kept++;
        sumStored2 += d * d;
        if (roundedTo(input.model.dtype, b[i] + d) !== x[i]) inexact++;
      }
    });
    return { bytes: encodeValues(input.dtype, stored), kept, inexact, sumStored2 };
  },

  patchApply: async (input: PatchApplyInput, ctx: TaskContext): Promise<PatchApplyOutput> => {
    const out = new Float64Array(input.count);
    let sumModel2 = 0;
    const refs = [input.model, ...input.patches.map((p) => p.ref)];
    await forEachSubChunk(refs, input.start, input.count, ctx, (values, offset, length) => {
      const x = values[0];
      for (let i = 0; i < length; i++) {
        let sum = x[i];
        sumModel2 += x[i] * x[i];
        for (let p = 0; p < input.patches.length; p++) sum += input.patches[p].scale * values[p + 1][i];
        out[offset + i] = sum;
      }
    });
    return { bytes: encodeValues(input.dtype, out), sumModel2 };
  },
};

export type PatchTasks = typeof patchTasks;
