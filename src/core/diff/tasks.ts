// The diff kernel run on the worker threads: partial sums of the diff metrics over element ranges
// of tensor pairs. One call holds a file handle per distinct file and two sets of sub-chunk
// buffers (the next sub-chunk is read while the current one is accumulated), so its memory is a
// few bytes x 2 sets x 3 operands x chunkElements (tens of MiB at the default), whatever the
// tensor sizes. With the WebAssembly kernels (the default) the sub-chunks are read straight into
// the module's memory and accumulated there; the JavaScript loops are the other path.
import type { TaskContext } from '../engine/task';
import type { SampleRun } from '../sampling';
import type { TensorRef } from '../safetensors/types';
import {
  accumulatePair, accumulatePairBits, accumulatePairF32, accumulateWithBase, accumulateWithBaseBits, accumulateWithBaseF32, emptyPartial,
  hasFiniteSums, mergePartial, type DiffPartial,
} from './metrics';
import { ChunkReader, readIntoBytes, type FloatArray, type Operand } from '../tensors/chunkReader';
import { FileHandles, streamUnits } from '../tensors/stream';
import { wasmKernels, type KernelRegion, type Placed } from '../kernels';
import { accumulatePlaced } from '../kernels/diff';
import { decodesToFloat64 } from '../safetensors/dtypes';

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

/** A sub-chunk read into the kernel module's memory. */
interface PlacedOperands {
  placed: true;
  a: Placed;
  b: Placed;
  c?: Placed;
}

/** Whether the WebAssembly kernels take the segment: every operand decodes to float32. */
function placeable({ a, b, base }: DiffSegment): boolean {
  return !decodesToFloat64(a.dtype) && !decodesToFloat64(b.dtype) && !(base && decodesToFloat64(base.dtype));
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
  // WebAssembly path: per slot, one region of the module's memory per operand.
  const kernels = wasmKernels();
  const operandsPerSlot = input.segments.some((s) => s.base) ? 3 : 2;
  const largestUnit = units.reduce((n, u) => Math.max(n, u.count), 0);
  const regions: KernelRegion[] = kernels && input.segments.some(placeable) ? await kernels.memory.take(new Array(2 * operandsPerSlot).fill(readIntoBytes(largestUnit))) : [];
  const readUnit = async (unit: Unit, slot: 0 | 1): Promise<Operands | PlacedOperands> => {
    const segment = input.segments[unit.segment];
    const { a, b, base } = segment;
    const readers = buffers[slot];
    if (regions.length > 0 && placeable(segment)) {
      const [ra, rb, rc] = regions.slice(slot * operandsPerSlot, (slot + 1) * operandsPerSlot);
      const [ka, kb, kc] = await Promise.all([
        readers.a.readInto(a, await handles.get(a.file), unit.start, unit.count, ra.bytes()),
        readers.b.readInto(b, await handles.get(b.file), unit.start, unit.count, rb.bytes()),
        base ? readers.c.readInto(base, await handles.get(base.file), unit.start, unit.count, rc.bytes()) : undefined,
      ]);
      return { placed: true, a: { kind: ka!, region: ra }, b: { kind: kb!, region: rb }, c: base ? { kind: kc!, region: rc } : undefined };
    }
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
      if ('placed' in data) accumulatePlaced(kernels!, partials[unit.segment], data.a, data.b, data.c, unit.count);
      else accumulate(partials[unit.segment], data, unit.count);
      done += unit.count;
      ctx.progress(done / total);
    }, ctx);
  } finally {
    await handles.closeAll();
    for (const set of buffers) for (const reader of Object.values(set)) reader.dispose();
    if (regions.length > 0) kernels!.memory.give(regions);
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
