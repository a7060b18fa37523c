// The merge panel ("Graft: Merge Models..."): one webview where the user picks a method, models,
// base, parameters and output; the host turns the form into a recipe file next to the output,
// plans it (size, shards, memory, time, problems) and, for methods over a base, shows the
// interference of the task vectors per layer from a sampled diff; "Merge" saves and runs it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { diffCheckpoints } from '../../core/diff';
import type { TensorDiff } from '../../core/diff/types';
import { CancelledError } from '../../core/engine/task';
import { findMethod, MERGE_METHODS, RecipeError, type ParamDef } from '../../core/merge';
import { recipeToYaml, type RecipeSpec } from '../../core/merge/recipe/write';
import { openCheckpoint } from '../../core/safetensors';
import type { InterferenceRow, MergeForm, MergeState, MergeToHost, MergeToWebview, MethodView, ModelView, ParamView, PlanView } from '../../shared/protocol/merge';
import type { Engine } from '../engine';
import type { ModelIndex } from '../lineage/modelIndex';
import type { MergeRunner } from '../surgery/mergeRunner';
import { renderWebviewHtml, webviewOptions } from './html';

export const MERGE_VIEW_TYPE = 'graft.merge';

export interface MergePanelDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  engine: Engine;
  index: ModelIndex;
  runner: MergeRunner;
}

/** The recipe file the panel writes for an output folder: beside it, named after it. */
export function recipeFileFor(out: string): string {
  return path.join(path.dirname(path.resolve(out)), `${path.basename(out)}.graft.yml`);
}

function paramView(def: ParamDef): ParamView {
  return { name: def.name, kind: def.kind, default: def.default, required: def.required, choices: def.choices ? [...def.choices] : undefined, min: def.min, max: def.max, doc: def.doc };
}

function methodViews(): MethodView[] {
  return MERGE_METHODS.map((m) => ({
    name: m.name, summary: m.summary, base: m.base, target: m.target === 'required', minModels: m.minModels, maxModels: m.maxModels, baseCounts: m.baseAsFirstModel === true,
    parameters: m.parameters.map(paramView), tensorParameters: m.tensorParameters.map(paramView),
  }));
}

/** The form as a recipe, with paths relative to where the recipe is written. */
export function formToRecipe(form: MergeForm): { file: string; text: string } {
  const file = recipeFileFor(form.out);
  const method = findMethod(form.method);
  const spec: RecipeSpec = {
    method: form.method,
    baseModel: method?.base !== 'none' ? form.base : undefined,
    targetModel: method?.target ? form.target : undefined,
    models: form.models.map((m) => ({ model: m.path, parameters: m.parameters as RecipeSpec['parameters'] })),
    parameters: form.parameters as RecipeSpec['parameters'],
    dtype: form.dtype,
    comment: `Written by Graft's merge panel; run it again with "Run Merge" above, or: graft merge ${path.basename(file)} --out ${path.basename(form.out)}`,
  };
  return { file, text: recipeToYaml(spec, path.dirname(file)) };
}

export function registerMergePanel(deps: MergePanelDeps): vscode.Disposable & { show(prefill?: Partial<MergeForm>): void } {
  let current: MergeSession | undefined;
  const attach = (panel: vscode.WebviewPanel, prefill: Partial<MergeForm> | undefined) => {
    current = new MergeSession(panel, deps, prefill, () => {
      if (current?.panel === panel) current = undefined;
    });
  };
  const serializer = vscode.window.registerWebviewPanelSerializer(MERGE_VIEW_TYPE, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
      panel.webview.options = webviewOptions(deps.extensionUri);
      if (current) {
        panel.dispose();
        current.panel.reveal();
        return;
      }
      // The webview restores its own form from its state; nothing to pre-fill.
      attach(panel, (state as MergeState | undefined)?.form);
    },
  });
  return {
    show(prefill) {
      if (current) {
        current.panel.reveal();
        if (prefill) current.prefill(prefill);
        return;
      }
      const panel = vscode.window.createWebviewPanel(MERGE_VIEW_TYPE, 'Merge Models', vscode.ViewColumn.Active, { ...webviewOptions(deps.extensionUri), retainContextWhenHidden: true });
      attach(panel, prefill);
    },
    dispose() {
      serializer.dispose();
      current?.panel.dispose();
    },
  };
}

class MergeSession {
  private ready = false;
  private disposed = false;
  private interference: AbortController | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly deps: MergePanelDeps,
    private pending: Partial<MergeForm> | undefined,
    private readonly onDispose: () => void,
  ) {
    panel.webview.html = renderWebviewHtml(panel.webview, deps.extensionUri, 'merge', 'Merge Models');
    this.disposables.push(
      panel.webview.onDidReceiveMessage((message: MergeToHost) => void this.onMessage(message)),
      panel.onDidDispose(() => this.dispose()),
      deps.index.onDidChange(() => this.post({ type: 'models', models: this.models() })),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.sendInit()),
    );
  }

  prefill(form: Partial<MergeForm>): void {
    this.pending = form;
    if (this.ready) this.sendInit();
  }

  private sendInit(): void {
    this.post({ type: 'init', methods: methodViews(), models: this.models(), prefill: this.pending, trusted: vscode.workspace.isTrusted });
    this.pending = undefined;
  }

  private models(): ModelView[] {
    const { index } = this.deps;
    const graph = index.graph;
    const views: ModelView[] = [];
    for (const entry of index.catalog?.entries ?? []) {
      if (entry.format !== 'safetensors' && entry.format !== 'safetensors-sharded') continue;
      // Adapters are merged into their base ("Merge Adapter into Base", or model+adapter in a recipe).
      if (entry.kind === 'trainer-checkpoint' || entry.kind === 'adapter' || entry.kind === 'patch') continue;
      const node = index.nodeForEntry(entry);
      const parents = node && graph ? graph.edges.filter((e) => e.child === node.id).map((e) => index.node(e.parent)?.locations?.[0]).filter((p): p is string => !!p) : [];
      views.push({
        path: entry.path,
        label: node?.label ?? entry.name,
        kind: node?.kind ?? entry.kind,
        description: vscode.workspace.asRelativePath(entry.path),
        parents,
      });
    }
    return views.sort((a, b) => a.label.localeCompare(b.label, undefined, { numeric: true }));
  }

  private async onMessage(message: MergeToHost): Promise<void> {
    switch (message.type) {
      case 'ready':
        this.ready = true;
        this.sendInit();
        break;
      case 'plan':
        await this.plan(message.requestId, message.form);
        break;
      case 'browseOutput': {
        const picked = await vscode.window.showSaveDialog({
          title: 'Output folder of the merged model',
          defaultUri: message.current ? vscode.Uri.file(message.current) : vscode.workspace.workspaceFolders?.[0]?.uri,
          saveLabel: 'Merge Into This Folder',
        });
        if (picked) this.post({ type: 'output', path: picked.fsPath });
        break;
      }
      case 'save': {
        const file = await this.saveRecipe(message.form);
        if (file) {
          await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: false, viewColumn: vscode.ViewColumn.Beside });
          this.post({ type: 'status', state: 'idle', message: `Saved ${vscode.workspace.asRelativePath(file)}.` });
        }
        break;
      }
      case 'openRecipe': {
        const { text } = formToRecipe(message.form);
        const document = await vscode.workspace.openTextDocument({ language: 'yaml', content: text });
        await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside });
        break;
      }
      case 'merge':
        await this.merge(message.form);
        break;
    }
  }

  private formProblem(form: MergeForm): string | undefined {
    if (!form.out.trim()) return 'Choose an output folder for the merged model.';
    if (!path.isAbsolute(form.out)) return 'The output folder must be an absolute path (use Browse…).';
    if (form.models.length === 0) return 'Choose at least one model to merge.';
    return undefined;
  }

  private async plan(requestId: number, form: MergeForm): Promise<void> {
    const problem = this.formProblem(form);
    if (problem) {
      this.post({ type: 'plan', requestId, error: problem });
      return;
    }
    const { file, text } = formToRecipe(form);
    try {
      const { plan, estimate, shards } = await this.deps.runner.planText(text, file, form.out);
      const view: PlanView = {
        method: plan.method, tensors: plan.totals.tensors, outputBytes: plan.totals.outputBytes, shards, peakBytes: estimate.peakBytes, seconds: estimate.seconds,
        layers: plan.layerCount, warnings: plan.warnings, recipeText: text, recipeFile: vscode.workspace.asRelativePath(file),
      };
      this.post({ type: 'plan', requestId, plan: view });
    } catch (error) {
      if (error instanceof RecipeError) this.post({ type: 'plan', requestId, problems: error.problems.map((p) => ({ line: p.pos.line, col: p.pos.col, message: p.message })) });
      else this.post({ type: 'plan', requestId, error: error instanceof Error ? error.message : String(error) });
      return;
    }
    void this.computeInterference(requestId, form);
  }

  /** Sign conflict and task-vector cosine per layer of the first two models over the base (a sampled diff). */
  private async computeInterference(requestId: number, form: MergeForm): Promise<void> {
    this.interference?.abort();
    const method = findMethod(form.method);
    if (!method || method.base === 'none' || !form.base || form.models.length < 2) {
      this.post({ type: 'interference', requestId, note: method && method.base !== 'none' ? 'Choose a base and two models to see how their task vectors interfere.' : `${form.method} takes no base, so there are no task vectors to compare.` });
      return;
    }
    const controller = new AbortController();
    this.interference = controller;
    try {
      const [a, b, base] = await Promise.all([form.models[0].path, form.models[1].path, form.base].map((p) => openCheckpoint(p)));
      const report = await diffCheckpoints(this.deps.engine, a, b, { base, mode: 'quick', signal: controller.signal });
      const rows = interferenceRows(report.tensors);
      const names = [form.models[0].path, form.models[1].path].map((p) => path.basename(p));
      this.post({ type: 'interference', requestId, rows, note: `Task vectors of ${names[0]} and ${names[1]} over ${path.basename(form.base)}, from a fixed sample of elements.` });
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      this.post({ type: 'interference', requestId, note: `Could not compare the task vectors: ${error instanceof Error ? error.message : String(error)}` });
    }
  }

  /** Writes the recipe beside the output; an existing different file is replaced only when the user says so. */
  private async saveRecipe(form: MergeForm): Promise<string | undefined> {
    const problem = this.formProblem(form);
    if (problem) {
      this.post({ type: 'status', state: 'failed', message: problem });
      return undefined;
    }
    const { file, text } = formToRecipe(form);
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') !== text) {
      const replace = 'Replace';
      const choice = await vscode.window.showWarningMessage(`${vscode.workspace.asRelativePath(file)} already exists with another recipe.`, { modal: true, detail: 'Replace it with the recipe of this form, or cancel and choose another output folder.' }, replace);
      if (choice !== replace) return undefined;
    }
    if (!vscode.workspace.isTrusted) {
      this.post({ type: 'status', state: 'refused', message: 'Restricted Mode: Graft writes no files in an untrusted workspace. Use "Open as Untitled" to see the recipe, or trust the workspace.' });
      return undefined;
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    this.deps.log.info(`Merge panel: saved ${file}.`);
    return file;
  }

  private async merge(form: MergeForm): Promise<void> {
    if (this.deps.runner.refuseIfRestricted('merge from the panel')) {
      this.post({ type: 'status', state: 'refused', message: 'Restricted Mode: merging writes files, so it needs a trusted workspace. The plan and the recipe still work here.' });
      return;
    }
    const file = await this.saveRecipe(form);
    if (!file) return;
    this.post({ type: 'status', state: 'running', message: `Merging into ${form.out}… (progress and Cancel in the notification)` });
    const finished = await this.deps.runner.run(vscode.Uri.file(file), form.out);
    if (finished) this.post({ type: 'status', state: 'done', message: `Merged ${finished.result.tensors} tensors into ${finished.out}.`, out: finished.out });
    else this.post({ type: 'status', state: 'failed', message: 'The merge did not complete (see the notification).' });
  }

  private post(message: MergeToWebview): void {
    if (this.ready && !this.disposed) void this.panel.webview.postMessage(message);
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.interference?.abort();
    for (const d of this.disposables) d.dispose();
    this.onDispose();
  }
}

/** Element-weighted conflict and task-vector cosine per layer, in layer order. */
export function interferenceRows(tensors: readonly TensorDiff[]): InterferenceRow[] {
  const rows = new Map<string, { label: string; order: number; numel: number; conflict: number; cosine: number }>();
  for (const t of tensors) {
    if (t.layer === null || t.conflict === undefined || t.cosine_tv === undefined) continue;
    const key = `${t.group ?? ''}:${t.layer}`;
    const row = rows.get(key) ?? { label: t.group && t.group !== 'layers' ? `${t.group} ${t.layer}` : `layer ${t.layer}`, order: t.layer, numel: 0, conflict: 0, cosine: 0 };
    row.numel += t.numel;
    row.conflict += t.conflict * t.numel;
    row.cosine += t.cosine_tv * t.numel;
    rows.set(key, row);
  }
  return [...rows.values()].sort((x, y) => x.order - y.order).map((r) => ({ label: r.label, conflict: r.numel ? r.conflict / r.numel : 0, cosine: r.numel ? r.cosine / r.numel : 0 }));
}
