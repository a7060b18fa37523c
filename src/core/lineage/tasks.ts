// Lineage kernels for the worker pool (registered in src/worker/tasks.ts).
import { mapLimit } from '../engine/pool';
import type { TaskContext } from '../engine/task';
import { computeFingerprint, type FingerprintInput } from './fingerprint';

/** Fingerprints one task reads at once: each is a few small reads, mostly waiting on the file system. */
const READS_IN_FLIGHT = 8;

export const lineageTasks = {
  /**
   * Sampled values of several checkpoints for weight-based lineage (see fingerprint.ts), in input
   * order. Several per task: one message per fingerprint would cost more than reading it.
   */
  fingerprints: (input: { inputs: FingerprintInput[] }, ctx: TaskContext): Promise<Float32Array[]> =>
    mapLimit(input.inputs, READS_IN_FLIGHT, (one) => computeFingerprint(one, ctx)),
};
