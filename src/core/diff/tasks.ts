// The diff kernel run on the worker threads: partial sums of the diff metrics over element ranges
// of tensor pairs. One call holds a file handle per distinct file and two sets of sub-chunk
// buffers (the next sub-chunk is read while the current one is accumulated), so its memory is a
// few bytes x 2 sets x 3 operands x chunkElements (tens of MiB at the default), whatever the
// tensor sizes.
import type { TaskContext } from '../engine/task';
import type { SampleRun } from '../sampling';
import type { TensorRef } from '../safetensors/types';
import {
  accumulatePair, accumulatePairBits, accumulatePairF32, accumulateWithBase, accumulateWithBaseBits, accumulateWithBaseF32, emptyPartial,
  hasFiniteSums, mergePartial, type DiffPartial,
} from './metrics';
import { ChunkReader, type FloatArray, type Operand } from '../tensors/chunkReader';
import { FileHandles, streamUnits } from '../tensors/stream';

/** Elements read per operand and per positional read: ~4 MiB of float32 each. */
export const DEFAULT_CHUNK_ELEMENTS = 1 << 20;

/**
 * Element ranges of one tensor pair to compare. Positions index the compared block, which is the
 * leading elements of each tensor (all of them, or the overlap rows of a shape mismatch).
 */
export interface DiffSegment {
  a: TensorRef;
  b: TensorRef;
  /** The common base, for the task-vector metrics. */
  base?: TensorRef;
  runs: SampleRun[];
}

export interface DiffChunkInput {
  segments: DiffSegment[];
  /** Sub-chunk size in elements (tests make it small to exercise the splitting). */
  chunkElements?: number;
}

export interface DiffChunkOutput {
  /** One per segment, in order. */
  partials: DiffPartial[];
}

interface Unit {
  segment: number;
  start: number;
  count: number;
}

interface Readers {
  a: ChunkReader;
  b: ChunkReader;
  c: ChunkReader;
}

interface Operands {
  readers: Readers;
  a: Operand;
  b: Operand;
  c?: Operand;
}

async function diffChunk(input: DiffChunkInput, ctx: TaskContext): Promise<DiffChunkOutput> {
  const chunk = Math.max(1, Math.floor(input.chunkElements ?? DEFAULT_CHUNK_ELEMENTS));
  const units: Unit[] = [];
  input.segments.forEach((segment, index) => {
    for (const run of segment.runs) {
      for (let offset = 0; offset < run.length; offset += chunk) {
        units.push({ segment: index, start: run.start + offset, count: Math.min(chunk, run.length - offset) });
      }
    }
  });
  const total = units.reduce((n, u) => n + u.count, 0);
  const partials = input.segments.map(() => emptyPartial());
  const handles = new FileHandles();
  // Two buffer sets: one being accumulated, one being filled by the read in flight.
  const buffers = [0, 1].map(() => ({ a: new ChunkReader(), b: new ChunkReader(), c: new ChunkReader() }));
  const readUnit = async (unit: Unit, slot: 0 | 1): Promise<Operands> => {
    const { a, b, base } = input.segments[unit.segment];
    const readers = buffers[slot];
    const [da, db, dc] = await Promise.all([
      readers.a.read(a, await handles.get(a.file), unit.start, unit.count),
      readers.b.read(b, await handles.get(b.file), unit.start, unit.count),
      base ? readers.c.read(base, await handles.get(base.file), unit.start, unit.count) : undefined,
    ]);
    return { readers, a: da, b: db, c: dc };
  };

  let done = 0;
  try {
    await streamUnits(units, readUnit, (data, unit) => {
      accumulate(partials[unit.segment], data, unit.count);
      done += unit.count;
      ctx.progress(done / total);
    }, ctx);
  } finally {
    await handles.closeAll();
    for (const set of buffers) for (const reader of Object.values(set)) reader.dispose();
  }
  return { partials };
}

/**
 * Adds one sub-chunk to its segment's sums. The fast loops (16-bit lookup, or float32) run first
 * and are kept when the sums come out finite, the common case; otherwise (NaN or infinity in an
 * input), or for float64 values, the checked loops leave the non-finite pairs out.
 */
function accumulate(into: DiffPartial, { readers, a, b, c }: Operands, count: number): void {
  if ('bits' in a && 'bits' in b && (!c || 'bits' in c)) {
    const sums = emptyPartial();
    if (c) accumulateWithBaseBits(sums, a.bits, a.table, b.bits, b.table, c.bits, c.table, count);
    else accumulatePairBits(sums, a.bits, a.table, b.bits, b.table, count);
    if (hasFiniteSums(sums)) return mergePartial(into, sums);
  }
  const va = readers.a.valuesOf(a);
  const vb = readers.b.valuesOf(b);
  const vc = c ? readers.c.valuesOf(c) : undefined;
  if (isF32(va) && isF32(vb) && (!vc || isF32(vc))) {
    const sums = emptyPartial();
    if (vc) accumulateWithBaseF32(sums, va, vb, vc as Float32Array, count);
    else accumulatePairF32(sums, va, vb, count);
    if (hasFiniteSums(sums)) return mergePartial(into, sums);
  }
  if (vc) accumulateWithBase(into, va, vb, vc, count);
  else accumulatePair(into, va, vb, count);
}

function isF32(values: FloatArray): values is Float32Array {
  return values instanceof Float32Array;
}

export const diffTasks = {
  diffChunk,
};

export type DiffTasks = typeof diffTasks;
