// Merge kernels for the worker pool (registered in src/worker/tasks.ts). A task covers one element
// range of one output tensor and walks it in sub-chunks with the shared read-ahead loop, so a
// worker holds two sub-chunks of every operand whatever the range.
import { promises as fsp, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { TaskContext } from '../engine/task';
import { wasmKernels } from '../kernels';
import { copiedOut, encodeResident, KernelWork } from '../kernels/merge';
import { decodesToFloat64, encodeFromFloat32, LITTLE_ENDIAN } from '../safetensors/dtypes';
import type { DType } from '../safetensors/types';
import { IO_BLOCKS_THREAD } from '../files';
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
  /** Identifies the merge run: tasks of one run share read handles on a thread. */
  session?: string;
}

export interface MergeApplyInput extends MergeRangeInput {
  /**
   * Where the range's bytes go in the output's partial file: the task writes them itself, so no
   * copy of them travels back to the main thread.
   */
  output: { file: string; position: number };
}

export interface MergeStageInput extends MergeRangeInput {
  stageId: string;
}

/**
 * Whether the job's chunks can live in the WebAssembly kernels' memory: every operand is a file
 * tensor that decodes to float32 (LoRA-patched and earlier-stage operands are computed in
 * JavaScript memory, and while the next sub-chunk is read, which the chunk's work memory is not for).
 */
export function placeable(job: TensorJob): boolean {
  return operandsOf(job).every((op) => op.kind === 'file' && !decodesToFloat64(op.ref.dtype));
}

/** Float32 temporaries per element a chunk of `operands` inputs may need (deltas, keys, kept copies, output, encoded bytes). */
function workFloats(operands: number): number {
  return 3 * operands + 4;
}

/** Counters beside them: two 65536-bin histograms per operand (rank cuts; breadcrumbs cuts twice). */
const WORK_COUNTERS = 2 * 65536;

/** Bytes of a task's work region in the kernels' memory for chunks of `elements` elements of `operands` inputs. */
export function workBytes(operands: number, elements: number): number {
  return 4 * (workFloats(operands) * elements + WORK_COUNTERS * operands) + 4096;
}

/** One merge's read handles on this thread and the tasks of that merge using them. */
interface SessionHandles {
  handles: FileHandles;
  active: number;
  idle?: ReturnType<typeof setTimeout>;
}

/**
 * Read handles kept across the tasks of one merge on this thread: opening and closing every input
 * for every task costs more than some tasks' compute. A merge's handles are closed once none of
 * its tasks has run for a second, or as soon as tasks of another merge arrive while none of its
 * own runs (so a merge never reads through a handle opened for an earlier one, whose files may
 * have been replaced since). Tasks of a merge still finishing keep theirs until they leave.
 */
class MergeHandles {
  private readonly sessions = new Map<string, SessionHandles>();

  enter(session: string | undefined): { handles: FileHandles; leave: () => void } {
    if (session === undefined) {
      const handles = new FileHandles();
      return { handles, leave: () => void handles.closeAll() };
    }
    for (const [id, other] of this.sessions) if (id !== session && other.active === 0) this.close(id, other);
    let shared = this.sessions.get(session);
    if (!shared) {
      shared = { handles: new FileHandles(), active: 0 };
      this.sessions.set(session, shared);
    }
    clearTimeout(shared.idle);
    shared.idle = undefined;
    shared.active++;
    const entry = shared;
    let left = false;
    return {
      handles: entry.handles,
      leave: () => {
        if (left) return;
        left = true;
        if (--entry.active > 0) return;
        entry.idle = setTimeout(() => this.close(session, entry), 1000);
        entry.idle.unref?.();
      },
    };
  }

  /** Sessions whose handles are open: none once every merge has been idle for a second. */
  get openSessions(): number {
    return this.sessions.size;
  }

  private close(id: string, entry: SessionHandles): void {
    clearTimeout(entry.idle);
    if (this.sessions.get(id) === entry) this.sessions.delete(id);
    void entry.handles.closeAll();
  }
}

const mergeHandles = new MergeHandles();

/**
 * Runs `visit` over the range's sub-chunks, reading the next sub-chunk's operands ahead, then
 * `finish` while the task's kernel memory is still its own.
 */
async function forEachSubChunk<T>(
  input: MergeRangeInput, ctx: TaskContext, visit: (data: ChunkData, founds: Founds) => void | Promise<void>, finish: (work: KernelWork | undefined) => T,
): Promise<T> {
  const kernels = placeable(input.job) ? wasmKernels() : undefined;
  const operands = operandsOf(input.job).length;
  const perOperand = readIntoBytes(Math.min(input.subChunk, input.count));
  // Per read slot and operand: stored bytes and decoded values; then the chunk's work memory.
  const regions = kernels
    ? await kernels.memory.take([...new Array<number>(4 * operands).fill(perOperand), workBytes(operands, Math.min(input.subChunk, input.count))], ctx)
    : [];
  // Nothing below can throw before the try that gives the regions and the handles back.
  const { handles, leave } = mergeHandles.enter(input.session);
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
      async ({ data, founds }) => {
        if (work) {
          work.reset();
          data.work = work;
        }
        await visit(data, founds);
        done += data.count;
        ctx.progress(done / input.count);
      },
      ctx,
    );
    return finish(work);
  } finally {
    leave();
    for (const r of readers) r.dispose();
    if (kernels) kernels.memory.give(regions);
  }
}

/** Writes all of `bytes` at `position`; blocking on worker threads, as reads are (IO_BLOCKS_THREAD). */
async function writeExactly(handle: FileHandle, bytes: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const bytesWritten = IO_BLOCKS_THREAD
      ? writeSync(handle.fd, bytes, done, bytes.byteLength - done, position + done)
      : (await handle.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten;
    if (bytesWritten === 0) throw new Error(`Writing "${file}" made no progress at byte ${position + done}.`);
    done += bytesWritten;
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
    return forEachSubChunk(input, ctx, (data, founds) => {
      const p = stage.map(input.job.view, founds[input.job.id] ?? {}, data);
      partial = first ? p : stage.merge(partial, p);
      first = false;
    }, (work) => {
      let sent = partial;
      if (stage.pack) {
        // A packable partial holds no temporaries (counters and copies live elsewhere), so
        // packing may take them.
        work?.reset();
        sent = stage.pack(partial, work);
      }
      return work ? copiedOut(work.kernels, sent) : sent;
    });
  },

  /** Writes the merged tensor over a range, in the job's output dtype, at `output`; returns the bytes written. */
  mergeApply: async (input: MergeApplyInput, ctx: TaskContext): Promise<number> => {
    const method = methodOf(input.job);
    const bytesPerElement = input.job.dtype === 'F32' ? 4 : input.job.dtype === 'F64' ? 8 : 2;
    const { file, position } = input.output;
    const handle = await fsp.open(file, 'r+');
    let offset = 0;
    try {
      return await forEachSubChunk(input, ctx, async (data, founds) => {
        const values = data.work?.floats(data.count) ?? new Float32Array(data.count);
        method.kernel.apply(input.job.view, founds[input.job.id] ?? {}, data, values);
        // Written before the next sub-chunk reuses the memory the bytes may be in.
        await writeExactly(handle, encodeChunk(input.job.dtype, values, data.work), position + offset, file);
        offset += data.count * bytesPerElement;
      }, () => offset);
    } finally {
      await handle.close();
    }
  },
};

export type MergeTasks = typeof mergeTasks;
