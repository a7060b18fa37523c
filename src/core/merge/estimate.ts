// What `graft merge --plan` promises before any compute: peak memory from the engine's bounds and
// a time estimate from a short calibration of the plan's own kernels on this machine, on the
// kernels the merge will run (WebAssembly, with the chunk in their memory, or JavaScript).
import { selectedKernels, wasmKernels, type KernelChoice, type KernelRegion, type Kernels } from '../kernels';
import { KernelWork } from '../kernels/merge';
import { methodOf } from './compute';
import { DEFAULT_CHUNK_ELEMENTS, SUB_CHUNK_ELEMENTS } from './engine';
import { operandsOf, type TensorJob } from './jobs';
import type { ChunkData, Found } from './methods/types';
import type { MergePlan } from './plan';
import { placeable, workBytes } from './tasks';

/** Assumed read rate when the inputs are not in the page cache: a conservative SSD. */
const READ_BYTES_PER_SECOND = 1.5e9;
const CALIBRATION_ELEMENTS = 1 << 16;
/** The process itself: code, the plan, the pool's threads. */
const BASELINE_BYTES = 96 * 1024 * 1024;

export interface MergeEstimate {
  peakBytes: number;
  seconds: number;
  /** Elements per second per worker measured for each method of the plan. */
  rates: Record<string, number>;
}

function syntheticChunk(job: TensorJob): ChunkData {
  const values = (seed: number) => {
    const a = new Float32Array(CALIBRATION_ELEMENTS);
    let x = seed;
    for (let i = 0; i < a.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      a[i] = (x / 4294967296 - 0.5) * 0.02;
    }
    return a;
  };
  return {
    start: 0,
    count: CALIBRATION_ELEMENTS,
    base: job.base ? values(1) : undefined,
    target: job.target ? values(2) : undefined,
    models: job.models.map((_, i) => values(3 + i)),
  };
}

/**
 * The calibration chunk in the kernels' memory, as a merge task places it: operands and a work
 * region; undefined when the regions are not free (the JavaScript loops then calibrate).
 */
function placeChunk(kernels: Kernels, chunk: ChunkData): { chunk: ChunkData; regions: KernelRegion[] } | undefined {
  const arrays = [chunk.base, chunk.target, ...chunk.models].filter((a): a is Float32Array => a !== undefined);
  const regions = kernels.memory.takeNow([...arrays.map((a) => a.byteLength), workBytes(arrays.length, chunk.count)]);
  if (!regions) return undefined;
  const placed = arrays.map((a, i) => {
    const view = regions[i].floats(a.length);
    view.set(a);
    return view;
  });
  let next = 0;
  const take = (a: Float32Array | undefined) => (a ? placed[next++] : undefined);
  const base = take(chunk.base);
  const target = take(chunk.target);
  const models = chunk.models.map((m) => take(m)!);
  return { chunk: { ...chunk, base, target, models, work: new KernelWork(kernels, regions[regions.length - 1]) }, regions };
}

/** Stages and apply of `job`'s method on synthetic data of one calibration chunk: elements per second. */
function calibrate(job: TensorJob, kernelChoice: KernelChoice): number {
  const kernel = methodOf(job).kernel;
  const view = { ...job.view, numel: CALIBRATION_ELEMENTS, shape: [CALIBRATION_ELEMENTS / Math.min(job.view.rowLength, CALIBRATION_ELEMENTS), Math.min(job.view.rowLength, CALIBRATION_ELEMENTS)], rowLength: Math.min(job.view.rowLength, CALIBRATION_ELEMENTS) };
  const kernels = kernelChoice === 'webassembly' && placeable(job) ? wasmKernels() : undefined;
  const synthetic = syntheticChunk(job);
  const placed = kernels ? placeChunk(kernels, synthetic) : undefined;
  const chunk = placed?.chunk ?? synthetic;
  const out = chunk.work?.floats(CALIBRATION_ELEMENTS) ?? new Float32Array(CALIBRATION_ELEMENTS);
  const once = () => {
    chunk.work?.reset();
    // Temporaries start over each run, above the output, which keeps the first place.
    if (chunk.work) chunk.work.floats(CALIBRATION_ELEMENTS);
    const found: Found = {};
    for (let stage = kernel.nextStage?.(view, found); stage; stage = kernel.nextStage?.(view, found)) {
      found[stage.id] = stage.finalize(stage.map(view, found, chunk), view, found);
    }
    kernel.apply(view, found, chunk, out);
  };
  try {
    once(); // warm the JIT: the first run measures compilation, not the kernel
    const started = process.hrtime.bigint();
    let runs = 0;
    do {
      once();
      runs++;
    } while (Number(process.hrtime.bigint() - started) < 20e6 && runs < 50);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return (runs * CALIBRATION_ELEMENTS) / seconds;
  } finally {
    if (placed) kernels!.memory.give(placed.regions);
  }
}

/** `kernels`: those the pool's threads run (by default this thread's choice, see selectedKernels). */
export function estimateMerge(plan: MergePlan, workers: number, kernels: KernelChoice = selectedKernels()): MergeEstimate {
  const rates: Record<string, number> = {};
  let computeSeconds = 0;
  let maxOperands = 1;
  for (const t of plan.tensors) {
    if (!t.job) continue;
    const job = t.job;
    maxOperands = Math.max(maxOperands, operandsOf(job).length);
    if (rates[job.method] === undefined) {
      try {
        rates[job.method] = calibrate(job, kernels);
      } catch {
        rates[job.method] = 5e7; // a method that cannot run on synthetic data: assume a typical rate
      }
    }
    computeSeconds += job.numel / rates[job.method];
  }
  const w = Math.max(1, workers);
  // Per worker: two read-ahead slots of every operand's sub-chunk (read buffer and float copy),
  // the merged range's bytes, and the range's float32 output.
  const perWorker = 2 * (maxOperands + 1) * SUB_CHUNK_ELEMENTS * 4 * 2 + DEFAULT_CHUNK_ELEMENTS * 8;
  return {
    peakBytes: BASELINE_BYTES + w * perWorker,
    seconds: computeSeconds / w + (plan.totals.inputBytes + plan.totals.outputBytes) / READ_BYTES_PER_SECOND,
    rates,
  };
}
