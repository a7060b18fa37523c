// Flattens the tensor list into the rows the virtual table shows: a header per layer group,
// then that group's tensors, after filtering.
import { parseTensorName } from '../../src/core/tensors/names';
import type { InspectorTensorRow } from '../../src/shared/protocol/inspector';

export type Row =
  | { kind: 'group'; key: string; label: string; count: number; parameters: number; bytes: number; collapsed: boolean }
  | { kind: 'tensor'; tensor: InspectorTensorRow };

const NON_LAYER = 'other';

/** Rows for `tensors` matching `filter` (substring of name, dtype or shape; case-insensitive). */
export function buildRows(tensors: InspectorTensorRow[], filter: string, collapsed: Set<string>): Row[] {
  const needle = filter.trim().toLowerCase();
  const groups = new Map<string, { layer: number | null; tensors: InspectorTensorRow[] }>();
  for (const tensor of tensors) {
    if (needle && !matches(tensor, needle)) continue;
    const { layer } = parseTensorName(tensor.name);
    const key = layer === null ? NON_LAYER : String(layer);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { layer, tensors: [] }));
    group.tensors.push(tensor);
  }
  // Non-layer tensors (embeddings, final norm, head) first, then layers in numeric order.
  const ordered = [...groups.entries()].sort(([, a], [, b]) => (a.layer ?? -1) - (b.layer ?? -1));
  const rows: Row[] = [];
  for (const [key, group] of ordered) {
    const isCollapsed = collapsed.has(key);
    rows.push({
      kind: 'group',
      key,
      label: group.layer === null ? 'Embeddings, norms and head' : `Layer ${group.layer}`,
      count: group.tensors.length,
      parameters: group.tensors.reduce((n, t) => n + t.numel, 0),
      bytes: group.tensors.reduce((n, t) => n + t.bytes, 0),
      collapsed: isCollapsed,
    });
    if (!isCollapsed) for (const tensor of group.tensors) rows.push({ kind: 'tensor', tensor });
  }
  return rows;
}

function matches(tensor: InspectorTensorRow, needle: string): boolean {
  return tensor.name.toLowerCase().includes(needle) || tensor.dtype.toLowerCase() === needle || `[${tensor.shape.join(', ')}]`.includes(needle);
}
