// Commands are invoked from the explorer (a Uri, plus all selected Uris), from the lineage tree
// (a LineageElement) or from the palette (nothing). These helpers turn any of those into paths.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CatalogEntry } from '../core/catalog/types';
import type { LineageElement } from './lineage/lineageTree';
import type { ModelIndex } from './lineage/modelIndex';

/** The checkpoint inspector's custom editor (package.json contributes.customEditors). */
export const INSPECTOR_VIEW_TYPE = 'graft.inspector';

export function isLineageElement(value: unknown): value is LineageElement {
  return typeof value === 'object' && value !== null && 'node' in value && 'key' in value;
}

/** The filesystem path a command argument points at, if any. */
export function pathOf(arg: unknown): string | undefined {
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? arg.fsPath : undefined;
  if (isLineageElement(arg)) return arg.node.locations?.[0];
  if (typeof arg === 'string') return arg;
  return undefined;
}

/** Explorer commands receive (clicked, allSelected); the tree passes (clicked, selectedElements). */
export function pathsOf(arg: unknown, selection: unknown): string[] {
  const all = Array.isArray(selection) && selection.length > 1 ? selection : [arg];
  return all.map(pathOf).filter((p): p is string => !!p);
}

/**
 * The file the inspector should open for a model: the checkpoint itself, the index of a sharded
 * set, or the single weight file of a model folder.
 */
export function inspectableFile(target: string, index: ModelIndex): string | undefined {
  const entry = index.entryAt(target);
  if (entry) return inspectableFileOfEntry(entry);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    return undefined;
  }
  if (stat.isFile()) return /\.safetensors(\.index\.json)?$/.test(target) ? target : undefined;
  const names = fs.readdirSync(target);
  const indexFile = names.find((n) => n.endsWith('.safetensors.index.json'));
  if (indexFile) return path.join(target, indexFile);
  const weights = names.filter((n) => n.endsWith('.safetensors'));
  if (weights.length === 1) return path.join(target, weights[0]);
  if (weights.includes('model.safetensors')) return path.join(target, 'model.safetensors');
  return undefined;
}

export function inspectableFileOfEntry(entry: CatalogEntry): string | undefined {
  if (entry.format === 'gguf') return undefined;
  if (entry.format === 'safetensors-sharded') {
    const indexSource = entry.sources.find((s) => s.path.endsWith('.safetensors.index.json'));
    if (indexSource) return indexSource.path;
  }
  return entry.weightFiles.length === 1 ? entry.weightFiles[0] : entry.path;
}

/** Opens the checkpoint inspector on a file. */
export async function openInspector(file: string): Promise<void> {
  await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(file), INSPECTOR_VIEW_TYPE);
}
