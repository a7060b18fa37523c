// Comparing checkpoints: the palette flow (pick A, B and an optional base), "Compare with...",
// "Compare with Parent" in the tree, and explorer "Select for Compare" / "Compare with Selected".
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CatalogEntry } from '../../core/catalog/types';
import type { Engine } from '../engine';
import type { ModelIndex } from '../lineage/modelIndex';
import { isLineageElement, pathOf, pathsOf } from '../targets';
import { registerComparePanel, type CompareSide } from '../webviews/comparePanel';

const HAS_SELECTION = 'graft.hasCompareSelection';

export function registerCompare(context: vscode.ExtensionContext, engine: Engine, log: vscode.LogOutputChannel, index: ModelIndex): void {
  const panel = registerComparePanel({ extensionUri: context.extensionUri, log, runner: engine, storageUri: context.storageUri });
  let selected: CompareSide | undefined;

  const side = (target: string): CompareSide => {
    const entry = index.entryAt(target) ?? index.entryContaining(target);
    const node = entry && index.nodeForEntry(entry);
    return { path: target, label: node?.label ?? entry?.name ?? path.basename(target) };
  };

  const compare = (a: string, b: string, base?: string) => {
    if (path.resolve(a) === path.resolve(b)) {
      void vscode.window.showWarningMessage('Choose two different checkpoints to compare.');
      return;
    }
    panel.show({ a: side(a), b: side(b), base: base ? side(base) : undefined });
  };

  context.subscriptions.push(
    panel,
    vscode.commands.registerCommand('graft.compareCheckpoints', async (a?: unknown, b?: unknown, base?: unknown) => {
      const given = [a, b].map(pathOf);
      if (given[0] && given[1]) return compare(given[0], given[1], pathOf(base));
      const first = given[0] ?? (await pickEntry(index, 'Compare Checkpoints (1/3): the first checkpoint (A)'));
      if (!first) return;
      const second = await pickEntry(index, `Compare Checkpoints (2/3): compare ${path.basename(first)} with…`, first);
      if (!second) return;
      const baseChoice = await pickBase(index, first, second);
      if (baseChoice === undefined) return;
      compare(first, second, baseChoice || undefined);
    }),
    vscode.commands.registerCommand('graft.compareWith', async (arg?: unknown) => {
      const first = pathOf(arg);
      if (!first) return;
      const second = await pickEntry(index, `Compare ${path.basename(first)} with…`, first);
      if (second) compare(first, second);
    }),
    vscode.commands.registerCommand('graft.compareWithParent', (arg?: unknown) => {
      if (!isLineageElement(arg) || !arg.parent) return;
      const parent = arg.parent.node.locations?.[0];
      const child = arg.node.locations?.[0];
      if (!parent || !child) {
        void vscode.window.showInformationMessage(`The parent of ${arg.node.label} is not on disk, so there is nothing to compare with.`);
        return;
      }
      compare(parent, child);
    }),
    vscode.commands.registerCommand('graft.selectForCompare', (arg?: unknown, selection?: unknown) => {
      const paths = pathsOf(arg, selection);
      if (paths.length >= 2) return compare(paths[0], paths[1], paths[2]);
      if (!paths[0]) return;
      selected = side(paths[0]);
      void vscode.commands.executeCommand('setContext', HAS_SELECTION, true);
      vscode.window.setStatusBarMessage(`Graft: ${selected.label} selected for compare. Right-click another checkpoint and choose "Compare with Selected".`, 6000);
    }),
    vscode.commands.registerCommand('graft.compareWithSelected', (arg?: unknown, selection?: unknown) => {
      const paths = pathsOf(arg, selection);
      if (paths.length >= 2) return compare(paths[0], paths[1], paths[2]);
      if (!selected) {
        void vscode.window.showInformationMessage('First right-click a checkpoint and choose "Select for Compare".');
        return;
      }
      if (paths[0]) compare(selected.path, paths[0]);
    }),
  );
}

function comparableEntries(index: ModelIndex): CatalogEntry[] {
  return (index.catalog?.entries ?? []).filter((e) => e.format === 'safetensors' || e.format === 'safetensors-sharded');
}

async function pickEntry(index: ModelIndex, title: string, exclude?: string): Promise<string | undefined> {
  const excluded = exclude && path.resolve(exclude);
  const items = comparableEntries(index)
    .filter((e) => e.path !== excluded)
    .map((e) => ({ label: e.name, description: vscode.workspace.asRelativePath(e.path), detail: e.architecture ? undefined : 'architecture unknown', path: e.path }));
  const browse = { label: '$(folder-opened) Browse…', description: 'A .safetensors file, an index.json or a model folder', path: '' };
  const choice = await vscode.window.showQuickPick([...items, browse], { title, matchOnDescription: true, placeHolder: items.length ? 'Choose a checkpoint' : 'No checkpoints indexed yet: browse' });
  if (!choice) return undefined;
  if (choice !== browse) return choice.path;
  const picked = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, title });
  return picked?.[0]?.fsPath;
}

/** '' for "no base"; undefined when the user dismissed the picker. The shared parent is offered first. */
async function pickBase(index: ModelIndex, a: string, b: string): Promise<string | undefined> {
  const parentsOf = (target: string): string[] => {
    const entry = index.entryAt(target);
    const node = entry && index.nodeForEntry(entry);
    return node ? (index.graph?.edges ?? []).filter((e) => e.child === node.id).map((e) => e.parent) : [];
  };
  const shared = parentsOf(a).filter((p) => parentsOf(b).includes(p));
  const sharedPaths = new Set(shared.map((id) => index.node(id)?.locations?.[0]).filter((p): p is string => !!p));
  const none = { label: 'No base', description: 'Compare A and B directly', path: '' };
  const items = comparableEntries(index)
    .filter((e) => e.path !== path.resolve(a) && e.path !== path.resolve(b))
    .map((e) => ({ label: e.name, description: sharedPaths.has(e.path) ? 'common parent of A and B' : vscode.workspace.asRelativePath(e.path), path: e.path }))
    .sort((x, y) => Number(sharedPaths.has(y.path)) - Number(sharedPaths.has(x.path)));
  const choice = await vscode.window.showQuickPick([none, ...items], {
    title: 'Compare Checkpoints (3/3): a common base (optional)',
    placeHolder: 'With a base, Graft also compares the two task vectors: where the fine-tunes agree and where they conflict',
    matchOnDescription: true,
  });
  return choice?.path;
}
