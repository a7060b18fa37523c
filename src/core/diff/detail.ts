// What changed inside one tensor: the distribution of b - a and how the change spreads along the
// first dimension (rows of a weight matrix, vocabulary entries of an embedding). Streams both
// tensors in chunks with positional reads, so memory stays at two chunks whatever the tensor size.
import type { TaskContext } from '../engine/task';
import { openForRead, readElements } from '../safetensors';
import type { TensorRef } from '../safetensors/types';
import type { TensorDiffDetail } from './types';

/** Rows beyond this are aggregated into this many buckets of consecutive rows. */
export const DETAIL_ROW_BUCKETS = 1024;
/** Elements read per side and per positional read (~4-8 MB of decoded values). */
export const DETAIL_CHUNK_ELEMENTS = 1 << 20;
export const MAX_DETAIL_BINS = 4096;

export interface TensorDiffDetailInput {
  a: TensorRef;
  b: TensorRef;
  bins: number;
  /** Override of DETAIL_CHUNK_ELEMENTS (tests use tiny chunks to exercise chunk boundaries). */
  chunkElements?: number;
}

type Values = Float32Array | Float64Array;

export async function tensorDiffDetail(input: TensorDiffDetailInput, ctx: TaskContext): Promise<TensorDiffDetail> {
  const { a, b, bins } = input;
  validate(input);
  const chunk = Math.max(1, Math.floor(input.chunkElements ?? DETAIL_CHUNK_ELEMENTS));
  const numel = a.numel;
  const rows = a.shape.length === 0 ? 1 : a.shape[0];
  const rowLength = rows > 0 ? numel / rows : 0;
  const buckets = Math.min(rows, DETAIL_ROW_BUCKETS);
  const diffSq = new Float64Array(buckets);
  const baseSq = new Float64Array(buckets);
  let min = Infinity;
  let max = -Infinity;
  let unchanged = 0;
  let nonFinite = 0;
  // A tensor that fits in one chunk is read once: its differences are kept for the counting pass.
  let kept: Float64Array | undefined;

  const handleA = await openForRead(a.file);
  try {
    const handleB = await openForRead(b.file);
    try {
      const readPair = async (start: number, count: number): Promise<[Values, Values]> =>
        Promise.all([readElements(a, start, count, handleA), readElements(b, start, count, handleB)]);

      // Pass 1: range of the differences, per-row norms, unchanged and non-finite counts.
      for (let start = 0; start < numel; start += chunk) {
        ctx.throwIfCancelled();
        const count = Math.min(chunk, numel - start);
        const [va, vb] = await readPair(start, count);
        if (numel <= chunk) kept = new Float64Array(count);
        let row = Math.floor(start / rowLength);
        let rowEnd = (row + 1) * rowLength;
        let bucket = Math.floor((row * buckets) / rows);
        for (let j = 0; j < count; j++) {
          if (start + j >= rowEnd) {
            row++;
            rowEnd += rowLength;
            bucket = Math.floor((row * buckets) / rows);
          }
          const x = va[j];
          const d = vb[j] - x;
          if (kept) kept[j] = d;
          if (!Number.isFinite(d)) {
            nonFinite++;
            continue;
          }
          if (d === 0) unchanged++;
          if (d < min) min = d;
          if (d > max) max = d;
          diffSq[bucket] += d * d;
          baseSq[bucket] += x * x;
        }
        ctx.progress((0.5 * (start + count)) / numel);
      }

      // Pass 2: histogram counts over [min, max].
      const counts = new Float64Array(bins);
      if (min <= max) {
        const width = (max - min) / bins;
        const scale = max > min ? bins / (max - min) : 0;
        const binOf = (d: number): void => {
          if (!Number.isFinite(d)) return;
          if (width === 0) {
            counts[0]++;
            return;
          }
          let i = Math.min(bins - 1, Math.floor((d - min) * scale));
          // The estimate can be one off at an edge; settle it against the edges as documented.
          while (i > 0 && d < min + i * width) i--;
          while (i < bins - 1 && d >= min + (i + 1) * width) i++;
          counts[i]++;
        };
        if (kept) {
          for (let j = 0; j < kept.length; j++) binOf(kept[j]);
        } else {
          for (let start = 0; start < numel; start += chunk) {
            ctx.throwIfCancelled();
            const count = Math.min(chunk, numel - start);
            const [va, vb] = await readPair(start, count);
            for (let j = 0; j < count; j++) binOf(vb[j] - va[j]);
            ctx.progress(0.5 + (0.5 * (start + count)) / numel);
          }
        }
      } else {
        // No finite difference at all: an empty histogram over [0, 0].
        min = 0;
        max = 0;
      }
      ctx.progress(1);

      const start = new Float64Array(buckets);
      // The first row r with floor(r * buckets / rows) = i, in integer arithmetic.
      for (let i = 0; i < buckets; i++) start[i] = Math.floor((i * rows + buckets - 1) / buckets);
      return {
        name: a.name,
        shape: [...a.shape],
        numel,
        histogram: { min, max, counts },
        unchanged,
        nonFinite,
        diffNorm: Math.sqrt(sum(diffSq)),
        baseNorm: Math.sqrt(sum(baseSq)),
        rows: { count: rows, start, diffNorm: diffSq.map(Math.sqrt), baseNorm: baseSq.map(Math.sqrt) },
      };
    } finally {
      await handleB.close();
    }
  } finally {
    await handleA.close();
  }
}

function validate({ a, b, bins }: TensorDiffDetailInput): void {
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_DETAIL_BINS) {
    throw new RangeError(`Histogram bins must be a whole number from 1 to ${MAX_DETAIL_BINS} (got ${bins}).`);
  }
  const same = a.shape.length === b.shape.length && a.shape.every((n, i) => n === b.shape[i]);
  if (!same) {
    throw new Error(
      `Cannot diff ${a.name}: shapes differ ([${a.shape.join(', ')}] vs [${b.shape.join(', ')}]). ` +
        'An element-wise difference needs tensors of the same shape; see the shape mismatches list instead.',
    );
  }
}

function sum(values: Float64Array): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}
