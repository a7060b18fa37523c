// Worker kernels for tensor statistics. Each reads its element range in sub-chunks of about a
// million elements into two reused buffers, one ahead of the one being summarised, so a worker
// holds two sub-chunks whatever the tensor size.

import type { TaskContext } from '../engine/task';
import type { TensorRef } from '../safetensors/types';
import { ChunkReader, type FloatArray } from '../tensors/chunkReader';
import { elementRanges, FileHandles, streamUnits } from '../tensors/stream';
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
 * sub-chunk while the current one is visited: two readers alternate, so the memory held is two
 * sub-chunks whatever the range.
 */
async function forEachSubChunk(input: StatsChunkInput, ctx: TaskContext, visit: (values: FloatArray) => void): Promise<void> {
  const { ref, start, count } = input;
  const readers = [new ChunkReader(), new ChunkReader()];
  const handles = new FileHandles();
  let done = 0;
  try {
    const handle = await handles.get(ref.file);
    await streamUnits(
      elementRanges(start, count, SUB_CHUNK_ELEMENTS),
      (range, slot) => readers[slot].readValues(ref, handle, range.start, range.count),
      (values) => {
        visit(values);
        done += values.length;
        ctx.progress(done / count);
      },
      ctx,
    );
    ctx.progress(1);
  } finally {
    await handles.closeAll();
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
