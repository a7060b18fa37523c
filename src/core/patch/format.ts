// Weight patches: a fine-tune's difference from its base (d = model - base) as a safetensors file
// holding only the tensors that changed, under the model's own tensor names, so patches can be
// added, scaled (-1 removes one) and composed. `__metadata__` (all strings, as safetensors wants):
//   graft_patch            "1" (format version)
//   graft_patch_base       the base the difference was taken against (path relative to the patch, or hub id)
//   graft_patch_base_weights    weight identity of the base (src/core/tensors/identity.ts)
//   graft_patch_source     the fine-tune the difference came from
//   graft_patch_source_weights  weight identity of the fine-tune
//   graft_patch_tensors    number of tensors in the patch
//   graft_patch_density    requested share of elements kept per tensor (top-k by magnitude), "1" when dense
//   graft_patch_kept       share of the patched tensors' elements that are stored non-zero
//   graft_patch_dtype      dtype of the stored differences
//   graft_patch_norms      JSON {tensor: [||d||, ||base||]} over the full difference (before sparsifying)
import { parseTensorName } from '../tensors/names';
import { openCheckpoint } from '../safetensors';
import type { CheckpointLayout } from '../safetensors/types';

export const PATCH_FORMAT_VERSION = '1';

export interface PatchInfo {
  file: string;
  layout: CheckpointLayout;
  base: string;
  baseWeights: string;
  source: string;
  sourceWeights: string;
  tensors: number;
  density: number;
  kept: number;
  dtype: string;
  graftVersion?: string;
  /** Tensor name -> [||d||, ||base||]. */
  norms: Record<string, [number, number]>;
}

export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatchError';
  }
}

/** Reads a patch file's header and metadata; a file that is not a Graft patch is refused saying so. */
export async function readPatch(file: string): Promise<PatchInfo> {
  let layout: CheckpointLayout;
  try {
    layout = await openCheckpoint(file);
  } catch (error) {
    throw new PatchError(`Cannot read patch "${file}": ${(error as Error).message}`);
  }
  const meta = (layout.metadata ?? {}) as Record<string, unknown>;
  const text = (key: string): string | undefined => (typeof meta[key] === 'string' ? (meta[key] as string) : undefined);
  if (text('graft_patch') === undefined) {
    throw new PatchError(`"${file}" is not a Graft patch (its metadata has no "graft_patch" entry). Make one with \`graft patch extract <model> --base <base> --out <patch.safetensors>\`.`);
  }
  if (text('graft_patch') !== PATCH_FORMAT_VERSION) {
    throw new PatchError(`"${file}" is a Graft patch of format ${text('graft_patch')}; this Graft reads format ${PATCH_FORMAT_VERSION}. Update Graft or extract the patch again.`);
  }
  let norms: Record<string, [number, number]> = {};
  try {
    norms = JSON.parse(text('graft_patch_norms') ?? '{}') as Record<string, [number, number]>;
  } catch {
    throw new PatchError(`"${file}": its "graft_patch_norms" metadata is not valid JSON; extract the patch again.`);
  }
  const baseWeights = text('graft_patch_base_weights');
  if (!baseWeights) throw new PatchError(`"${file}" does not record its base's weight identity ("graft_patch_base_weights"); extract the patch again.`);
  return {
    file,
    layout,
    base: text('graft_patch_base') ?? '(unknown)',
    baseWeights,
    source: text('graft_patch_source') ?? '(unknown)',
    sourceWeights: text('graft_patch_source_weights') ?? '',
    tensors: layout.tensors.length,
    density: Number(text('graft_patch_density') ?? '1'),
    kept: Number(text('graft_patch_kept') ?? 'NaN'),
    dtype: text('graft_patch_dtype') ?? layout.tensors[0]?.dtype ?? 'F32',
    graftVersion: text('graft_version'),
    norms,
  };
}

export interface PatchLayerNorm {
  group: string;
  layer: number | null;
  tensors: number;
  /** ||d|| over the layer's patched tensors. */
  norm: number;
  /** ||d|| / ||base|| over the same tensors; null when the base is zero there. */
  relative: number | null;
}

/** Norms of the difference per (group, layer), from the patch's recorded per-tensor norms. */
export function patchLayerNorms(info: PatchInfo): PatchLayerNorm[] {
  const rows = new Map<string, { group: string; layer: number | null; tensors: number; d2: number; b2: number }>();
  for (const t of info.layout.tensors) {
    const [norm, baseNorm] = info.norms[t.name] ?? [NaN, NaN];
    const { group, layer } = parseTensorName(t.name);
    const key = `${group}\u0000${layer}`;
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { group, layer, tensors: 0, d2: 0, b2: 0 }));
    row.tensors++;
    row.d2 += norm * norm;
    row.b2 += baseNorm * baseNorm;
  }
  return [...rows.values()]
    .sort((x, y) => (x.layer === null ? 1 : 0) - (y.layer === null ? 1 : 0) || x.group.localeCompare(y.group) || (x.layer ?? 0) - (y.layer ?? 0))
    .map((r) => ({ group: r.group, layer: r.layer, tensors: r.tensors, norm: Math.sqrt(r.d2), relative: r.b2 > 0 ? Math.sqrt(r.d2 / r.b2) : r.d2 === 0 ? 0 : null }));
}
