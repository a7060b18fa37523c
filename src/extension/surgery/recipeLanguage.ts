// Merge recipes in the editor: recognised by name (*.graft.yml) or by content (YAML with
// merge_method), checked as you type by the CLI's parser and planner (diagnostics with quick fixes),
// completed and explained from the method registry and the lineage catalog, and run from CodeLens.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { findMethod, MERGE_METHODS, RecipeError, type MergeMethod, type ParamDef, type RecipeProblem } from '../../core/merge';
import { DTYPE_NAMES, STAGE_KEYS } from '../../core/merge/recipe/parse';
import type { CatalogEntry } from '../../core/catalog/types';
import { missingModels } from '../../core/merge/recipe/references';
import { catalogResolver } from '../../core/merge/resolve';
import type { ModelIndex } from '../lineage/modelIndex';
import { defaultOutputOf, type MergeRunner } from './mergeRunner';

/** Diagnostics source, shown in the Problems view. */
export const DIAGNOSTIC_SOURCE = 'graft';
const RECIPE_NAME = /\.graft\.ya?ml$/i;
const RECIPE_CONTENT = /^merge_method\s*:/m;
const CHECK_DELAY_MS = 300;

export const RECIPE_SELECTOR: vscode.DocumentSelector = [{ language: 'yaml' }, { pattern: '**/*.graft.{yml,yaml}' }];

export function isRecipeDocument(document: vscode.TextDocument): boolean {
  if (RECIPE_NAME.test(document.fileName)) return true;
  return (document.languageId === 'yaml' || /\.ya?ml$/i.test(document.fileName)) && RECIPE_CONTENT.test(document.getText());
}

/** A problem's range: its subject (the wrong word) when it starts there, else the rest of the word. */
function rangeOf(document: vscode.TextDocument, problem: RecipeProblem): vscode.Range {
  const line = Math.min(Math.max(0, problem.pos.line - 1), document.lineCount - 1);
  const text = document.lineAt(line).text;
  const start = Math.min(Math.max(0, problem.pos.col - 1), text.length);
  let length = 0;
  if (problem.subject && text.startsWith(problem.subject, start)) length = problem.subject.length;
  else if (problem.subject && text.indexOf(problem.subject, start) >= 0) {
    const at = text.indexOf(problem.subject, start);
    return new vscode.Range(line, at, line, at + problem.subject.length);
  } else length = Math.max(1, (/^[^\s:,\]}]+/.exec(text.slice(start))?.[0].length ?? 1));
  return new vscode.Range(line, start, line, Math.min(text.length, start + length) || start + 1);
}

interface RecipeDiagnostic extends vscode.Diagnostic {
  problem?: RecipeProblem;
}

/** The method named by the stage the line belongs to (the nearest merge_method above, else below). */
export function methodAt(document: vscode.TextDocument, line: number): MergeMethod | undefined {
  const find = (from: number, step: number) => {
    for (let l = from; l >= 0 && l < document.lineCount; l += step) {
      const text = document.lineAt(l).text;
      if (step < 0 && /^---/.test(text)) return undefined;
      const m = /^merge_method\s*:\s*["']?([\w-]+)/.exec(text);
      if (m) return findMethod(m[1]);
      if (step > 0 && /^---/.test(text)) return undefined;
    }
    return undefined;
  };
  return find(line, -1) ?? find(line + 1, 1);
}

/** Which mapping a line sits in: the nearest less-indented "key:" line above it, and that line's indent. */
function enclosingKey(document: vscode.TextDocument, line: number, indent: number): { key: string; indent: number } | undefined {
  for (let l = line - 1; l >= 0; l--) {
    const text = document.lineAt(l).text;
    if (!text.trim() || text.trim().startsWith('#')) continue;
    const own = text.length - text.trimStart().length;
    if (own < indent) {
      const m = /^\s*(?:-\s+)?([\w]+)\s*:\s*$/.exec(text);
      return m ? { key: m[1], indent: own } : { key: '', indent: own };
    }
  }
  return undefined;
}

/** The parameters that may be set at this line: the method's globals at stage level, its per-model ones under a model. */
function parametersAt(document: vscode.TextDocument, line: number, indent: number): ParamDef[] | undefined {
  const method = methodAt(document, line);
  const parent = enclosingKey(document, line, indent);
  if (!method || parent?.key !== 'parameters') return undefined;
  return parent.indent === 0 ? [...method.parameters, ...method.tensorParameters] : method.tensorParameters;
}

function describeParam(def: ParamDef, method: MergeMethod): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${def.name}** (${def.kind}${def.required ? ', required' : ''}) — ${method.name}\n\n${def.doc}\n\n`);
  if (def.default !== undefined) md.appendMarkdown(`Default: \`${String(def.default)}\`  \n`);
  if (def.min !== undefined || def.max !== undefined) md.appendMarkdown(`Range: ${def.min ?? '−∞'} to ${def.max ?? '∞'}  \n`);
  if (def.choices) md.appendMarkdown(`One of: ${def.choices.map((c) => `\`${c}\``).join(', ')}  \n`);
  if (method.tensorParameters.includes(def)) md.appendMarkdown('\nSet per model (under a model\'s `parameters`), or for all models at the top level; a list of numbers is a gradient over the layers.');
  return md;
}

function describeMethod(method: MergeMethod): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${method.name}** — ${method.summary}\n\n`);
  md.appendMarkdown(`Base model: ${method.base === 'required' ? 'required' : method.base === 'optional' ? 'optional' : 'not used'}${method.target ? '; target_model required' : ''}. Models: ${method.minModels}${method.maxModels ? ` to ${method.maxModels}` : ' or more'}.\n\n`);
  const params = [...method.parameters, ...method.tensorParameters];
  if (params.length) md.appendMarkdown(`Parameters: ${params.map((p) => `\`${p.name}\`${p.default !== undefined ? ` = ${String(p.default)}` : ''}`).join(', ')}\n\n`);
  if (method.reference) md.appendMarkdown(`[Reference](${method.reference})`);
  return md;
}

/** How a catalog entry is written in a recipe at `recipeDir`: hub id for cache snapshots, else a relative path. */
export function recipeReference(entry: CatalogEntry, recipeDir: string): string {
  if (entry.hfCache) return entry.hfCache.repoId;
  return path.relative(recipeDir, entry.path).split(path.sep).join('/') || '.';
}

function modelEntries(index: ModelIndex): CatalogEntry[] {
  return (index.catalog?.entries ?? []).filter((e) => e.kind === 'model' || e.kind === 'merge' || e.kind === 'adapter' || (e.kind === 'file' && e.format !== 'gguf'));
}

export function registerRecipeLanguage(context: vscode.ExtensionContext, index: ModelIndex, runner: MergeRunner, log: vscode.LogOutputChannel): { diagnostics: vscode.DiagnosticCollection } {
  const diagnostics = vscode.languages.createDiagnosticCollection('graft-recipes');
  const timers = new Map<string, NodeJS.Timeout>();
  const versions = new Map<string, number>();
  const lensesChanged = new vscode.EventEmitter<void>();

  const check = async (document: vscode.TextDocument) => {
    const key = document.uri.toString();
    if (!isRecipeDocument(document)) {
      diagnostics.delete(document.uri);
      return;
    }
    const version = document.version;
    versions.set(key, version);
    let problems: RecipeProblem[] = [];
    if (document.uri.scheme === 'file') {
      try {
        await runner.check(document.getText(), document.uri.fsPath);
      } catch (error) {
        if (error instanceof RecipeError) problems = error.problems;
        else log.warn(`Checking ${document.uri.fsPath}: ${error instanceof Error ? error.message : String(error)}`);
      }
      // The planner runs only on a recipe that parses; missing models are worth knowing before that.
      if (problems.length && !problems.some((p) => p.code === 'missing-model')) {
        const catalog = index.catalog;
        problems = [...problems, ...(await missingModels(document.getText(), document.uri.fsPath, catalog ? catalogResolver(catalog) : undefined))];
      }
    }
    // A newer edit was checked (or is being checked) meanwhile.
    if (versions.get(key) !== version || document.isClosed) return;
    diagnostics.set(document.uri, problems.map((problem) => {
      const diagnostic: RecipeDiagnostic = new vscode.Diagnostic(rangeOf(document, problem), problem.message, vscode.DiagnosticSeverity.Error);
      diagnostic.source = DIAGNOSTIC_SOURCE;
      diagnostic.code = problem.code;
      diagnostic.problem = problem;
      return diagnostic;
    }));
  };
  const schedule = (document: vscode.TextDocument) => {
    const key = document.uri.toString();
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      void check(document);
    }, CHECK_DELAY_MS));
  };

  const quickFixes: vscode.CodeActionProvider = {
    provideCodeActions(document, range, ctx) {
      const actions: vscode.CodeAction[] = [];
      for (const diagnostic of ctx.diagnostics as readonly RecipeDiagnostic[]) {
        if (diagnostic.source !== DIAGNOSTIC_SOURCE || !diagnostic.range.intersection(range)) continue;
        const problem = diagnostic.problem ?? problemOf(diagnostic);
        if (problem?.suggestion) {
          const action = new vscode.CodeAction(`Change to "${problem.suggestion}"`, vscode.CodeActionKind.QuickFix);
          action.edit = new vscode.WorkspaceEdit();
          action.edit.replace(document.uri, diagnostic.range, problem.suggestion);
          action.diagnostics = [diagnostic];
          action.isPreferred = true;
          actions.push(action);
        } else if (diagnostic.code === 'missing-model') {
          const wanted = document.getText(diagnostic.range).toLowerCase();
          const dir = path.dirname(document.uri.fsPath);
          const entries = modelEntries(index)
            .map((entry) => ({ entry, reference: recipeReference(entry, dir) }))
            .sort((a, b) => Number(b.reference.toLowerCase().includes(path.basename(wanted))) - Number(a.reference.toLowerCase().includes(path.basename(wanted))) || a.reference.localeCompare(b.reference))
            .slice(0, 8);
          for (const { reference } of entries) {
            const action = new vscode.CodeAction(`Use the indexed model "${reference}"`, vscode.CodeActionKind.QuickFix);
            action.edit = new vscode.WorkspaceEdit();
            action.edit.replace(document.uri, diagnostic.range, reference);
            action.diagnostics = [diagnostic];
            actions.push(action);
          }
        }
      }
      return actions;
    },
  };
  // Diagnostics restored from elsewhere (a reload) carry no problem object: rebuild its suggestion from the message.
  const problemOf = (diagnostic: vscode.Diagnostic): RecipeProblem | undefined => {
    const m = /Did you mean "([^"]+)"\?/i.exec(diagnostic.message) ?? /did you mean "([^"]+)"/i.exec(diagnostic.message);
    return m ? { code: 'unknown-parameter', message: diagnostic.message, pos: { line: diagnostic.range.start.line + 1, col: diagnostic.range.start.character + 1 }, suggestion: m[1] } : undefined;
  };

  const completion: vscode.CompletionItemProvider = {
    provideCompletionItems(document, position) {
      if (!isRecipeDocument(document)) return undefined;
      const line = document.lineAt(position.line).text;
      const before = line.slice(0, position.character);
      const indent = line.length - line.trimStart().length;
      const valueOf = /^\s*(?:-\s+)?([\w]+)\s*:\s*["']?([^"']*)$/.exec(before);
      if (valueOf && valueOf[1] === 'merge_method') {
        return MERGE_METHODS.map((m, i) => {
          const item = new vscode.CompletionItem(m.name, vscode.CompletionItemKind.Function);
          item.detail = m.summary;
          item.documentation = describeMethod(m);
          item.sortText = String(i).padStart(3, '0');
          return item;
        });
      }
      if (valueOf && ['model', 'base_model', 'target_model'].includes(valueOf[1])) {
        const dir = path.dirname(document.uri.fsPath);
        return modelEntries(index).map((entry) => {
          const reference = recipeReference(entry, dir);
          const item = new vscode.CompletionItem(reference, entry.kind === 'adapter' ? vscode.CompletionItemKind.Module : vscode.CompletionItemKind.File);
          item.detail = `${entry.kind}${entry.parameters ? ` · ${(entry.parameters / 1e6).toFixed(1)}M parameters` : ''}`;
          item.documentation = new vscode.MarkdownString(`\`${entry.path}\``);
          return item;
        });
      }
      if (valueOf && (valueOf[1] === 'dtype' || valueOf[1] === 'out_dtype')) {
        return Object.keys(DTYPE_NAMES).map((d) => new vscode.CompletionItem(d, vscode.CompletionItemKind.EnumMember));
      }
      if (/^\s*[\w]*$/.test(before)) {
        const params = parametersAt(document, position.line, indent);
        const method = methodAt(document, position.line);
        if (params && method) {
          return params.map((def) => {
            const item = new vscode.CompletionItem(def.name, vscode.CompletionItemKind.Property);
            item.detail = `${def.kind}${def.default !== undefined ? ` = ${String(def.default)}` : ''}`;
            item.documentation = describeParam(def, method);
            item.insertText = `${def.name}: `;
            return item;
          });
        }
        if (indent === 0) return STAGE_KEYS.map((key) => Object.assign(new vscode.CompletionItem(key, vscode.CompletionItemKind.Keyword), { insertText: `${key}: ` }));
      }
      return undefined;
    },
  };

  const hover: vscode.HoverProvider = {
    provideHover(document, position) {
      if (!isRecipeDocument(document)) return undefined;
      const range = document.getWordRangeAtPosition(position, /[\w-]+/);
      if (!range) return undefined;
      const word = document.getText(range);
      const line = document.lineAt(position.line).text;
      if (/^\s*merge_method\s*:/.test(line) && range.start.character > line.indexOf(':')) {
        const method = findMethod(word);
        return method ? new vscode.Hover(describeMethod(method), range) : undefined;
      }
      const method = methodAt(document, position.line);
      if (!method) return undefined;
      const isKey = line.slice(range.end.character).trimStart().startsWith(':');
      if (!isKey) return undefined;
      const def = [...method.parameters, ...method.tensorParameters].find((p) => p.name === word);
      return def ? new vscode.Hover(describeParam(def, method), range) : undefined;
    },
  };

  const lenses: vscode.CodeLensProvider = {
    onDidChangeCodeLenses: lensesChanged.event,
    provideCodeLenses(document) {
      if (!isRecipeDocument(document) || document.uri.scheme !== 'file') return [];
      const top = new vscode.Range(0, 0, 0, 0);
      const out = runner.lastOutput(document.uri)?.out ?? defaultOutputOf(document.uri);
      const result = [
        new vscode.CodeLens(top, { title: '$(checklist) Plan', command: 'graft.planRecipe', arguments: [document.uri], tooltip: 'Check the recipe and show the output size, memory and time estimate' }),
        new vscode.CodeLens(top, { title: '$(play) Run Merge', command: 'graft.runRecipe', arguments: [document.uri], tooltip: `Merge into ${out}` }),
      ];
      const finished = runner.lastOutput(document.uri);
      if (finished) {
        result.push(
          new vscode.CodeLens(top, { title: '$(folder-opened) Open Output', command: 'graft.showInLineage', arguments: [vscode.Uri.file(finished.out)], tooltip: finished.out }),
          new vscode.CodeLens(top, { title: '$(diff) Compare with Parents', command: 'graft.compareWithParents', arguments: [vscode.Uri.file(finished.out), finished.inputs] }),
        );
      }
      return result;
    },
  };

  for (const document of vscode.workspace.textDocuments) schedule(document);
  context.subscriptions.push(
    diagnostics,
    lensesChanged,
    vscode.workspace.onDidOpenTextDocument(schedule),
    vscode.workspace.onDidChangeTextDocument((event) => schedule(event.document)),
    vscode.workspace.onDidCloseTextDocument((document) => {
      diagnostics.delete(document.uri);
      versions.delete(document.uri.toString());
    }),
    // Models appearing or going away change which references resolve.
    index.onDidChange(() => {
      for (const document of vscode.workspace.textDocuments) if (isRecipeDocument(document)) schedule(document);
    }),
    runner.onDidFinish(() => lensesChanged.fire()),
    vscode.languages.registerCodeActionsProvider(RECIPE_SELECTOR, quickFixes, { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] }),
    vscode.languages.registerCompletionItemProvider(RECIPE_SELECTOR, completion, ':', ' ', '/'),
    vscode.languages.registerHoverProvider(RECIPE_SELECTOR, hover),
    vscode.languages.registerCodeLensProvider(RECIPE_SELECTOR, lenses),
    { dispose: () => timers.forEach((t) => clearTimeout(t)) },
  );
  return { diagnostics };
}
