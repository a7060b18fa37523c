// Lineage kernels for the worker pool (registered in src/worker/tasks.ts).
import type { TaskContext } from '../engine/task';
import { computeFingerprint, type FingerprintInput } from './fingerprint';

export const lineageTasks = {
  /** Sampled values of a checkpoint for weight-based lineage; see fingerprint.ts. */
  fingerprint: (input: FingerprintInput, ctx: TaskContext): Promise<Float32Array> => computeFingerprint(input, ctx),
};
