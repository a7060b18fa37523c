// What the inspector webview is sent about a checkpoint: built from the headers alone. No vscode
// import, so the inspector benchmark can measure it outside the editor.
import * as path from 'node:path';
import type { CheckpointLayout } from '../../core/safetensors/types';
import type { InspectorSummary } from '../../shared/protocol/inspector';

export function summarizeCheckpoint(layout: CheckpointLayout, loadMs: number): InspectorSummary {
  const dtypes: Record<string, [number, number]> = {};
  const fileIndex = new Map(layout.files.map((f, i) => [f, i]));
  const tensors = layout.tensors.map((t) => {
    const bytes = t.end - t.begin;
    const entry = (dtypes[t.dtype] ??= [0, 0]);
    entry[0] += 1;
    entry[1] += bytes;
    return { name: t.name, dtype: t.dtype, shape: t.shape, numel: t.numel, bytes, file: fileIndex.get(t.file) ?? 0 };
  });
  return {
    path: layout.path,
    fileName: path.basename(layout.path),
    format: layout.format,
    files: layout.files.map((f) => path.basename(f)),
    parameters: layout.parameters,
    bytes: layout.bytes,
    dtypes,
    metadata: layout.metadata,
    tensors,
    loadMs,
  };
}

