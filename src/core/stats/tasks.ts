// Worker kernels for tensor statistics. Each reads its element range in sub-chunks of about a
// million elements into two reused buffers, one ahead of the one being summarised, so a worker
// holds two sub-chunks whatever the tensor size.

import type { FileHandle } from 'node:fs/promises';
import type { TaskContext } from '../engine/task';
import { openForRead, TensorChunkReader } from '../safetensors/reader';
import type { TensorRef } from '../safetensors/types';
import { addToHistogram, emptyPartial, mergePartials, summarize, type StatsPartial } from './accumulate';

/** Elements decoded per read inside a kernel: 4-8 MB of values. */
export const SUB_CHUNK_ELEMENTS = 1 << 20;

export interface StatsChunkInput {
  ref: TensorRef;
  start: number;
  count: number;
}

export interface HistogramChunkInput extends StatsChunkInput {
  lo: number;
  hi: number;
  bins: number;
}

/**
 * Runs `visit` over [start, start + count) of a tensor, one sub-chunk at a time, reading the next
 * sub-chunk while the current one is visited. Two readers with fixed buffers alternate, so the
 * memory held is two sub-chunks whatever the range.
 */
async function forEachSubChunk(input: StatsChunkInput, ctx: TaskContext, visit: (values: Float32Array | Float64Array) => void): Promise<void> {
  const { ref, start, count } = input;
  const end = start + count;
  const capacity = Math.min(SUB_CHUNK_ELEMENTS, count);
  const readers = [new TensorChunkReader(ref, capacity), new TensorChunkReader(ref, capacity)];
  let handle: FileHandle;
  try {
    handle = await openForRead(ref.file);
  } catch (error) {
    for (const reader of readers) reader.dispose();
    throw error;
  }
  let turn = 0;
  const read = (from: number) => readers[turn++ % 2].read(from, Math.min(capacity, end - from), handle);
  let position = start;
  let next = position < end ? read(position) : undefined;
  try {
    while (next) {
      const values = await next;
      position += values.length;
      ctx.throwIfCancelled();
      next = position < end ? read(position) : undefined;
      visit(values);
      ctx.progress((position - start) / count);
    }
    ctx.progress(1);
  } finally {
    // A read-ahead abandoned by a cancel must settle before its handle closes.
    await next?.catch(() => undefined);
    await handle.close();
    for (const reader of readers) reader.dispose();
  }
}

export const statsTasks = {
  /** Mergeable statistics of elements [start, start + count) of a tensor. */
  tensorStatsChunk: async (input: StatsChunkInput, ctx: TaskContext): Promise<StatsPartial> => {
    let partial = emptyPartial();
    await forEachSubChunk(input, ctx, (values) => {
      partial = mergePartials(partial, summarize(values));
    });
    return partial;
  },

  /** Counts of finite elements of [start, start + count) in `bins` equal bins over [lo, hi]. */
  tensorHistogramChunk: async (input: HistogramChunkInput, ctx: TaskContext): Promise<Uint32Array> => {
    const counts = new Uint32Array(input.bins);
    await forEachSubChunk(input, ctx, (values) => addToHistogram(values, input.lo, input.hi, counts));
    return counts;
  },
};
