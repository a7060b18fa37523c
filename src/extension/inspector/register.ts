// The checkpoint inspector: its custom editor and the "Inspect Checkpoint" command (palette,
// explorer context menu, lineage tree).
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Engine } from '../engine';
import type { ModelIndex } from '../lineage/modelIndex';
import { inspectableFile, inspectableFileOfEntry, openInspector, pathOf } from '../targets';
import { InspectorProvider } from './inspectorProvider';

export function registerInspector(context: vscode.ExtensionContext, engine: Engine, log: vscode.LogOutputChannel, index: ModelIndex): void {
  context.subscriptions.push(
    InspectorProvider.register(context.extensionUri, engine, log),
    vscode.commands.registerCommand('graft.inspectCheckpoint', async (arg?: unknown) => {
      const target = pathOf(arg) ?? (await pickCheckpoint(index));
      if (!target) return;
      const file = inspectableFile(target, index);
      if (!file) {
        void vscode.window.showWarningMessage(
          `${path.basename(target)} has no safetensors weights to inspect. Choose a .safetensors file, a *.safetensors.index.json, or a model folder holding one of them.`,
        );
        return;
      }
      await openInspector(file);
    }),
  );
}

/** Palette: pick from the indexed checkpoints, or browse for a file. */
async function pickCheckpoint(index: ModelIndex): Promise<string | undefined> {
  const browse = { label: '$(folder-opened) Browse…', description: 'Open a .safetensors file or index', path: '' };
  const items = (index.catalog?.entries ?? [])
    .filter((e) => inspectableFileOfEntry(e))
    .map((e) => ({ label: e.name, description: vscode.workspace.asRelativePath(e.path), path: e.path }));
  const choice = await vscode.window.showQuickPick([...items, browse], { title: 'Inspect Checkpoint', placeHolder: items.length ? 'Choose a checkpoint' : 'No checkpoints indexed yet: browse for a file', matchOnDescription: true });
  if (!choice) return undefined;
  if (choice !== browse) return choice.path;
  const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { Safetensors: ['safetensors', 'json'] }, title: 'Inspect Checkpoint' });
  return picked?.[0]?.fsPath;
}
