// `graft patch apply`: model + sum_i s_i d_i, streamed on the worker pool into a new checkpoint
// folder (written into <out>.partial/, renamed when complete). A patch made against other weights
// than the model's is refused, naming both, unless forced; then the result says how far the model
// is from the patch's base (a lower bound from the norms the patch records: ||m - b|| >= | ||m|| - ||b|| |).
// Removing a patch (a negative scale) from the model it was taken from fits too.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeProvenance } from '../catalog/provenance';
import { mapLimit, type TaskRunner } from '../engine/pool';
import { CancelledError } from '../engine/task';
import { DEFAULT_SHARD_BYTES } from '../merge/engine';
import { copyCompanionFiles } from '../merge/output';
import { beginPartialFolder, checkOutputFolder, finishPartialFolder } from '../merge/outputFolder';
import { planShards, SafetensorsFileWriter, type TensorSpec } from '../safetensors';
import { byteLengthOf, dtypeBits } from '../safetensors/dtypes';
import { readTensorBytes } from '../safetensors/reader';
import type { CheckpointLayout, TensorRef } from '../safetensors/types';
import { weightIdentity } from '../tensors/identity';
import { elementRanges } from '../tensors/stream';
import { referenceFrom, PATCH_CHUNK_ELEMENTS } from './extract';
import { PatchError, type PatchInfo } from './format';
import type { PatchTasks } from './tasks';

export interface ApplyOptions {
  runner: TaskRunner<PatchTasks>;
  model: CheckpointLayout;
  patches: { info: PatchInfo; scale: number }[];
  out: string;
  /** Apply patches made against other weights, and replace an existing output once complete. */
  force?: boolean;
  shardBytes?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  graftVersion: string;
  chunkElements?: number;
}

export interface PatchDistance {
  patch: string;
  /** The patch's base as it records it, and its weight identity. */
  base: string;
  baseWeights: string;
  /** Lower bound of ||model - base|| / ||base|| over the patch's tensors. */
  relativeDistanceAtLeast: number;
}

export interface ApplyResult {
  out: string;
  tensors: number;
  patchedTensors: number;
  bytes: number;
  seconds: number;
  modelWeights: string;
  /** Patches whose base is not the model (applied with force), with how far the model is from it. */
  mismatched: PatchDistance[];
}

/** The refusal when a patch's base is not the model: names both and what to do. */
export function baseMismatchMessage(info: PatchInfo, modelPath: string, modelWeights: string): string {
  return `Patch "${info.file}" was made against "${info.base}" (weights ${info.baseWeights}), but "${modelPath}" has weights ${modelWeights}: ` +
    'adding it to other weights may not do what it did to its base. Apply it to its base, or pass --force to apply it anyway (the result then says how far the model is from the patch\'s base).';
}

/** Lower bound of ||model - base|| / ||base|| over the patch's tensors, from ||model|| per tensor and the norms the patch records. */
function distanceFromNorms(info: PatchInfo, modelNorm2: ReadonlyMap<string, number>): number {
  let gap2 = 0;
  let base2 = 0;
  for (const t of info.layout.tensors) {
    const [, baseNorm] = info.norms[t.name] ?? [0, 0];
    const modelNorm = Math.sqrt(modelNorm2.get(t.name) ?? 0);
    gap2 += (modelNorm - baseNorm) ** 2;
    base2 += baseNorm * baseNorm;
  }
  return base2 > 0 ? Math.sqrt(gap2 / base2) : 0;
}

/**
 * Before applying: the model's weight identity and, when the patch was made against other weights,
 * the same distance `applyPatches` reports after a forced run (one read of the patched tensors),
 * so an editor can show it when asking whether to apply anyway.
 */
export async function patchBaseDistance(runner: TaskRunner<PatchTasks>, model: CheckpointLayout, info: PatchInfo, signal?: AbortSignal): Promise<{ modelWeights: string; matches: boolean; relativeDistanceAtLeast: number }> {
  await checkPatchesFit(model, [{ info }]);
  const modelWeights = await weightIdentity(model);
  if (modelWeights === info.baseWeights) return { modelWeights, matches: true, relativeDistanceAtLeast: 0 };
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const modelNorm2 = new Map<string, number>();
  await mapLimit(info.layout.tensors, Math.max(2, runner.concurrency * 2), async (p) => {
    const t = byName.get(p.name)!;
    // The scan of the tensor against itself: its base sum is ||model||^2.
    const r = await runner.run('patchScan', { model: t, base: t, start: 0, count: t.numel, pass: 'sums', wide: true }, { signal });
    modelNorm2.set(t.name, r.sumBase2);
  }, signal);
  return { modelWeights, matches: false, relativeDistanceAtLeast: distanceFromNorms(info, modelNorm2) };
}

export async function checkPatchesFit(model: CheckpointLayout, patches: { info: PatchInfo }[]): Promise<void> {
  const inModel = new Map(model.tensors.map((t) => [t.name, t]));
  for (const { info } of patches) {
    const problems: string[] = [];
    for (const t of info.layout.tensors) {
      const m = inModel.get(t.name);
      if (!m) problems.push(`"${t.name}" is not in the model`);
      else if (m.shape.join() !== t.shape.join()) problems.push(`"${t.name}" is [${t.shape.join(', ')}] in the patch but [${m.shape.join(', ')}] in the model`);
    }
    if (problems.length > 0) {
      throw new PatchError(`Patch "${info.file}" does not fit "${model.path}": ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}. Is it a patch of another architecture?`);
    }
  }
}

export async function applyPatches(options: ApplyOptions): Promise<ApplyResult> {
  const started = Date.now();
  const { runner, model, patches, signal } = options;
  if (patches.length === 0) throw new PatchError('Give at least one patch to apply.');
  const out = path.resolve(options.out);
  const inputs = [model.path, ...model.files, ...patches.map((p) => p.info.file)].map((p) => path.resolve(p));
  if (inputs.some((p) => p === out || p.startsWith(out + path.sep) || out.startsWith(p + path.sep))) {
    throw new PatchError(`The output "${options.out}" overlaps an input; choose a new folder.`);
  }
  await checkPatchesFit(model, patches);
  const modelWeights = await weightIdentity(model);
  // A patch fits its base; removing it (a negative scale) also fits the model it was taken from.
  const mismatchedInfos = patches.filter((p) => p.info.baseWeights !== modelWeights && !(p.scale < 0 && p.info.sourceWeights === modelWeights));
  if (mismatchedInfos.length > 0 && !options.force) throw new PatchError(baseMismatchMessage(mismatchedInfos[0].info, model.path, modelWeights));

  const specs: TensorSpec[] = model.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const totalBytes = model.tensors.reduce((n, t) => n + (t.end - t.begin), 0);
  await checkOutputFolder(out, options.force ?? false, totalBytes, 'patched model');
  const partial = await beginPartialFolder(out);
  const shardPlan = planShards(specs, options.shardBytes ?? DEFAULT_SHARD_BYTES);
  const single = shardPlan.shards.length === 1;
  const writers: SafetensorsFileWriter[] = [];
  const writerOf = new Map<string, SafetensorsFileWriter>();
  const patchesOf = new Map<string, { ref: TensorRef; scale: number; index: number }[]>();
  patches.forEach((p, index) => {
    for (const ref of p.info.layout.tensors) {
      const list = patchesOf.get(ref.name) ?? [];
      list.push({ ref, scale: p.scale, index });
      patchesOf.set(ref.name, list);
    }
  });
  const chunk = Math.max(1024, Math.floor(options.chunkElements ?? PATCH_CHUNK_ELEMENTS));
  const modelNorm2 = new Map<string, number>();
  let bytesDone = 0;
  const advance = (n: number) => {
    bytesDone += n;
    options.onProgress?.(Math.min(1, bytesDone / Math.max(1, totalBytes)));
  };

  try {
    for (const shard of shardPlan.shards) {
      const writer = await SafetensorsFileWriter.create(path.join(partial, single ? 'model.safetensors' : shard.file), shard.specs, { format: 'pt' });
      writers.push(writer);
      for (const spec of shard.specs) writerOf.set(spec.name, writer);
    }
    const units = model.tensors.flatMap((t) => {
      const patched = patchesOf.get(t.name);
      const size = patched ? chunk : Math.max(1, Math.floor((chunk * 4 * 8) / dtypeBits(t.dtype)));
      return elementRanges(0, t.numel, size).map((range) => ({ t, patched, ...range }));
    });
    await mapLimit(units, Math.max(2, runner.concurrency * 2), async (u) => {
      if (signal?.aborted) throw new CancelledError();
      const writer = writerOf.get(u.t.name)!;
      let bytes: Uint8Array;
      if (u.patched) {
        const r = await runner.run('patchApply', { model: u.t, patches: u.patched.map((p) => ({ ref: p.ref, scale: p.scale })), start: u.start, count: u.count, dtype: u.t.dtype }, { signal });
        bytes = r.bytes;
        modelNorm2.set(u.t.name, (modelNorm2.get(u.t.name) ?? 0) + r.sumModel2);
      } else {
        bytes = await readTensorBytes(u.t, u.start, u.count);
      }
      await writer.writeTensor(u.t.name, bytes, byteLengthOf(u.t.dtype, u.start));
      advance(bytes.byteLength);
    }, signal);
    for (const writer of writers) await writer.commit();
    if (!single) await fsp.writeFile(path.join(partial, shardPlan.indexFile), shardPlan.indexJson);
    const modelDir = (await fsp.stat(model.path)).isDirectory() ? model.path : path.dirname(model.path);
    await copyCompanionFiles(modelDir, partial);
    await writeProvenance(partial, {
      version: options.graftVersion,
      method: 'patch',
      base: referenceFrom(out, path.resolve(model.path)),
      models: [{ model: referenceFrom(out, path.resolve(model.path)), weights: modelWeights }],
      recipe: {
        patches: patches.map((p) => ({
          patch: referenceFrom(out, path.resolve(p.info.file)), scale: p.scale, base_weights: p.info.baseWeights, source_weights: p.info.sourceWeights, tensors: p.info.tensors,
        })),
      },
    });
    await finishPartialFolder(partial, out, options.force ?? false, 'patched model');
  } catch (error) {
    await Promise.all(writers.map((w) => w.abort()));
    await fsp.rm(partial, { recursive: true, force: true });
    if (signal?.aborted && !(error instanceof CancelledError)) throw new CancelledError();
    throw error;
  }

  const mismatched = mismatchedInfos.map(({ info }) => ({ patch: info.file, base: info.base, baseWeights: info.baseWeights, relativeDistanceAtLeast: distanceFromNorms(info, modelNorm2) }));
  return {
    out,
    tensors: model.tensors.length,
    patchedTensors: patchesOf.size,
    bytes: totalBytes,
    seconds: (Date.now() - started) / 1000,
    modelWeights,
    mismatched,
  };
}
