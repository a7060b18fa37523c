// Compares two checkpoints (and their task vectors over a common base) tensor by tensor on the
// worker pool. Tensors are matched by name; large ones are cut into element ranges that run on
// several workers, small ones are packed together so a model of many tiny tensors is not a
// thousand thread hops. The kernel's partial sums merge exactly, so the result does not depend on
// how the work was cut.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import { mapLimit, type TaskRunner } from '../engine/pool';
import { CancelledError } from '../engine/task';
import { samplePlan, type SampleRun } from '../sampling';
import { canDecode } from '../safetensors/dtypes';
import type { CheckpointLayout, TensorRef } from '../safetensors/types';
import { emptyPartial, finalizeMetrics, mergePartial, scalePartial, type DiffPartial } from './metrics';
import { parseTensorName } from '../tensors/names';
import { balancedTaskSize } from '../tensors/stream';
import type { DiffSegment, DiffTasks } from './tasks';
import type { DiffReport, DiffSummary, ShapeMismatch, SkippedTensor, TensorDiff } from './types';

export interface DiffOptions {
  /** The common ancestor of a and b: adds the task-vector metrics. */
  base?: CheckpointLayout;
  /** 'quick' compares the fixed sample of src/core/sampling.ts; 'exact' (default) every element. */
  mode?: 'exact' | 'quick';
  signal?: AbortSignal;
  /** Elements done / total, 0..1. */
  onProgress?(fraction: number): void;
  /** The report over the tensors finished so far, at most every PARTIAL_REPORT_INTERVAL_MS. */
  onPartial?(report: DiffReport): void;
  /**
   * Elements per task: larger tensors are split, smaller ones packed. By default at most
   * DEFAULT_TASK_ELEMENTS, balanced over the runner's threads. Tests make it small.
   */
  taskElements?: number;
  /** Elements per positional read inside a task. */
  chunkElements?: number;
}

/** Work per task: enough to amortise a thread hop, small enough to spread one big tensor over the pool. */
export const DEFAULT_TASK_ELEMENTS = 8 << 20;
/** A positional read costs about this many elements' worth of work, so runs of a sample are packed by count too. */
const RUN_COST_ELEMENTS = 4096;
/** Bounds the structured-clone size of one task's input. */
const MAX_SEGMENTS_PER_TASK = 512;
const PARTIAL_REPORT_INTERVAL_MS = 250;
/** Bump when a metric's definition changes, so cached reports are recomputed. */
const DIFF_ENGINE_VERSION = 1;
const EMPTY_PARTIAL: Readonly<DiffPartial> = Object.freeze(emptyPartial());

/** One tensor (or overlap block) to compare. */
interface Comparison {
  name: string;
  a: TensorRef;
  b: TensorRef;
  base?: TensorRef;
  /** Elements of the compared block. */
  numel: number;
  runs: SampleRun[];
  /** Index into shape_mismatch when this is an overlap block. */
  mismatch?: number;
  partial: DiffPartial;
  pendingSegments: number;
  result?: TensorDiff;
}

interface Task {
  segments: DiffSegment[];
  /** Comparison index of each segment. */
  owners: number[];
  elements: number;
}

export async function diffCheckpoints(runner: TaskRunner<DiffTasks>, a: CheckpointLayout, b: CheckpointLayout, options: DiffOptions = {}): Promise<DiffReport> {
  const mode = options.mode ?? 'exact';
  const base = options.base;
  if (options.signal?.aborted) throw new CancelledError();
  const plan = planComparisons(a, b, base, mode);
  const planned = plan.comparisons.reduce((n, c) => n + c.runs.reduce((m, r) => m + r.length, 0), 0);
  const tasks = packTasks(plan.comparisons, options.taskElements ?? balancedTaskSize(planned, DEFAULT_TASK_ELEMENTS, runner.concurrency));

  const buildReport = (): DiffReport => assembleReport(a, b, base, mode, plan);
  for (const comparison of plan.comparisons) {
    if (comparison.pendingSegments === 0) finish(comparison, plan, mode, base !== undefined);
  }

  const totalElements = tasks.reduce((n, t) => n + t.elements, 0);
  let doneElements = 0;
  const reportProgress = () => options.onProgress?.(totalElements > 0 ? Math.min(1, doneElements / totalElements) : 1);
  let lastPartialAt = Date.now();

  // A failing task stops the others: no new tasks start and running ones are cancelled. Its error
  // is the one reported, not the cancellations it caused.
  const stop = new AbortController();
  let failure: { error: unknown } | undefined;
  const forwardAbort = () => stop.abort();
  options.signal?.addEventListener('abort', forwardAbort, { once: true });
  try {
    await mapLimit(tasks, runner.concurrency * 2, async (task) => {
      let taskDone = 0;
      let output;
      try {
        output = await runner.run('diffChunk', { segments: task.segments, chunkElements: options.chunkElements }, {
          signal: stop.signal,
          onProgress: (fraction) => {
            const now = fraction * task.elements;
            doneElements += now - taskDone;
            taskDone = now;
            reportProgress();
          },
        });
      } catch (error) {
        if (!stop.signal.aborted) {
          failure = { error };
          stop.abort();
        }
        throw error;
      }
      doneElements += task.elements - taskDone;
      reportProgress();
      output.partials.forEach((partial, i) => {
        const comparison = plan.comparisons[task.owners[i]];
        mergePartial(comparison.partial, partial);
        if (--comparison.pendingSegments === 0) finish(comparison, plan, mode, base !== undefined);
      });
      if (options.onPartial && Date.now() - lastPartialAt >= PARTIAL_REPORT_INTERVAL_MS) {
        lastPartialAt = Date.now();
        options.onPartial(buildReport());
      }
    }, stop.signal);
  } catch (error) {
    // A cancel by the caller reads as a cancel, whichever lane noticed first.
    if (options.signal?.aborted) throw error instanceof CancelledError ? error : new CancelledError();
    throw failure ? failure.error : error;
  } finally {
    options.signal?.removeEventListener('abort', forwardAbort);
  }
  return buildReport();
}

interface Plan {
  comparisons: Comparison[];
  onlyInA: string[];
  onlyInB: string[];
  mismatches: ShapeMismatch[];
  baseMismatch: string[];
  skipped: SkippedTensor[];
}

function planComparisons(a: CheckpointLayout, b: CheckpointLayout, base: CheckpointLayout | undefined, mode: 'exact' | 'quick'): Plan {
  const inB = new Map(b.tensors.map((t) => [t.name, t]));
  const inBase = base ? new Map(base.tensors.map((t) => [t.name, t])) : undefined;
  const plan: Plan = { comparisons: [], onlyInA: [], onlyInB: [], mismatches: [], baseMismatch: [], skipped: [] };
  for (const ta of a.tensors) {
    const tb = inB.get(ta.name);
    if (!tb) {
      plan.onlyInA.push(ta.name);
      continue;
    }
    // One tensor of a type the kernels cannot read (complex C64) must not fail the whole diff.
    const undecodable = [ta, tb].find((t) => !canDecode(t.dtype));
    if (undecodable) {
      plan.skipped.push({ name: ta.name, reason: `${undecodable.dtype} values cannot be decoded` });
      continue;
    }
    let blockShape = ta.shape;
    let mismatch: number | undefined;
    if (!sameShape(ta.shape, tb.shape)) {
      const entry: ShapeMismatch = { name: ta.name, shapeA: ta.shape, shapeB: tb.shape };
      mismatch = plan.mismatches.push(entry) - 1;
      const rows = overlapRows(ta.shape, tb.shape);
      if (rows === undefined) continue;
      entry.overlapRows = rows;
      blockShape = [rows, ...ta.shape.slice(1)];
    }
    const numel = blockShape.reduce((n, d) => n * d, 1);
    let tc: TensorRef | undefined;
    if (inBase) {
      tc = inBase.get(ta.name);
      if (!tc || !covers(tc.shape, blockShape) || !canDecode(tc.dtype)) {
        plan.baseMismatch.push(ta.name);
        tc = undefined;
      }
    }
    const runs = mode === 'quick' ? samplePlan(ta.name, numel).runs : numel > 0 ? [{ start: 0, length: numel }] : [];
    // Empty tensors share one partial, never merged into: a header of a million zero-size
    // tensors must not cost a million sets of sums.
    const partial = runs.length > 0 ? emptyPartial() : EMPTY_PARTIAL;
    plan.comparisons.push({ name: ta.name, a: ta, b: tb, base: tc, numel, runs, mismatch, partial, pendingSegments: 0 });
  }
  const inA = new Set(a.tensors.map((t) => t.name));
  plan.onlyInB = b.tensors.filter((t) => !inA.has(t.name)).map((t) => t.name);
  return plan;
}

function sameShape(x: number[], y: number[]): boolean {
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/** Rows both tensors have when they differ only in the first dimension (a resized vocabulary). */
function overlapRows(x: number[], y: number[]): number | undefined {
  if (x.length === 0 || x.length !== y.length) return undefined;
  if (!x.slice(1).every((d, i) => d === y[i + 1])) return undefined;
  return Math.min(x[0], y[0]);
}

/** Whether the leading block of a tensor shaped `shape` can stand for a block shaped `block`. */
function covers(shape: number[], block: number[]): boolean {
  if (shape.length !== block.length) return false;
  if (shape.length === 0) return true;
  return shape[0] >= block[0] && shape.slice(1).every((d, i) => d === block[i + 1]);
}

/**
 * Cuts the comparisons' runs into tasks of about `taskElements` (a run's weight counts its read):
 * a big tensor becomes several tasks, consecutive small ones share one.
 */
function packTasks(comparisons: Comparison[], taskElements: number): Task[] {
  const budget = Math.max(1, Math.floor(taskElements));
  const runCost = Math.min(RUN_COST_ELEMENTS, Math.floor(budget / 8));
  const tasks: Task[] = [];
  let current: Task = { segments: [], owners: [], elements: 0 };
  let weight = 0;
  const flush = () => {
    if (current.segments.length > 0) tasks.push(current);
    current = { segments: [], owners: [], elements: 0 };
    weight = 0;
  };
  comparisons.forEach((comparison, index) => {
    let segment: DiffSegment | undefined;
    for (const run of comparison.runs) {
      let start = run.start;
      let left = run.length;
      while (left > 0) {
        const full = weight + runCost >= budget && current.segments.length > 0;
        if (full || (!segment && current.segments.length >= MAX_SEGMENTS_PER_TASK)) {
          flush();
          segment = undefined;
        }
        const take = Math.min(left, Math.max(1, budget - weight - runCost));
        if (!segment) {
          segment = { a: comparison.a, b: comparison.b, base: comparison.base, runs: [] };
          current.segments.push(segment);
          current.owners.push(index);
          comparison.pendingSegments++;
        }
        segment.runs.push({ start, length: take });
        current.elements += take;
        weight += take + runCost;
        start += take;
        left -= take;
      }
    }
  });
  flush();
  return tasks;
}

function finish(comparison: Comparison, plan: Plan, mode: 'exact' | 'quick', withBase: boolean): void {
  const { layer, module, group } = parseTensorName(comparison.name);
  const read = comparison.partial.count + comparison.partial.nonfinite;
  const estimate = estimatePartial(comparison, mode);
  const metrics = finalizeMetrics(estimate, withBase && comparison.base !== undefined);
  comparison.result = {
    name: comparison.name,
    layer,
    module,
    group,
    numel: comparison.numel,
    compared: read,
    nonfinite: comparison.partial.nonfinite,
    ...metrics,
    ...(mode === 'quick' ? { sampled: true } : {}),
  };
  if (comparison.partial.count === 0 && comparison.partial.nonfinite > 0) {
    comparison.result.not_comparable = 'every position holds NaN or infinity in a or b';
  }
  if (comparison.mismatch !== undefined) plan.mismatches[comparison.mismatch].overlap = comparison.result;
}

/** The exact sums, or in quick mode the sample's sums scaled to the whole block. */
function estimatePartial(comparison: Comparison, mode: 'exact' | 'quick'): DiffPartial {
  const read = comparison.partial.count + comparison.partial.nonfinite;
  if (mode === 'exact' || read === 0 || read === comparison.numel) return comparison.partial;
  return scalePartial(comparison.partial, comparison.numel / read);
}

function assembleReport(a: CheckpointLayout, b: CheckpointLayout, base: CheckpointLayout | undefined, mode: 'exact' | 'quick', plan: Plan): DiffReport {
  const done = plan.comparisons.filter((c) => c.result);
  const total = emptyPartial();
  let numel = 0;
  for (const comparison of done) {
    mergePartial(total, estimatePartial(comparison, mode));
    numel += comparison.numel;
  }
  // Task-vector metrics in the summary only over blocks that had a base.
  const withBase = base !== undefined && done.some((c) => c.base);
  const metrics = finalizeMetrics(total, false);
  const nonfinite = done.reduce((n, c) => n + c.partial.nonfinite, 0);
  const notComparable = done.reduce((n, c) => n + (c.result!.not_comparable ? 1 : 0), 0);
  const summary: DiffSummary = {
    tensors: done.length,
    numel,
    rel_l2: metrics.rel_l2,
    cosine: metrics.cosine,
    frac_changed: metrics.frac_changed,
    l2_diff: metrics.l2_diff,
    max_abs_diff: metrics.max_abs_diff,
    nonfinite,
    mode,
  };
  if (notComparable > 0) summary.not_comparable = notComparable;
  if (withBase) {
    const tv = finalizeMetrics(taskVectorTotal(done, mode), true);
    Object.assign(summary, { cosine_tv: tv.cosine_tv, sign_agreement: tv.sign_agreement, conflict: tv.conflict, rel_norm_a: tv.rel_norm_a, rel_norm_b: tv.rel_norm_b });
  }
  const report: DiffReport = {
    a: a.path,
    b: b.path,
    tensors: done.filter((c) => c.mismatch === undefined).map((c) => c.result!),
    only_in_a: plan.onlyInA,
    only_in_b: plan.onlyInB,
    shape_mismatch: plan.mismatches.map((m) => ({ ...m })),
    summary,
  };
  if (base) {
    report.base = base.path;
    report.base_mismatch = plan.baseMismatch;
  }
  if (plan.skipped.length > 0) report.skipped = plan.skipped;
  return report;
}

/** Sums over the blocks that had a base, so a tensor missing from the base does not dilute conflict. */
function taskVectorTotal(done: Comparison[], mode: 'exact' | 'quick'): DiffPartial {
  const total = emptyPartial();
  for (const comparison of done) if (comparison.base) mergePartial(total, estimatePartial(comparison, mode));
  return total;
}

/**
 * A key that changes whenever an input's weights may have: the paths, sizes and modification
 * times of every weight and index file. The extension keeps a report while the key is unchanged.
 */
export async function diffCacheKey(a: CheckpointLayout, b: CheckpointLayout, base?: CheckpointLayout): Promise<string> {
  const describe = async (layout: CheckpointLayout) => {
    const files = layout.indexFile ? [...layout.files, layout.indexFile] : layout.files;
    return {
      path: layout.path,
      files: await Promise.all(files.map(async (file) => {
        const stat = await fs.stat(file);
        return [file, stat.size, stat.mtimeMs];
      })),
    };
  };
  const identity = { version: DIFF_ENGINE_VERSION, a: await describe(a), b: await describe(b), base: base ? await describe(base) : null };
  return crypto.createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}
