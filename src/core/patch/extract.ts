// `graft patch extract`: d = model - base for every tensor that differs, streamed on the worker
// pool in element ranges. With a density below 1 each tensor keeps its top-k differences by
// magnitude (k = density x elements), the threshold found exactly from two 16-bit histograms of
// the float32 magnitudes; ties at the threshold are all kept, so slightly more than k may remain.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { mapLimit, type TaskRunner } from '../engine/pool';
import { existsPath } from '../merge/outputFolder';
import { SafetensorsFileWriter, type TensorSpec } from '../safetensors';
import { byteLengthOf, canDecode } from '../safetensors/dtypes';
import { readTensorBytes } from '../safetensors/reader';
import type { CheckpointLayout, DType, TensorRef } from '../safetensors/types';
import { weightIdentity } from '../tensors/identity';
import { elementRanges } from '../tensors/stream';
import { PATCH_FORMAT_VERSION, PatchError } from './format';
import { HISTOGRAM_BINS, wideDifference, type PatchScanOutput, type PatchTasks } from './tasks';

/** Elements per task. */
export const PATCH_CHUNK_ELEMENTS = 1 << 21;
export const PATCH_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16', 'F64'];

export interface ExtractOptions {
  runner: TaskRunner<PatchTasks>;
  model: CheckpointLayout;
  base: CheckpointLayout;
  out: string;
  /** Stored dtype; default: each tensor's dtype in the model. */
  dtype?: DType;
  /** Share of elements kept per tensor (0 < density <= 1); default 1. */
  density?: number;
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  graftVersion: string;
  chunkElements?: number;
}

export interface ExtractResult {
  out: string;
  tensors: number;
  unchanged: number;
  elements: number;
  kept: number;
  /** Stored elements that base + d does not give back exactly in the model's dtype (the patch dtype's rounding). */
  inexact: number;
  bytes: number;
  baseWeights: string;
  sourceWeights: string;
}

interface Candidate {
  model: TensorRef;
  base: TensorRef;
  dtype: DType;
  wide: boolean;
  sums: PatchScanOutput;
  thresholdBits: number;
  keptCount: number;
}

const FLOAT_DTYPES = new Set<DType>(['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4']);

/** A path as a patch or provenance file should name it: relative to the folder holding `from`. */
export function referenceFrom(fromDir: string, target: string): string {
  return path.relative(fromDir, target).split(path.sep).join('/') || '.';
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks the model and base hold the same tensors; the problems are all named at once. */
export function matchTensors(model: CheckpointLayout, base: CheckpointLayout): { model: TensorRef; base: TensorRef }[] {
  const inBase = new Map(base.tensors.map((t) => [t.name, t]));
  const problems: string[] = [];
  const pairs: { model: TensorRef; base: TensorRef }[] = [];
  for (const t of model.tensors) {
    const b = inBase.get(t.name);
    if (!b) problems.push(`"${t.name}" is in the model but not in the base`);
    else if (!sameShape(t.shape, b.shape)) problems.push(`"${t.name}" is [${t.shape.join(', ')}] in the model but [${b.shape.join(', ')}] in the base`);
    else pairs.push({ model: t, base: b });
  }
  const inModel = new Set(model.tensors.map((t) => t.name));
  for (const t of base.tensors) if (!inModel.has(t.name)) problems.push(`"${t.name}" is in the base but not in the model`);
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw new PatchError(`The model and the base do not have the same tensors, so a patch could not rebuild the model: ${shown}. Is "${base.path}" the model's base?`);
  }
  return pairs;
}

/** The float32 magnitude bits at or above which the top `k` of a histogrammed set lie. */
function thresholdFrom(histogram: Uint32Array, k: number): { bin: number; above: number } {
  let above = 0;
  for (let bin = HISTOGRAM_BINS - 1; bin >= 0; bin--) {
    if (above + histogram[bin] >= k) return { bin, above };
    above += histogram[bin];
  }
  return { bin: 0, above };
}

export async function extractPatch(options: ExtractOptions): Promise<ExtractResult> {
  const { runner, model, base, signal } = options;
  const out = path.resolve(options.out);
  const density = options.density ?? 1;
  if (!(density > 0 && density <= 1)) throw new PatchError(`The density must be above 0 and at most 1 (the share of each tensor's elements to keep), not ${density}.`);
  if (options.dtype && !PATCH_DTYPES.includes(options.dtype)) throw new PatchError(`A patch can be stored as ${PATCH_DTYPES.join(', ')}, not ${options.dtype}.`);
  if ((await existsPath(out)) && !options.force) throw new PatchError(`"${options.out}" already exists. Choose another file, or pass --force to replace it once the new patch is complete.`);
  if ([...model.files, ...base.files].some((f) => path.resolve(f) === out)) throw new PatchError(`The patch would overwrite one of its inputs ("${options.out}"); choose another file.`);
  const chunk = Math.max(1024, Math.floor(options.chunkElements ?? PATCH_CHUNK_ELEMENTS));

  const candidates: Candidate[] = [];
  let unchanged = 0;
  for (const pair of matchTensors(model, base)) {
    const float = FLOAT_DTYPES.has(pair.model.dtype) && FLOAT_DTYPES.has(pair.base.dtype) && canDecode(pair.model.dtype) && canDecode(pair.base.dtype);
    if (!float) {
      // Integer and boolean tensors (position ids, masks) cannot carry a difference; they must be equal.
      const [a, b] = await Promise.all([readTensorBytes(pair.model), readTensorBytes(pair.base)]);
      if (pair.model.dtype !== pair.base.dtype || Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) {
        throw new PatchError(`"${pair.model.name}" (${pair.model.dtype}) differs between the model and the base, and a patch holds differences of floating-point tensors only.`);
      }
      unchanged++;
      continue;
    }
    const dtype = options.dtype ?? (PATCH_DTYPES.includes(pair.model.dtype) ? pair.model.dtype : 'F32');
    candidates.push({ ...pair, dtype, wide: wideDifference(dtype, pair.model.dtype, pair.base.dtype), sums: { changed: 0, sumD2: 0, sumBase2: 0 }, thresholdBits: 0, keptCount: 0 });
  }

  const units = candidates.flatMap((c, index) => elementRanges(0, c.model.numel, chunk).map((range) => ({ index, ...range })));
  const passes = density < 1 ? 3 : 2;
  const total = Math.max(1, units.reduce((n, u) => n + u.count, 0) * passes);
  let done = 0;
  const advance = (count: number) => {
    done += count;
    options.onProgress?.(Math.min(1, done / total));
  };
  const lanes = Math.max(2, runner.concurrency * 2);

  // Pass 1: which tensors changed, their norms and (sparsifying) the high half of the magnitude histogram.
  const highs = new Map<number, Uint32Array>();
  await mapLimit(units, lanes, async (u) => {
    const c = candidates[u.index];
    const r = await runner.run('patchScan', { model: c.model, base: c.base, start: u.start, count: u.count, pass: 'sums', histogram: density < 1, wide: c.wide }, { signal });
    c.sums.changed += r.changed;
    c.sums.sumD2 += r.sumD2;
    c.sums.sumBase2 += r.sumBase2;
    if (r.histogram) {
      const h = highs.get(u.index);
      if (!h) highs.set(u.index, r.histogram);
      else for (let i = 0; i < HISTOGRAM_BINS; i++) h[i] += r.histogram[i];
    }
    advance(u.count);
  }, signal);
  const changed = candidates.filter((c) => c.sums.changed > 0);
  unchanged += candidates.length - changed.length;
  if (changed.length === 0) throw new PatchError(`The model and the base hold the same weights: there is no difference to store.`);

  // Pass 2 (sparsifying): the low half of the histogram inside each tensor's threshold bin.
  for (const c of changed) c.keptCount = c.sums.changed;
  if (density < 1) {
    const high = new Map<Candidate, { bin: number; above: number; k: number }>();
    for (const [index, h] of highs) {
      const c = candidates[index];
      const k = Math.max(1, Math.ceil(density * c.model.numel));
      if (k < c.sums.changed) high.set(c, { ...thresholdFrom(h, k), k });
    }
    const lows = new Map<Candidate, Uint32Array>();
    await mapLimit(units, lanes, async (u) => {
      const c = candidates[u.index];
      const h = high.get(c);
      if (h) {
        const r = await runner.run('patchScan', { model: c.model, base: c.base, start: u.start, count: u.count, pass: 'low', highBin: h.bin, wide: c.wide }, { signal });
        const low = lows.get(c);
        if (!low) lows.set(c, r.histogram!);
        else for (let i = 0; i < HISTOGRAM_BINS; i++) low[i] += r.histogram![i];
      }
      advance(u.count);
    }, signal);
    for (const [c, h] of high) {
      const low = lows.get(c)!;
      const t = thresholdFrom(low, h.k - h.above);
      c.thresholdBits = ((h.bin << 16) | t.bin) >>> 0;
      let kept = h.above;
      for (let i = t.bin; i < HISTOGRAM_BINS; i++) kept += low[i];
      c.keptCount = kept;
    }
  }

  const [baseWeights, sourceWeights] = await Promise.all([weightIdentity(base), weightIdentity(model)]);
  const patchedElements = changed.reduce((n, c) => n + c.model.numel, 0);
  const kept = changed.reduce((n, c) => n + c.keptCount, 0);
  const dtypes = [...new Set(changed.map((c) => c.dtype))];
  const norms: Record<string, [number, number]> = {};
  for (const c of changed) norms[c.model.name] = [Math.sqrt(c.sums.sumD2), Math.sqrt(c.sums.sumBase2)];
  const outDir = path.dirname(out);
  const metadata: Record<string, string> = {
    format: 'pt',
    graft_patch: PATCH_FORMAT_VERSION,
    graft_version: options.graftVersion,
    graft_patch_base: referenceFrom(outDir, path.resolve(base.path)),
    graft_patch_base_weights: baseWeights,
    graft_patch_source: referenceFrom(outDir, path.resolve(model.path)),
    graft_patch_source_weights: sourceWeights,
    graft_patch_tensors: String(changed.length),
    graft_patch_density: String(density),
    graft_patch_kept: String(patchedElements > 0 ? kept / patchedElements : 0),
    graft_patch_dtype: dtypes.length === 1 ? dtypes[0] : dtypes.join(','),
    graft_patch_norms: JSON.stringify(norms),
  };
  const specs: TensorSpec[] = changed.map((c) => ({ name: c.model.name, dtype: c.dtype, shape: c.model.shape }));
  await fsp.mkdir(outDir, { recursive: true });
  const writer = await SafetensorsFileWriter.create(out, specs, metadata, { overwrite: options.force });
  let inexact = 0;
  try {
    const writeUnits = units.filter((u) => candidates[u.index].sums.changed > 0);
    advance(units.reduce((n, u) => n + u.count, 0) - writeUnits.reduce((n, u) => n + u.count, 0));
    await mapLimit(writeUnits, lanes, async (u) => {
      const c = candidates[u.index];
      const r = await runner.run('patchWrite', { model: c.model, base: c.base, start: u.start, count: u.count, dtype: c.dtype, wide: c.wide, thresholdBits: c.thresholdBits }, { signal });
      inexact += r.inexact;
      await writer.writeTensor(c.model.name, r.bytes, byteLengthOf(c.dtype, u.start));
      advance(u.count);
    }, signal);
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return {
    out,
    tensors: changed.length,
    unchanged,
    elements: patchedElements,
    kept,
    inexact,
    bytes: specs.reduce((n, s) => n + byteLengthOf(s.dtype, s.shape.reduce((a, b) => a * b, 1)), 0),
    baseWeights,
    sourceWeights,
  };
}
