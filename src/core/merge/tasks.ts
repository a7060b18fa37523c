// Merge kernels for the worker pool (registered in src/worker/tasks.ts). A task covers one element
// range of one output tensor and walks it in sub-chunks with the shared read-ahead loop, so a
// worker holds two sub-chunks of every operand whatever the range.
import type { TaskContext } from '../engine/task';
import { encodeFromFloat32 } from '../safetensors/dtypes';
import { elementRanges, FileHandles, streamUnits } from '../tensors/stream';
import { methodOf, OperandReader, stageOf, type Founds } from './compute';
import type { TensorJob } from './jobs';
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

/** Runs `visit` over the range's sub-chunks, reading the next sub-chunk's operands ahead. */
async function forEachSubChunk(input: MergeRangeInput, ctx: TaskContext, visit: (data: ChunkData, founds: Founds) => void): Promise<void> {
  const handles = new FileHandles();
  const readers = [new OperandReader(handles), new OperandReader(handles)];
  let done = 0;
  try {
    await streamUnits(
      elementRanges(input.start, input.count, input.subChunk),
      (range, slot) => {
        const founds = projectAll(input.founds, range.start);
        return readers[slot].chunk(input.job, range.start, range.count, founds).then((data) => ({ data, founds }));
      },
      ({ data, founds }) => {
        visit(data, founds);
        done += data.count;
        ctx.progress(done / input.count);
      },
      ctx,
    );
  } finally {
    await handles.closeAll();
    for (const r of readers) r.dispose();
  }
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
      const values = new Float32Array(data.count);
      method.kernel.apply(input.job.view, founds[input.job.id] ?? {}, data, values);
      out.set(encodeFromFloat32(input.job.dtype, values), offset);
      offset += data.count * bytesPerElement;
    });
    return out;
  },
};

export type MergeTasks = typeof mergeTasks;
