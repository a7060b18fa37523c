// The fixed, deterministic sample of a tensor's elements that the lineage fingerprint and the
// diff's quick mode both read. It depends only on the tensor's name and element count, so two
// checkpoints with the same architecture are sampled at the same positions and can be compared
// element by element from a few kilobytes of ranged reads.
import type { FileHandle } from 'node:fs/promises';
import { dtypeBits, readElements, type TensorRef } from './safetensors';

/** A contiguous run of elements: [start, start + length). */
export interface SampleRun {
  start: number;
  length: number;
}

export interface SamplePlan {
  runs: SampleRun[];
  /** Total number of sampled elements (sum of run lengths). */
  count: number;
}

/** Runs of this many consecutive elements: one small read each, instead of scattered singles. */
export const SAMPLE_RUN_LENGTH = 16;
/** Default number of elements per tensor. */
export const DEFAULT_SAMPLES_PER_TENSOR = 256;

/** FNV-1a: a stable 32-bit hash of the tensor name to seed its sample positions. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a tiny deterministic PRNG, so positions are identical on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Where to sample a tensor of `numel` elements. Small tensors are taken whole. Larger ones are
 * cut into `maxSamples / SAMPLE_RUN_LENGTH` equal strata with one run at a jittered position in
 * each, so the sample covers the whole tensor (every row band of a matrix) rather than a corner.
 */
export function samplePlan(name: string, numel: number, maxSamples = DEFAULT_SAMPLES_PER_TENSOR): SamplePlan {
  if (numel <= maxSamples) return { runs: numel > 0 ? [{ start: 0, length: numel }] : [], count: numel };
  const runCount = Math.max(1, Math.floor(maxSamples / SAMPLE_RUN_LENGTH));
  const stratum = numel / runCount;
  const random = prng(hashName(name) ^ numel);
  const runs: SampleRun[] = [];
  for (let i = 0; i < runCount; i++) {
    const lo = Math.floor(i * stratum);
    const hi = Math.floor((i + 1) * stratum);
    const room = Math.max(0, hi - lo - SAMPLE_RUN_LENGTH);
    const start = lo + Math.floor(random() * (room + 1));
    runs.push({ start, length: Math.min(SAMPLE_RUN_LENGTH, numel - start) });
  }
  return { runs, count: runs.reduce((n, r) => n + r.length, 0) };
}

/** Runs closer than this many bytes apart are fetched with one read: fewer syscalls, a little extra data. */
const COALESCE_GAP_BYTES = 4096;

/**
 * Decodes the sampled elements of a tensor (in plan order) into `out` at `outOffset`, reading
 * nearby runs together. `handle` is an open handle of ref.file, reused across tensors.
 */
export async function readSampledValues(
  ref: TensorRef,
  plan: SamplePlan,
  handle?: FileHandle,
  out: Float32Array = new Float32Array(plan.count),
  outOffset = 0,
): Promise<Float32Array> {
  const bytesPerElement = dtypeBits(ref.dtype) / 8;
  let written = outOffset;
  let i = 0;
  while (i < plan.runs.length) {
    const first = plan.runs[i];
    let j = i;
    while (j + 1 < plan.runs.length) {
      const next = plan.runs[j + 1];
      const gapElements = next.start - (plan.runs[j].start + plan.runs[j].length);
      if (gapElements < 0 || gapElements * bytesPerElement > COALESCE_GAP_BYTES) break;
      j++;
    }
    const last = plan.runs[j];
    const values = await readElements(ref, first.start, last.start + last.length - first.start, handle);
    for (let k = i; k <= j; k++) {
      const run = plan.runs[k];
      const from = run.start - first.start;
      for (let e = 0; e < run.length; e++) out[written++] = values[from + e];
    }
    i = j + 1;
  }
  return out;
}
