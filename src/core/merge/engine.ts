// Runs a merge plan on the worker pool. The output header is planned first (shards from specs
// alone); each tensor is split into element ranges, its whole-tensor statistics come from stage
// passes over those ranges, and its merged bytes are written at their planned offsets. At most
// `runner.concurrency` ranges are in flight, so memory is bounded by workers x range size whatever
// the model size. Everything is written into `<out>.partial/`, renamed into place when complete,
// and removed on failure or cancel; inputs are only ever read.
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { mapLimit, type TaskRunner } from '../engine/pool';
import { CancelledError } from '../engine/task';
import { planShards, SafetensorsFileWriter, type TensorSpec } from '../safetensors';
import { byteLengthOf, dtypeBits } from '../safetensors/dtypes';
import { readTensorBytes } from '../safetensors/reader';
import { elementRanges } from '../tensors/stream';
import { methodOf, type Founds } from './compute';
import { innerJobs, needsWholeRows, operandsOf, type TensorJob } from './jobs';
import { inputIdentities, recipeHash, writeSideFiles } from './output';
import type { MergePlan, PlannedTensor } from './plan';
import { SUM_BLOCK } from './exact';
import { sliceForRange } from './select';
import type { MergeTasks } from './tasks';
import { beginPartialFolder, checkOutputFolder, finishPartialFolder } from './outputFolder';

export { freeBytes, MergeOutputError } from './outputFolder';

export const DEFAULT_SHARD_BYTES = 5 * 1000 ** 3;
/**
 * Elements per task: 8 MiB of every bf16 operand. A task's memory is its sub-chunks' whatever its
 * size, while each task costs messages, counters and a partial to merge: fewer, larger tasks.
 */
export const DEFAULT_CHUNK_ELEMENTS = 1 << 22;
/** Elements per sub-chunk inside a task (the read-ahead unit). */
export const SUB_CHUNK_ELEMENTS = 1 << 18;

export interface MergeProgress {
  tensorsDone: number;
  tensors: number;
  bytesDone: number;
  bytes: number;
  elapsedSeconds: number;
  /** Seconds left at the current rate, once there is a rate. */
  etaSeconds?: number;
}

export interface ExecuteOptions {
  runner: TaskRunner<MergeTasks>;
  out: string;
  /** Replace an existing output folder (it is removed only once the new one is complete). */
  force?: boolean;
  shardBytes?: number;
  chunkElements?: number;
  signal?: AbortSignal;
  onProgress?: (p: MergeProgress) => void;
  graftVersion: string;
}

export interface MergeResult {
  out: string;
  tensors: number;
  bytes: number;
  seconds: number;
  files: string[];
}

function lcm(a: number, b: number): number {
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  return (a / gcd(a, b)) * b;
}

/** Element ranges of a job: aligned to blocks (exact sums, rank cuts) and, for row-wise jobs, to rows. */
export function jobRanges(job: TensorJob, chunkElements: number): { start: number; count: number }[] {
  const row = job.view.rowLength || 1;
  const blocky = [job, ...innerJobs(job)].some((j) => methodOf(j).kernel.nextStage !== undefined);
  const unit = needsWholeRows(job) ? (blocky ? lcm(row, SUM_BLOCK) : row) : SUM_BLOCK;
  const size = Math.max(unit, Math.floor(chunkElements / unit) * unit);
  return elementRanges(0, job.numel, size);
}

function subChunkFor(job: TensorJob, range: number): number {
  const row = job.view.rowLength || 1;
  const unit = needsWholeRows(job) ? row : SUM_BLOCK;
  const size = Math.max(unit, Math.floor(SUB_CHUNK_ELEMENTS / unit) * unit);
  return Math.min(size, Math.max(range, unit));
}

/**
 * A counting semaphore: at most `limit` tasks run at once across all tensors. A finishing task
 * hands its slot straight to the next waiter, and settled() tells when nothing runs or waits, so
 * a failed or cancelled merge can wait for every task it started before it cleans up.
 */
class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly idle: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else if (--this.active === 0) for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  /** Resolves once no task runs or waits (a waiter exists only while tasks run). */
  settled(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }
}

/** Checks that can fail before anything is written: existing output, leftover partial, disk space. */
export async function checkOutput(plan: MergePlan, out: string, force: boolean): Promise<void> {
  await checkOutputFolder(out, force, plan.totals.outputBytes);
}

export async function executeMerge(plan: MergePlan, options: ExecuteOptions): Promise<MergeResult> {
  const started = Date.now();
  const out = path.resolve(options.out);
  const partial = `${out}.partial`;
  const { runner } = options;
  const chunkElements = Math.max(1, Math.floor(options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS));
  // Tasks of this run share read handles on each worker thread (see tasks.ts).
  const session = randomUUID();
  const specs: TensorSpec[] = plan.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const shardPlan = planShards(specs, options.shardBytes ?? DEFAULT_SHARD_BYTES);
  await checkOutput(plan, out, options.force ?? false);
  // Hundreds of small reads on this thread: done while the workers merge, not after them.
  const identities = inputIdentities(plan);
  identities.catch(() => undefined);
  await beginPartialFolder(out);
  const single = shardPlan.shards.length === 1;
  const metadata = { format: 'pt', graft_recipe_sha256: recipeHash(plan.recipe.text) };
  const writers: SafetensorsFileWriter[] = [];
  const writerOf = new Map<string, SafetensorsFileWriter>();
  const slots = new Slots(Math.max(1, runner.concurrency));
  const total = plan.totals.outputBytes;
  let bytesDone = 0;
  let tensorsDone = 0;
  const report = () => {
    if (!options.onProgress) return;
    const elapsedSeconds = (Date.now() - started) / 1000;
    const rate = bytesDone / Math.max(elapsedSeconds, 1e-3);
    options.onProgress({
      tensorsDone, tensors: plan.tensors.length, bytesDone, bytes: total, elapsedSeconds,
      etaSeconds: bytesDone > 0 && elapsedSeconds > 0.5 ? (total - bytesDone) / rate : undefined,
    });
  };

  // Stops this run's tasks on cancel and on the first failure alike: the other tasks must not go
  // on reading, computing and writing into a partial folder that is about to be removed.
  const stop = new AbortController();
  const signal = stop.signal;
  const cancel = () => stop.abort();
  options.signal?.addEventListener('abort', cancel, { once: true });
  if (options.signal?.aborted) stop.abort();
  try {
    for (const shard of shardPlan.shards) {
      const writer = await SafetensorsFileWriter.create(path.join(partial, single ? 'model.safetensors' : shard.file), shard.specs, metadata);
      writers.push(writer);
      for (const spec of shard.specs) writerOf.set(spec.name, writer);
    }
    report();

    const founds: Founds = {};
    const prepared = new Map<string, Promise<void>>();

    /** Stage passes of one job (after those of the jobs it reads), stored in founds[job.id]. */
    const prepare = (job: TensorJob): Promise<void> => {
      let pending = prepared.get(job.id);
      if (!pending) {
        pending = (async () => {
          for (const inner of operandsOf(job)) if (inner.kind === 'job') await prepare(inner.job);
          const kernel = methodOf(job).kernel;
          const found: Record<string, unknown> = {};
          founds[job.id] = found;
          const ranges = jobRanges(job, chunkElements);
          for (let stage = kernel.nextStage?.(job.view, found); stage; stage = kernel.nextStage?.(job.view, found)) {
            const s = stage;
            // Partials are merged in range order as soon as they are contiguous, so few are held.
            const arrived = new Map<number, unknown>();
            let next = 0;
            let merged: unknown;
            await Promise.all(ranges.map((range, i) => slots.run(async () => {
              signal.throwIfAborted();
              const partial = await runner.run('mergeStage', { job, founds: foundsFor(job, range.start, range.count), stageId: s.id, ...range, subChunk: subChunkFor(job, range.count), session }, { signal });
              arrived.set(i, partial);
              while (arrived.has(next)) {
                const p = arrived.get(next);
                arrived.delete(next);
                merged = next === 0 ? p : s.merge(merged, p);
                next++;
              }
            })));
            found[s.id] = s.finalize(merged, job.view, found);
          }
        })();
        prepared.set(job.id, pending);
      }
      return pending;
    };

    const foundsFor = (job: TensorJob, start: number, count: number): Founds => {
      const sliced: Founds = {};
      for (const j of [job, ...innerJobs(job)]) sliced[j.id] = sliceForRange(founds[j.id] ?? {}, start, count);
      return sliced;
    };

    const writeTensor = async (t: PlannedTensor) => {
      const writer = writerOf.get(t.name)!;
      if (t.copy) {
        const ref = t.copy;
        const bytesPerElement = dtypeBits(ref.dtype) / 8;
        for (const range of elementRanges(0, ref.numel, Math.max(1, Math.floor((chunkElements * 4) / Math.max(bytesPerElement, 1 / 8))))) {
          await slots.run(async () => {
            signal.throwIfAborted();
            const bytes = await readTensorBytes(ref, range.start, range.count);
            await writer.writeTensor(t.name, bytes, byteLengthOf(ref.dtype, range.start));
            bytesDone += bytes.byteLength;
          });
        }
      } else {
        const job = t.job!;
        await prepare(job);
        const elementBytes = byteLengthOf(job.dtype, 1);
        await Promise.all(jobRanges(job, chunkElements).map((range) => slots.run(async () => {
          signal.throwIfAborted();
          // The task writes its bytes into the partial file itself; the writer records them.
          const byteOffset = range.start * elementBytes;
          const output = { file: writer.partialPath, position: writer.positionOf(t.name, byteOffset, range.count * elementBytes) };
          const written = await runner.run('mergeApply', { job, founds: foundsFor(job, range.start, range.count), ...range, subChunk: subChunkFor(job, range.count), session, output }, { signal });
          writer.recordWritten(t.name, byteOffset, written);
          bytesDone += written;
          report();
        })));
      }
      tensorsDone++;
      report();
    };

    // A few tensors at a time keep every worker busy while small tensors finish quickly.
    await mapLimit(plan.tensors, Math.max(2, runner.concurrency * 2), writeTensor, signal);
    if (signal.aborted) throw new CancelledError();
    for (const writer of writers) await writer.commit();
    if (!single) await fsp.writeFile(path.join(partial, shardPlan.indexFile), shardPlan.indexJson);
    await writeSideFiles(plan, partial, out, options.graftVersion, await identities);
    await finishPartialFolder(partial, out, options.force ?? false);
  } catch (error) {
    // Every task this run started has settled before its partial folder goes.
    stop.abort();
    await slots.settled();
    await Promise.all(writers.map((w) => w.abort()));
    await fsp.rm(partial, { recursive: true, force: true });
    if (options.signal?.aborted && !(error instanceof CancelledError)) throw new CancelledError();
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', cancel);
  }
  return {
    out,
    tensors: plan.tensors.length,
    bytes: total,
    seconds: (Date.now() - started) / 1000,
    files: single ? ['model.safetensors'] : [...shardPlan.shards.map((s) => s.file), shardPlan.indexFile],
  };
}
