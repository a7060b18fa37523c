// Lineage kernels for the worker pool (registered in src/worker/tasks.ts).
import { mapLimit } from '../engine/pool';
import type { TaskContext } from '../engine/task';
import { IO_BLOCKS_THREAD } from '../files';
import { computeFingerprint, type FingerprintInput } from './fingerprint';
import { nearestCandidates, sharedBytes, type CandidateDistances, type NeighbourSearch } from './metrics';

/**
 * Fingerprints one task reads at once on the calling thread, where each is a few small reads
 * through libuv's pool, mostly waiting. A worker thread reads them one after another with blocking
 * calls (IO_BLOCKS_THREAD): from the page cache that is faster than any overlap.
 */
const READS_IN_FLIGHT = IO_BLOCKS_THREAD ? 1 : 8;

/** Several fingerprints in one buffer: `values` holds them end to end, `lengths` says where each ends. */
export interface PackedFingerprints {
  values: Float32Array;
  lengths: number[];
}

export const lineageTasks = {
  /**
   * Sampled values of several checkpoints for weight-based lineage (see fingerprint.ts), in input
   * order, packed in one buffer of shared memory: one message and no copy per task, whatever its size.
   */
  fingerprints: async (input: { inputs: FingerprintInput[] }, ctx: TaskContext): Promise<PackedFingerprints> => {
    let done = 0;
    // Progress per fingerprint of the batch, not per file inside each (that would be a message per fingerprint).
    const quiet: TaskContext = { progress: () => undefined, get cancelled() { return ctx.cancelled; }, throwIfCancelled: () => ctx.throwIfCancelled() };
    const each = await mapLimit(input.inputs, READS_IN_FLIGHT, async (one) => {
      const values = await computeFingerprint(one, quiet);
      ctx.progress(++done / input.inputs.length);
      return values;
    });
    // Shared memory: the views main keeps can be handed to every worker for a large group's neighbour search without a copy.
    const values = new Float32Array(sharedBytes(4 * each.reduce((sum, v) => sum + v.length, 0)));
    let offset = 0;
    for (const v of each) {
      values.set(v, offset);
      offset += v.length;
    }
    return { values, lengths: each.map((v) => v.length) };
  },
  /** The neighbour candidates of a range of a large group's members (see metrics.ts); the fingerprints are in shared memory. */
  nearestCandidates: async (input: { search: NeighbourSearch; from: number; to: number }): Promise<CandidateDistances> => nearestCandidates(input.search, input.from, input.to),
};

/** The fingerprints of a PackedFingerprints, as views of its buffer. */
export function unpackFingerprints(packed: PackedFingerprints): Float32Array[] {
  let offset = 0;
  return packed.lengths.map((length) => {
    const view = packed.values.subarray(offset, offset + length);
    offset += length;
    return view;
  });
}
