// Worker kernels for tensor statistics. Each reads its element range in sub-chunks of about a
// million elements into two reused buffers, one ahead of the one being summarised, so a worker
// holds two sub-chunks whatever the tensor size. With the WebAssembly kernels (the default) the
// sub-chunks are read straight into the module's memory and summarised there.

import type { TaskContext } from '../engine/task';
import type { TensorRef } from '../safetensors/types';
import { ChunkReader, readIntoBytes, type FloatArray } from '../tensors/chunkReader';
import { elementRanges, FileHandles, streamUnits } from '../tensors/stream';
import { wasmKernels, type KernelRegion, type Kernels, type Placed } from '../kernels';
import { histogramPlaced, summarizePlaced } from '../kernels/stats';
import { decodesToFloat64 } from '../safetensors/dtypes';
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

/** What a pass does with one sub-chunk, on either kernel path. */
interface Visitor {
  values(values: FloatArray): void;
  /** With the WebAssembly kernels: the sub-chunk placed in the module's memory. */
  placed(kernels: Kernels, values: Placed, count: number): void;
}

/**
 * Runs the visitor over [start, start + count) of a tensor, one sub-chunk at a time, reading the
 * next sub-chunk while the current one is visited: two buffers alternate (two readers' scratch,
 * or two regions of the kernel module's memory), so the memory held is two sub-chunks whatever
 * the range. `extra` asks for one more region of the module's memory, set up before and read after.
 */
async function forEachSubChunk(input: StatsChunkInput, ctx: TaskContext, visit: Visitor, extra?: { bytes: number; setup(region: KernelRegion): void; finish(region: KernelRegion): void }): Promise<void> {
  const { ref, start, count } = input;
  const readers = [new ChunkReader(), new ChunkReader()];
  const handles = new FileHandles();
  const ranges = elementRanges(start, count, SUB_CHUNK_ELEMENTS);
  const kernels = decodesToFloat64(ref.dtype) ? undefined : wasmKernels();
  const size = readIntoBytes(ranges.reduce((n, r) => Math.max(n, r.count), 0));
  const regions = kernels ? await kernels.memory.take(extra ? [size, size, extra.bytes] : [size, size]) : [];
  let done = 0;
  try {
    if (kernels && extra) extra.setup(regions[2]);
    const handle = await handles.get(ref.file);
    await streamUnits(
      ranges,
      async (range, slot) => {
        if (!kernels) return readers[slot].readValues(ref, handle, range.start, range.count);
        const kind = await readers[slot].readInto(ref, handle, range.start, range.count, regions[slot].bytes());
        return { kind: kind!, region: regions[slot] };
      },
      (values, range) => {
        if ('region' in values) visit.placed(kernels!, values, range.count);
        else visit.values(values);
        done += range.count;
        ctx.progress(done / count);
      },
      ctx,
    );
    if (kernels && extra) extra.finish(regions[2]);
    ctx.progress(1);
  } finally {
    await handles.closeAll();
    for (const reader of readers) reader.dispose();
    if (kernels) kernels.memory.give(regions);
  }
}

export const statsTasks = {
  /** Mergeable statistics of elements [start, start + count) of a tensor. */
  tensorStatsChunk: async (input: StatsChunkInput, ctx: TaskContext): Promise<StatsPartial> => {
    let partial = emptyPartial();
    await forEachSubChunk(input, ctx, {
      values: (values) => (partial = mergePartials(partial, summarize(values))),
      placed: (kernels, values, count) => (partial = mergePartials(partial, summarizePlaced(kernels, values, count))),
    });
    return partial;
  },

  /** Counts of finite elements of [start, start + count) in `bins` equal bins over [lo, hi]. */
  tensorHistogramChunk: async (input: HistogramChunkInput, ctx: TaskContext): Promise<Uint32Array> => {
    const { lo, hi, bins } = input;
    const counts = new Uint32Array(bins);
    let countsRegion: KernelRegion | undefined;
    await forEachSubChunk(
      input,
      ctx,
      {
        values: (values) => addToHistogram(values, lo, hi, counts),
        placed: (kernels, values, count) => histogramPlaced(kernels, values, count, lo, hi, countsRegion!, bins),
      },
      {
        bytes: bins * 4,
        setup: (region) => {
          countsRegion = region;
          region.words(bins).fill(0);
        },
        finish: (region) => counts.set(region.words(bins)),
      },
    );
    return counts;
  },
};
