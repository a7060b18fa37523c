// Rolls a report's tensors up into (group, layer) rows: the CLI's per-layer table and any view that
// wants one figure per block. Exact, not averaged: the norms and cosines of a TensorDiff give back
// the sums they came from, and the sums add.
import { NON_LAYER_GROUP, parseTensorName } from '../tensors/names';
import type { TensorDiff } from './types';

export interface LayerDiff {
  group: string;
  /** null for the non-layer tensors (embeddings, final norm, head). */
  layer: number | null;
  tensors: number;
  numel: number;
  l2_diff: number;
  /** ||b - a|| / ||a|| over the layer's elements; null when a is all zeros there and b is not. */
  rel_l2: number | null;
  cosine: number;
  frac_changed: number;
}

interface LayerSums {
  group: string;
  layer: number | null;
  tensors: number;
  numel: number;
  diff2: number;
  normA2: number;
  normB2: number;
  dot: number;
  changed: number;
}

/**
 * One row per (group, layer): groups in order of first appearance with the non-layer group last,
 * layers in numeric order (files often list layers.10 before layers.2).
 */
export function summarizeLayers(tensors: readonly TensorDiff[]): LayerDiff[] {
  const rows = new Map<string, LayerSums>();
  for (const t of tensors) {
    const group = t.group ?? parseTensorName(t.name).group;
    const key = `${group}\u0000${t.layer}`;
    let row = rows.get(key);
    if (!row) {
      row = { group, layer: t.layer, tensors: 0, numel: 0, diff2: 0, normA2: 0, normB2: 0, dot: 0, changed: 0 };
      rows.set(key, row);
    }
    const normA = t.norm_a ?? 0;
    const normB = t.norm_b ?? 0;
    row.tensors++;
    row.numel += t.numel;
    row.diff2 += t.l2_diff * t.l2_diff;
    row.normA2 += normA * normA;
    row.normB2 += normB * normB;
    row.dot += t.cosine * normA * normB;
    row.changed += t.frac_changed * t.numel;
  }
  const groupOrder = new Map<string, number>();
  for (const row of rows.values()) if (!groupOrder.has(row.group)) groupOrder.set(row.group, row.group === NON_LAYER_GROUP ? Infinity : groupOrder.size);
  const ordered = [...rows.values()].sort((x, y) => groupOrder.get(x.group)! - groupOrder.get(y.group)! || (x.layer ?? -1) - (y.layer ?? -1));
  return ordered.map((row) => {
    const normA = Math.sqrt(row.normA2);
    const normB = Math.sqrt(row.normB2);
    const l2 = Math.sqrt(row.diff2);
    return {
      group: row.group,
      layer: row.layer,
      tensors: row.tensors,
      numel: row.numel,
      l2_diff: l2,
      rel_l2: normA > 0 ? l2 / normA : l2 === 0 ? 0 : null,
      cosine: normA > 0 && normB > 0 ? Math.min(1, Math.max(-1, row.dot / normA / normB)) : normA === 0 && normB === 0 ? 1 : 0,
      frac_changed: row.numel > 0 ? row.changed / row.numel : 0,
    };
  });
}
