// A checkpoint's fingerprint: the values at a fixed, deterministic sample of positions of every
// tensor (samplePlan), concatenated in tensor-name order. Checkpoints of one architecture are
// sampled at identical positions, so fingerprints compare element by element. At most 64 KiB of
// values per checkpoint, read with ranged reads, whatever its size. In a matrix the runs form a
// block (blockPlan: distinct rows, one shared column), so a difference's rank can be estimated.
import type { TaskContext } from '../engine/task';
import { canDecode, openCheckpoint, openReadHandle, readHeaderFrom, type TensorRef } from '../safetensors';
import { blockPlan, readSamples, samplePlan, SAMPLE_RUN_LENGTH, DEFAULT_SAMPLES_PER_TENSOR, type SamplePlan, type SampleRequest } from '../sampling';

/** Bump when the sampled positions or the layout change: cached fingerprints are then recomputed. */
export const FINGERPRINT_VERSION = 2;
/** Target elements per checkpoint (64 KiB as float32), spread over its tensors. */
export const FINGERPRINT_TARGET_ELEMENTS = 16384;

/** Samples per tensor for an architecture with `tensorCount` tensors: the target spread evenly, in whole runs. */
export function samplesPerTensor(tensorCount: number): number {
  const even = Math.floor(FINGERPRINT_TARGET_ELEMENTS / Math.max(1, tensorCount) / SAMPLE_RUN_LENGTH) * SAMPLE_RUN_LENGTH;
  return Math.min(DEFAULT_SAMPLES_PER_TENSOR, Math.max(SAMPLE_RUN_LENGTH, even));
}

export interface FingerprintSegment {
  name: string;
  offset: number;
  count: number;
}

/** Where each tensor's samples sit in a fingerprint. Same tensors (names, sizes) -> same layout. */
export function fingerprintLayout(tensors: readonly { name: string; numel: number }[], perTensor: number): FingerprintSegment[] {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const segments: FingerprintSegment[] = [];
  let offset = 0;
  for (const t of sorted) {
    const count = samplePlan(t.name, t.numel, perTensor).count;
    segments.push({ name: t.name, offset, count });
    offset += count;
  }
  return segments;
}

/** Layouts and sample plans by tensor list: checkpoints of one architecture (thousands in a long run) share them. */
const samplingByTensors = new Map<string, { segments: FingerprintSegment[]; plans: SamplePlan[] }>();
const SAMPLINGS_KEPT = 32;

/** Where each tensor's samples go in the fingerprint, and where they are taken (blocks in matrices). */
function samplingOf(tensors: readonly { name: string; shape: number[]; numel: number }[], perTensor: number): { segments: FingerprintSegment[]; plans: SamplePlan[] } {
  const key = `${perTensor}|${tensors.map((t) => `${t.name}:${t.shape.join('x')}`).join('|')}`;
  let sampling = samplingByTensors.get(key);
  if (!sampling) {
    const byName = new Map(tensors.map((t) => [t.name, t]));
    const segments = fingerprintLayout(tensors, perTensor);
    const plans = segments.map((segment) => {
      const t = byName.get(segment.name)!;
      const cols = t.shape.length >= 2 ? t.shape[t.shape.length - 1] : 0;
      return cols > 0 ? blockPlan(t.name, t.numel / cols, cols, perTensor) : samplePlan(t.name, t.numel, perTensor);
    });
    sampling = { segments, plans };
    if (samplingByTensors.size >= SAMPLINGS_KEPT) samplingByTensors.clear();
    samplingByTensors.set(key, sampling);
  }
  return sampling;
}

export interface FingerprintInput {
  /** A .safetensors file, an index.json or a model folder (anything openCheckpoint takes). */
  path: string;
  samplesPerTensor: number;
}

/** Reads a fingerprint. Tensors of a dtype that cannot be decoded are filled with NaN (ignored by comparisons). */
export async function computeFingerprint(input: FingerprintInput, ctx: TaskContext): Promise<Float32Array> {
  // A single file is opened once for its header and its samples; other layouts go through openCheckpoint.
  const single = input.path.endsWith('.safetensors') ? await openReadHandle(input.path) : undefined;
  try {
    const tensors: TensorRef[] = single
      ? (await readHeaderFrom(single, input.path)).tensors.map((t) => ({ ...t, file: input.path }))
      : (await openCheckpoint(input.path)).tensors;
    const byName = new Map<string, TensorRef>(tensors.map((t) => [t.name, t]));
    const { segments, plans } = samplingOf(tensors, input.samplesPerTensor);
    const total = segments.length > 0 ? segments[segments.length - 1].offset + segments[segments.length - 1].count : 0;
    const out = new Float32Array(total);
    // One pass per weight file, so nearby samples (most of a small checkpoint) come in few reads.
    const byFile = new Map<string, SampleRequest[]>();
    segments.forEach((segment, s) => {
      const ref = byName.get(segment.name)!;
      if (!canDecode(ref.dtype)) {
        out.fill(Number.NaN, segment.offset, segment.offset + segment.count);
        return;
      }
      const request = { ref, plan: plans[s], out, outOffset: segment.offset };
      const list = byFile.get(ref.file);
      if (list) list.push(request);
      else byFile.set(ref.file, [request]);
    });
    let done = 0;
    for (const [file, requests] of byFile) {
      ctx.throwIfCancelled();
      const handle = single ?? (await openReadHandle(file));
      try {
        await readSamples(handle, requests);
      } finally {
        if (!single) await handle.close();
      }
      ctx.progress(++done / byFile.size);
    }
    return out;
  } finally {
    await single?.close();
  }
}
