// Merge kernels for the worker pool (registered in src/worker/tasks.ts). A task covers one element
// range of one output tensor and walks it in sub-chunks with the shared read-ahead loop, so a
// worker holds two sub-chunks of every operand whatever the range.
import type { TaskContext } from '../engine/task';
import { wasmKernels } from '../kernels';
import { encodeResident, KernelWork } from '../kernels/merge';
import { decodesToFloat64, encodeFromFloat32, LITTLE_ENDIAN } from '../safetensors/dtypes';
import type { DType } from '../safetensors/types';
import { readIntoBytes } from '../tensors/chunkReader';
import { elementRanges, FileHandles, streamUnits } from '../tensors/stream';
import { methodOf, OperandReader, stageOf, type Founds } from './compute';
import { operandsOf, type TensorJob } from './jobs';
import type { ChunkData } from './methods/types';
import { projectForChunk } from './select';

export interface MergeRangeInput {
  job: TensorJob;
  /** Stage results of the job and of every job it reads, sliced to this range. */
  founds: Founds;
  start: number;
  count: number;
  /** Elements per sub-chunk, a multiple of the range's alignment unit. */
  subChunk: number;
}

export interface MergeStageInput extends MergeRangeInput {
  stageId: string;
}

/**
 * Whether the job's chunks can live in the WebAssembly kernels' memory: every operand is a file
 * tensor that decodes to float32 (LoRA-patched and earlier-stage operands are computed in
 * JavaScript memory, and while the next sub-chunk is read, which the chunk's work memory is not for).
 */
function placeable(job: TensorJob): boolean {
  return operandsOf(job).every((op) => op.kind === 'file' && !decodesToFloat64(op.ref.dtype));
}

/** Float32 temporaries per element a chunk of `operands` inputs may need (deltas, keys, kept copies, output, encoded bytes). */
function workFloats(operands: number): number {
  return 3 * operands + 4;
}

/** Counters beside them: a 65536-bin histogram per operand (rank cuts). */
const WORK_COUNTERS = 65536;

/** Runs `visit` over the range's sub-chunks, reading the next sub-chunk's operands ahead. */
async function forEachSubChunk(input: MergeRangeInput, ctx: TaskContext, visit: (data: ChunkData, founds: Founds) => void): Promise<void> {
  const handles = new FileHandles();
  const kernels = placeable(input.job) ? wasmKernels() : undefined;
  const operands = operandsOf(input.job).length;
  const perOperand = readIntoBytes(Math.min(input.subChunk, input.count));
  // Per read slot and operand: stored bytes and decoded values; then the chunk's work memory.
  const regions = kernels
    ? await kernels.memory.take([...new Array<number>(4 * operands).fill(perOperand), 4 * (workFloats(operands) * Math.min(input.subChunk, input.count) + WORK_COUNTERS * operands) + 4096])
    : [];
  const work = kernels ? new KernelWork(kernels, regions[regions.length - 1]) : undefined;
  const readers = [0, 1].map((slot) => new OperandReader(handles, kernels ? { kernels, regions: regions.slice(slot * 2 * operands, (slot + 1) * 2 * operands) } : undefined));
  let done = 0;
  try {
    await streamUnits(
      elementRanges(input.start, input.count, input.subChunk),
      (range, slot) => {
        const founds = projectAll(input.founds, range.start);
        return readers[slot].chunk(input.job, range.start, range.count, founds).then((data) => ({ data, founds }));
      },
      ({ data, founds }) => {
        if (work) {
          work.reset();
          data.work = work;
        }
        visit(data, founds);
        done += data.count;
        ctx.progress(done / input.count);
      },
      ctx,
    );
  } finally {
    await handles.closeAll();
    for (const r of readers) r.dispose();
    if (kernels) kernels.memory.give(regions);
  }
}

/** The chunk's merged values as `dtype` bytes: encoded by the kernels when both are in their memory. */
function encodeChunk(dtype: DType, values: Float32Array, work: KernelWork | undefined): Uint8Array {
  if (work && (dtype === 'BF16' || dtype === 'F16')) {
    const into = work.floats(Math.ceil(values.length / 2));
    const bytes = into && encodeResident(work.kernels, dtype, values, into);
    if (bytes) return bytes;
  }
  if (dtype === 'F32' && LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return encodeFromFloat32(dtype, values);
}

function projectAll(founds: Founds, start: number): Founds {
  const out: Founds = {};
  for (const [id, found] of Object.entries(founds)) out[id] = projectForChunk(found, start);
  return out;
}

export const mergeTasks = {
  /** One stage's partial result over a range (partials of consecutive sub-chunks merged in order). */
  mergeStage: async (input: MergeStageInput, ctx: TaskContext): Promise<unknown> => {
    const own = input.founds[input.job.id] ?? {};
    const stage = stageOf(input.job, own, input.stageId);
    let partial: unknown;
    let first = true;
    await forEachSubChunk(input, ctx, (data, founds) => {
      const p = stage.map(input.job.view, founds[input.job.id] ?? {}, data);
      partial = first ? p : stage.merge(partial, p);
      first = false;
    });
    return partial;
  },

  /** The merged tensor's bytes over a range, in the job's output dtype. */
  mergeApply: async (input: MergeRangeInput, ctx: TaskContext): Promise<Uint8Array> => {
    const method = methodOf(input.job);
    const bytesPerElement = input.job.dtype === 'F32' ? 4 : input.job.dtype === 'F64' ? 8 : 2;
    const out = new Uint8Array(input.count * bytesPerElement);
    let offset = 0;
    await forEachSubChunk(input, ctx, (data, founds) => {
      const values = data.work?.floats(data.count) ?? new Float32Array(data.count);
      method.kernel.apply(input.job.view, founds[input.job.id] ?? {}, data, values);
      out.set(encodeChunk(input.job.dtype, values, data.work), offset);
      offset += data.count * bytesPerElement;
    });
    return out;
  },
};

export type MergeTasks = typeof mergeTasks;
