// Tensor statistics on the worker pool: a tensor is cut into element ranges that run in parallel
// (at most `runner.concurrency` in flight), and their partial results are merged exactly.

import { mapLimit, type TaskRunner } from '../engine/pool';
import { canDecode, unsupportedDecode } from '../safetensors/dtypes';
import { SafetensorsError } from '../safetensors/errors';
import type { TensorRef } from '../safetensors/types';
import { balancedTaskSize } from '../tensors/stream';
import { emptyPartial, finalize, mergePartials, type TensorStats } from './accumulate';
import type { statsTasks } from './tasks';

export { summarize, mergePartials, finalize, emptyPartial, addToHistogram, type StatsPartial, type TensorStats } from './accumulate';
export { statsTasks, SUB_CHUNK_ELEMENTS, type StatsChunkInput, type HistogramChunkInput } from './tasks';

/** Elements per parallel task: large enough to amortise a thread hop, small enough to spread. */
export const STATS_CHUNK_ELEMENTS = 1 << 24;

export type StatsRunner = TaskRunner<typeof statsTasks>;

export interface StatsOptions {
  signal?: AbortSignal;
  /** Fraction done, 0..1, over both passes when a histogram is asked for. */
  onProgress?: (fraction: number) => void;
  /** Number of histogram bins; 0 or absent for none. */
  histogramBins?: number;
  /** Elements per task (tests use small values to exercise merging); by default at most STATS_CHUNK_ELEMENTS, balanced over the runner's threads. */
  chunkElements?: number;
}

function ranges(numel: number, size: number): { start: number; count: number }[] {
  const out: { start: number; count: number }[] = [];
  for (let start = 0; start < numel; start += size) out.push({ start, count: Math.min(size, numel - start) });
  return out;
}

/**
 * min, max, mean, population std (over finite values), zeros, NaN and inf counts of a tensor,
 * and optionally a histogram over [min, max] computed in a second pass.
 */
export async function computeTensorStats(runner: StatsRunner, ref: TensorRef, options: StatsOptions = {}): Promise<TensorStats> {
  const { signal, onProgress } = options;
  if (!canDecode(ref.dtype)) {
    const error = unsupportedDecode(ref.dtype);
    throw new SafetensorsError(`Tensor "${ref.name}": ${error.message}`, { rule: error.rule, tensor: ref.name, file: ref.file });
  }
  const bins = Math.max(0, Math.floor(options.histogramBins ?? 0));
  const chunkElements = Math.max(1, Math.floor(options.chunkElements ?? balancedTaskSize(ref.numel, STATS_CHUNK_ELEMENTS, runner.concurrency)));
  const parts = ranges(ref.numel, chunkElements);
  const passes = bins > 0 ? 2 : 1;
  const done = new Float64Array(parts.length * passes);
  const total = Math.max(1, ref.numel * passes);
  const report = (slot: number, elements: number) => {
    done[slot] = elements;
    if (onProgress) onProgress(Math.min(1, done.reduce((a, b) => a + b, 0) / total));
  };

  const partials = await mapLimit(
    parts,
    runner.concurrency,
    (part, i) => runner.run('tensorStatsChunk', { ref, ...part }, { signal, onProgress: (f) => report(i, f * part.count) }),
    signal,
  );
  const merged = partials.reduce(mergePartials, emptyPartial());
  const stats = finalize(merged);
  if (bins === 0 || stats.min === null || stats.max === null) {
    onProgress?.(1);
    return stats;
  }

  const lo = stats.min;
  const hi = stats.max;
  const counts = new Array<number>(bins).fill(0);
  await mapLimit(
    parts,
    runner.concurrency,
    async (part, i) => {
      const chunk = await runner.run('tensorHistogramChunk', { ref, ...part, lo, hi, bins }, {
        signal,
        onProgress: (f) => report(parts.length + i, f * part.count),
      });
      for (let b = 0; b < bins; b++) counts[b] += chunk[b];
    },
    signal,
  );
  onProgress?.(1);
  return { ...stats, histogram: { lo, hi, counts } };
}
