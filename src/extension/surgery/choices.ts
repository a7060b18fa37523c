// What the surgery actions ask: which model, which base (the most likely parent first), numbers
// checked as they are typed, where to write (a save dialog, then a question before replacing
// anything), and the options a caller (a test, another extension) passes to skip the questions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CatalogEntry } from '../../core/catalog/types';
import type { LineageEdge } from '../../core/lineage/types';
import { isLineageElement } from '../targets';
import type { ModelIndex } from '../lineage/modelIndex';

/** "tiny-chat" for a model folder, a checkpoint file or an index file. */
export function modelName(target: string): string {
  return path.basename(target).replace(/\.safetensors(\.index\.json)?$/, '');
}

/** A complete model Graft can read tensor by tensor: not an adapter, a patch, GGUF or pickle. */
export function isWholeModel(entry: CatalogEntry): boolean {
  return (entry.format === 'safetensors' || entry.format === 'safetensors-sharded') && entry.kind !== 'adapter' && entry.kind !== 'patch';
}

/**
 * The options object a command may get after its target, to answer its questions in advance.
 * Explorer menus pass (uri, selectedUris[]) and the tree (element, selectedElements[]): those
 * second arguments are not options.
 */
export function optionsOf<T extends object>(value: unknown): Partial<T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof vscode.Uri || isLineageElement(value)) return {};
  return value as Partial<T>;
}

export interface Candidate {
  path: string;
  label: string;
  why: string;
  rank: number;
}

function relationText(edge: LineageEdge): string {
  if (edge.source === 'weights') return `inferred from the weights, ${Math.round((edge.confidence ?? 0) * 100)}% confidence`;
  return `declared by ${edge.source.replace('_', ' ')}`;
}

/**
 * Whole models that could be `target`'s base, most likely first: its parents in the lineage graph
 * (declared before inferred), then its further ancestors, then models of its architecture, then
 * the rest.
 */
export function likelyBases(index: ModelIndex, target: string): Candidate[] {
  const entry = index.entryContaining(target);
  const node = entry && index.nodeForEntry(entry);
  const edges = index.graph?.edges ?? [];
  const why = new Map<string, { rank: number; text: string }>();
  if (node) {
    const parents = edges.filter((e) => e.child === node.id);
    for (const edge of parents) why.set(edge.parent, { rank: edge.source === 'weights' ? 1 : 0, text: `parent (${relationText(edge)})` });
    const seen = new Set([node.id, ...parents.map((e) => e.parent)]);
    const queue = parents.map((e) => e.parent);
    while (queue.length) {
      const id = queue.shift()!;
      for (const edge of edges.filter((e) => e.child === id && !seen.has(e.parent))) {
        seen.add(edge.parent);
        why.set(edge.parent, { rank: 2, text: 'an ancestor' });
        queue.push(edge.parent);
      }
    }
  }
  const candidates: Candidate[] = [];
  for (const e of index.catalog?.entries ?? []) {
    if (!isWholeModel(e) || e.path === entry?.path || path.resolve(e.path) === path.resolve(target)) continue;
    const n = index.nodeForEntry(e);
    const known = n && why.get(n.id);
    const sameArchitecture = entry?.architecture !== undefined && e.architecture === entry.architecture;
    candidates.push({
      path: e.path,
      label: n?.label ?? e.name,
      why: known ? known.text : sameArchitecture ? 'same architecture' : 'another architecture',
      rank: known ? known.rank : sameArchitecture ? 3 : 4,
    });
  }
  return candidates.sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label, undefined, { numeric: true }));
}

/** The whole models of the catalog, `first` ones (by path) at the top. */
export function wholeModels(index: ModelIndex, first: (entry: CatalogEntry) => string | undefined = () => undefined): Candidate[] {
  return (index.catalog?.entries ?? [])
    .filter(isWholeModel)
    .map((e) => {
      const note = first(e);
      return { path: e.path, label: index.nodeForEntry(e)?.label ?? e.name, why: note ?? vscode.workspace.asRelativePath(e.path), rank: note ? 0 : 1 };
    })
    .sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label, undefined, { numeric: true }));
}

const BROWSE = '$(folder-opened) Browse…';

/** A QuickPick of candidates plus "Browse…"; undefined when dismissed. */
export async function pickCandidate(title: string, candidates: Candidate[], placeHolder: string, browse: { files: boolean; folders: boolean; filters?: Record<string, string[]> } = { files: true, folders: true }): Promise<string | undefined> {
  const items: (vscode.QuickPickItem & { path: string })[] = candidates.map((c) => ({ label: c.label, description: c.why, detail: vscode.workspace.asRelativePath(c.path), path: c.path }));
  items.push({ label: BROWSE, description: 'a checkpoint that is not indexed', path: '' });
  const choice = await vscode.window.showQuickPick(items, { title, placeHolder, matchOnDescription: true, matchOnDetail: true });
  if (!choice) return undefined;
  if (choice.path) return choice.path;
  const picked = await vscode.window.showOpenDialog({ title, canSelectFiles: browse.files, canSelectFolders: browse.folders, canSelectMany: false, filters: browse.filters });
  return picked?.[0]?.fsPath;
}

/** An InputBox for a number checked as it is typed; undefined when dismissed. */
export async function askNumber(title: string, prompt: string, value: string, check: (n: number) => string | undefined): Promise<number | undefined> {
  const text = await vscode.window.showInputBox({
    title,
    prompt,
    value,
    validateInput: (input) => {
      const n = Number(input);
      if (input.trim() === '' || !Number.isFinite(n)) return 'Type a number.';
      return check(n);
    },
  });
  return text === undefined ? undefined : Number(text);
}

/** Where to write: a save dialog at `suggestion`. */
export async function askOutput(title: string, suggestion: string, saveLabel: string, filters?: Record<string, string[]>): Promise<string | undefined> {
  const picked = await vscode.window.showSaveDialog({ title, defaultUri: vscode.Uri.file(suggestion), saveLabel, filters });
  return picked?.fsPath;
}

/**
 * A name in `folder` that nothing has yet: `stem`, `stem-2`, ... with `extension`; `alsoFree` names
 * what else must not exist for a candidate (by default a merge's `.partial` folder beside it).
 */
export function freshPath(folder: string, stem: string, extension = '', alsoFree = (candidate: string) => [`${candidate}.partial`]): string {
  const clean = stem.replace(/[^\w.-]+/g, '-');
  for (let i = 1; ; i++) {
    const candidate = path.join(folder, `${clean}${i > 1 ? `-${i}` : ''}${extension}`);
    if (![candidate, ...alsoFree(candidate)].some((p) => fs.existsSync(p))) return candidate;
  }
}

/**
 * True when `out` is free, or the user agreed to replace it (Graft then writes the new one beside
 * it and replaces it only once complete). `replace` answers in advance.
 */
export async function mayWrite(out: string, replace: boolean | undefined): Promise<{ ok: boolean; force: boolean }> {
  if (!fs.existsSync(out)) return { ok: true, force: false };
  if (replace) return { ok: true, force: true };
  const choice = await vscode.window.showWarningMessage(`${out} already exists.`, { modal: true, detail: 'Graft writes the new one beside it and replaces it only once it is complete. Choose "Replace When Done", or cancel and choose another name.' }, 'Replace When Done');
  return choice === 'Replace When Done' ? { ok: true, force: true } : { ok: false, force: false };
}

/** "12.3%" */
export function percent(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}
