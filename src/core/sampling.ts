// The fixed, deterministic sample of a tensor's elements that the lineage fingerprint and the
// diff's quick mode both read. It depends only on the tensor's name and element count, so two
// checkpoints with the same architecture are sampled at the same positions and can be compared
// element by element from a few kilobytes of ranged reads.
import type { FileHandle } from 'node:fs/promises';
import type { ReadHandle } from './files';
import { canDecode, decodeToFloat, dtypeBits, LITTLE_ENDIAN, openForRead, SafetensorsError, type TensorRef } from './safetensors';

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
export function prng(seed: number): () => number {
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

/**
 * Like samplePlan, but for a matrix of `rows` x `cols` (the last dimension is `cols`) the runs sit
 * in distinct rows (one per row stratum) at one shared column: together they form a small block of
 * the matrix, whose rank bounds the rank of the whole matrix. Lineage uses it to recognise a
 * merged low-rank adapter (a difference of rank r has blocks of rank <= r). Same count as samplePlan.
 */
export function blockPlan(name: string, rows: number, cols: number, maxSamples = DEFAULT_SAMPLES_PER_TENSOR): SamplePlan {
  const numel = rows * cols;
  const runCount = Math.max(1, Math.floor(maxSamples / SAMPLE_RUN_LENGTH));
  if (numel <= maxSamples || cols < SAMPLE_RUN_LENGTH || rows < runCount) return samplePlan(name, numel, maxSamples);
  const random = prng(hashName(name) ^ numel ^ 0x5bd1e995);
  const column = Math.floor(random() * (cols - SAMPLE_RUN_LENGTH + 1));
  const stratum = rows / runCount;
  const runs: SampleRun[] = [];
  for (let i = 0; i < runCount; i++) {
    const lo = Math.floor(i * stratum);
    const hi = Math.max(lo + 1, Math.floor((i + 1) * stratum));
    const row = lo + Math.floor(random() * (hi - lo));
    runs.push({ start: row * cols + column, length: SAMPLE_RUN_LENGTH });
  }
  return { runs, count: runCount * SAMPLE_RUN_LENGTH };
}

/** Ranges closer than this are fetched with one read: a little extra data instead of another syscall. */
const COALESCE_GAP_BYTES = 64 * 1024;
/** Largest single read when merging ranges, to keep memory bounded. */
const MAX_COALESCED_READ_BYTES = 1024 * 1024;

/** Sampled elements of one tensor, decoded into `out` from `outOffset` on, in plan order. */
export interface SampleRequest {
  ref: TensorRef;
  plan: SamplePlan;
  out: Float32Array;
  outOffset: number;
}

/**
 * Reads the samples of several tensors of one file through `handle`, merging nearby ranges into
 * single positional reads (small checkpoints come in one or two reads; large ones one per run).
 */
export async function readSamples(handle: ReadHandle, requests: readonly SampleRequest[]): Promise<void> {
  interface Item { request: SampleRequest; run: SampleRun; at: number; begin: number; end: number }
  const items: Item[] = [];
  for (const request of requests) {
    const { ref } = request;
    if (!canDecode(ref.dtype)) {
      throw new SafetensorsError(`Tensor "${ref.name}": ${ref.dtype} values cannot be decoded, so they cannot be sampled.`, { rule: 'unsupported-dtype', tensor: ref.name, file: ref.file });
    }
    const bits = dtypeBits(ref.dtype);
    let at = request.outOffset;
    for (const run of request.plan.runs) {
      const begin = ref.begin + Math.floor((run.start * bits) / 8);
      const end = ref.begin + Math.ceil(((run.start + run.length) * bits) / 8);
      items.push({ request, run, at, begin, end });
      at += run.length;
    }
  }
  items.sort((a, b) => a.begin - b.begin);
  let i = 0;
  while (i < items.length) {
    const start = items[i].begin;
    let end = items[i].end;
    let j = i + 1;
    while (j < items.length && items[j].begin - end <= COALESCE_GAP_BYTES && Math.max(end, items[j].end) - start <= MAX_COALESCED_READ_BYTES) {
      end = Math.max(end, items[j].end);
      j++;
    }
    const buffer = new Uint8Array(end - start);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, start + filled);
      if (bytesRead === 0) throw new Error(`The file ended at byte ${start + filled} while reading sampled values (expected ${end}): it is truncated or changed while being read.`);
      filled += bytesRead;
    }
    // F32 (most fingerprints' dtype) is copied straight from a float view of the read: no decode
    // and no allocation per run, of which a fingerprint has hundreds.
    const floats = LITTLE_ENDIAN ? new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength >> 2) : undefined;
    for (let k = i; k < j; k++) {
      const { request, run, at, begin, end: itemEnd } = items[k];
      if (floats && request.ref.dtype === 'F32' && (begin - start) % 4 === 0) {
        const from = (begin - start) >> 2;
        for (let e = 0; e < run.length; e++) request.out[at + e] = floats[from + e];
        continue;
      }
      const values = decodeToFloat(request.ref.dtype, buffer.subarray(begin - start, itemEnd - start));
      // Sub-byte dtypes (F4) start mid-byte for odd element indices.
      const skip = ((run.start * dtypeBits(request.ref.dtype)) % 8) / dtypeBits(request.ref.dtype);
      for (let e = 0; e < run.length; e++) request.out[at + e] = values[skip + e];
    }
    i = j;
  }
}

/** The sampled elements of one tensor (in plan order); `handle` is an open handle of ref.file, reused across calls. */
export async function readSampledValues(
  ref: TensorRef,
  plan: SamplePlan,
  handle?: FileHandle,
  out: Float32Array = new Float32Array(plan.count),
  outOffset = 0,
): Promise<Float32Array> {
  const own = handle ?? (await openForRead(ref.file));
  try {
    await readSamples(own, [{ ref, plan, out, outOffset }]);
  } finally {
    if (!handle) await own.close();
  }
  return out;
}
