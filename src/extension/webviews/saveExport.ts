// Exports requested by a webview (images, tables, reports): the user picks the file in a save
// dialog, which asks before replacing an existing one, and we write exactly what was asked.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ExportFormat } from '../../shared/protocol/compare';

const FILTERS: Record<ExportFormat, Record<string, string[]>> = {
  png: { 'PNG image': ['png'] },
  svg: { 'SVG image': ['svg'] },
  csv: { 'CSV table': ['csv'] },
  json: { 'JSON report': ['json'] },
};

export interface ExportRequest {
  format: ExportFormat;
  /** What is exported, for the dialog title and messages: "the lineage graph". */
  what: string;
  suggestedName: string;
  /** Text, or base64 for PNG. */
  data: string;
  /** Where the dialog opens. */
  folder?: vscode.Uri;
}

export async function saveExport(request: ExportRequest, log: vscode.LogOutputChannel): Promise<void> {
  const { format, what, data } = request;
  if (!(format in FILTERS) || typeof data !== 'string') {
    log.error(`Ignored a request to export ${what} as ${String(format)}.`);
    return;
  }
  const base = path.basename(request.suggestedName || 'export').replace(/\.[a-z]+$/i, '');
  const target = await vscode.window.showSaveDialog({
    title: `Export ${what} as ${format.toUpperCase()}`,
    saveLabel: 'Export',
    defaultUri: request.folder ? vscode.Uri.joinPath(request.folder, `${base}.${format}`) : undefined,
    filters: FILTERS[format],
  });
  if (!target) return;
  try {
    await vscode.workspace.fs.writeFile(target, Buffer.from(data, format === 'png' ? 'base64' : 'utf8'));
    log.info(`Exported ${what} to ${target.fsPath}.`);
    const choice = await vscode.window.showInformationMessage(`Saved ${what} to ${path.basename(target.fsPath)}.`, 'Open');
    if (choice === 'Open') await vscode.commands.executeCommand('vscode.open', target);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.error(`Export of ${what} to ${target.fsPath} failed: ${message}`);
    void vscode.window.showErrorMessage(`Could not save ${what} to ${target.fsPath}: ${message}. Choose a folder you can write to and export again.`);
  }
}
