// Activation: wires the engine, the model index (catalog + lineage), the views and the commands.
// Every registration goes into context.subscriptions so deactivation releases it all.
import * as vscode from 'vscode';
import { registerCompare } from './compare/register';
import { Engine } from './engine';
import { registerInspector } from './inspector/register';
import { registerLineage } from './lineage/register';
import { createSafeLog } from './log';
import { registerSurgery, type SurgeryApi } from './surgery/register';
import type { ModelIndex } from './lineage/modelIndex';

/** What activate() returns: read-only access to the index, for the integration tests and other extensions. */
export interface GraftApi {
  readonly index: Pick<ModelIndex, 'catalog' | 'graph' | 'whenIdle' | 'onDidChange' | 'scanning'>;
  /** Merges run from the editor: progress and completion events. */
  readonly surgery: SurgeryApi;
}

export function activate(context: vscode.ExtensionContext): GraftApi {
  const log = createSafeLog('Graft');
  const engine = new Engine(context.extensionUri, log);
  context.subscriptions.push(log, engine, vscode.commands.registerCommand('graft.showLog', () => log.show()));

  const lineage = registerLineage(context, engine, log);
  registerInspector(context, engine, log, lineage.index);
  registerCompare(context, engine, log, lineage.index);
  const surgery = registerSurgery(context, engine, log, lineage.index);
  log.info(`Graft ${context.extension.packageJSON.version} activated (VS Code ${vscode.version}).`);
  return { index: lineage.index, surgery };
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions, including the worker threads.
}
