// Model surgery in the editor: the merge panel, recipe files (diagnostics, quick fixes, completion,
// hover, CodeLens), running recipes with progress and cancel, the right-click actions that write a
// recipe for the user: "Merge with...", "Merge Adapter into Base", "Transfer Fine-tune to New
// Base..." (after its connectivity report) and the compare view's "Swap These Layers from B", and
// the diff vector and LoRA actions (operations.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CatalogEntry } from '../../core/catalog/types';
import { readAdapterConfig } from '../../core/merge';
import { catalogResolver } from '../../core/merge/resolve';
import { layerSwapSlices, recipeToYaml, type RecipeSpec } from '../../core/merge/recipe/write';
import { openCheckpoint } from '../../core/safetensors';
import { parseTensorName, SINGLE_STACK_GROUP } from '../../core/tensors/names';
import { transferRecipePath, transferRecipeText } from '../../core/transfer';
import type { Engine } from '../engine';
import type { ModelIndex } from '../lineage/modelIndex';
import { pathOf } from '../targets';
import { showConnectivityPanel, type ConnectivitySession } from '../webviews/connectivityPanel';
import { registerMergePanel } from '../webviews/mergePanel';
import { askNumber, askOutput, freshPath, isWholeModel, likelyBases, modelName, optionsOf, pickCandidate, wholeModels, type Candidate } from './choices';
import { MergeRunner, type FinishedMerge } from './mergeRunner';
import { SurgeryOperations, type ApplyDiffOptions, type ExtractDiffOptions, type ExtractLoraOptions } from './operations';
import { isRecipeDocument, registerRecipeLanguage } from './recipeLanguage';

/**
 * Context keys for `resourcePath in ...` menu conditions: whole models (their folder, index and
 * weight files), adapter folders and patch files.
 */
const MODEL_FOLDERS = 'graft.modelFolders';
const ADAPTER_FOLDERS = 'graft.adapterFolders';
const PATCH_FILES = 'graft.patchFiles';

export interface SurgeryApi {
  runner: Pick<MergeRunner, 'onDidProgress' | 'onDidFinish' | 'isRunning' | 'cancel'>;
  /** The transfer connectivity panel last shown, for tests and other extensions. */
  readonly lastConnectivity: ConnectivitySession | undefined;
}

/** Answers "Transfer Fine-tune to New Base..." would otherwise ask for. */
export interface TransferOptions {
  /** The fine-tune's base, when the lineage does not say. */
  oldBase: string;
  newBase: string;
  scale: number;
  out: string;
  /** Replace an existing output (once the new one is complete) without asking. */
  replace: boolean;
}

/** Swap request from the compare view: layers (of the single numbered stack) to take from B. */
export interface LayerSwapRequest {
  a: string;
  b: string;
  layers: number[];
}

/**
 * Where a generated recipe goes: `stem.graft.yml` in `folder`, numbered rather than replacing a
 * file the user has, and so that its default output folder (the same name without the
 * extension) is free too.
 */
function freshRecipeFile(folder: string, stem: string): string {
  return freshPath(folder, stem, '.graft.yml', (file) => [file.replace(/\.graft\.yml$/, '')]);
}

export function registerSurgery(context: vscode.ExtensionContext, engine: Engine, log: vscode.LogOutputChannel, index: ModelIndex): SurgeryApi {
  const version = String(context.extension.packageJSON.version);
  const runner = new MergeRunner(engine, index, log, version);
  const operations = new SurgeryOperations(engine, index, runner, log, version);
  let lastConnectivity: ConnectivitySession | undefined;
  const panel = registerMergePanel({ extensionUri: context.extensionUri, log, engine, index, runner });
  registerRecipeLanguage(context, index, runner, log);

  const updateContextKeys = () => {
    const entries = index.catalog?.entries ?? [];
    const folders = (kind: (e: CatalogEntry) => boolean) => entries.filter(kind).map((e) => e.path);
    const models = entries.filter(isWholeModel);
    void vscode.commands.executeCommand('setContext', MODEL_FOLDERS, [...new Set(models.flatMap((e) => [e.path, ...(e.indexFile ? [e.indexFile] : []), ...e.weightFiles]))]);
    void vscode.commands.executeCommand('setContext', ADAPTER_FOLDERS, folders((e) => e.kind === 'adapter'));
    void vscode.commands.executeCommand('setContext', PATCH_FILES, folders((e) => e.kind === 'patch'));
  };
  updateContextKeys();

  const recipeUriOf = (arg: unknown): vscode.Uri | undefined => {
    if (arg instanceof vscode.Uri) return arg;
    const editor = vscode.window.activeTextEditor;
    if (editor && isRecipeDocument(editor.document)) return editor.document.uri;
    void vscode.window.showInformationMessage('Open a merge recipe (a *.graft.yml file, or YAML with merge_method) first.');
    return undefined;
  };

  /** Writes a generated recipe and opens it, so its CodeLens offers Plan and Run Merge. */
  const writeRecipe = async (file: string, spec: RecipeSpec): Promise<vscode.Uri | undefined> => {
    if (runner.refuseIfRestricted(`write ${file}`)) return undefined;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, recipeToYaml(spec, path.dirname(file)), { flag: 'wx' });
    log.info(`Wrote the recipe ${file}.`);
    const uri = vscode.Uri.file(file);
    await vscode.window.showTextDocument(uri, { preview: false });
    return uri;
  };

  const pickModel = async (title: string, exclude: string[]): Promise<string | undefined> => {
    const excluded = new Set(exclude.map((p) => path.resolve(p)));
    const items = (index.catalog?.entries ?? [])
      .filter((e) => isWholeModel(e) && !excluded.has(e.path))
      .map((e) => ({ label: index.nodeForEntry(e)?.label ?? e.name, description: vscode.workspace.asRelativePath(e.path), path: e.path }));
    const choice = await vscode.window.showQuickPick(items, { title, matchOnDescription: true, placeHolder: items.length ? 'Choose a model' : 'No models indexed yet' });
    return choice?.path;
  };

  const parentsOf = (target: string): string[] => {
    const entry = index.entryContaining(target);
    const node = entry && index.nodeForEntry(entry);
    if (!node || !index.graph) return [];
    return index.graph.edges.filter((e) => e.child === node.id).map((e) => index.node(e.parent)?.locations?.[0]).filter((p): p is string => !!p);
  };

  const mergeAdapter = async (arg: unknown, outArg?: string): Promise<FinishedMerge | undefined> => {
    const adapter = pathOf(arg);
    // Refused before any question: the answers could not be used.
    if (!adapter || runner.refuseIfRestricted(`merge ${adapter} into its base`)) return undefined;
    const folder = fs.statSync(adapter).isDirectory() ? adapter : path.dirname(adapter);
    let config;
    try {
      config = await readAdapterConfig(folder);
    } catch (error) {
      void vscode.window.showErrorMessage(`${path.basename(folder)} is not a PEFT adapter Graft can merge: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
    const declared = config.baseModel;
    await index.whenIdle();
    let base = declared && index.catalog ? await catalogResolver(index.catalog)(declared) : undefined;
    if (!base && declared && fs.existsSync(path.resolve(folder, declared))) base = path.resolve(folder, declared);
    if (!base) {
      base = await pickModel(`The base of ${path.basename(folder)}${declared ? ` ("${declared}") is not indexed` : ' is not declared'}: choose it`, []);
      if (!base) return undefined;
    }
    const suggestion = path.join(path.dirname(folder), `${path.basename(folder)}-merged`);
    const out = outArg ?? (await askOutput(`Merge ${path.basename(folder)} into ${modelName(base)}: output folder`, suggestion, 'Merge Into This Folder'));
    if (!out) return undefined;
    const recipeFile = freshRecipeFile(path.dirname(out), path.basename(out));
    const uri = await writeRecipe(recipeFile, {
      method: 'passthrough',
      models: [{ model: `${base}+${folder}` }],
      comment: `${path.basename(folder)} merged into its base ${modelName(base)} (W + scale * B A for every adapted module).`,
    });
    return uri && runner.run(uri, out);
  };

  /** New base versions for a fine-tune of `oldBase`: models of its architecture first, base models (no parent) before others. */
  const newBaseCandidates = (finetune: string, oldBase: string): Candidate[] => {
    const architecture = index.entryContaining(oldBase)?.architecture;
    const parentless = new Set((index.graph?.nodes ?? []).filter((n) => !(index.graph?.edges ?? []).some((e) => e.child === n.id)).map((n) => n.id));
    const skip = new Set([finetune, oldBase].map((p) => index.entryContaining(p)?.path ?? path.resolve(p)));
    return wholeModels(index)
      .filter((c) => !skip.has(c.path))
      .map((c) => {
        const entry = index.entryContaining(c.path);
        const same = architecture !== undefined && entry?.architecture === architecture;
        const root = entry !== undefined && parentless.has(index.nodeForEntry(entry)?.id ?? '');
        return { ...c, why: same ? (root ? 'same architecture, a base model' : 'same architecture') : 'another architecture: the report will say whether the diff fits', rank: same ? (root ? 0 : 1) : 2 };
      })
      .sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label, undefined, { numeric: true }));
  };

  const labelOf = (target: string) => {
    const entry = index.entryContaining(target);
    return { path: target, label: (entry && index.nodeForEntry(entry)?.label) ?? modelName(target) };
  };

  /**
   * The linear-connectivity report of moving `finetune`'s changes from `oldBase` to `newBase`, as a
   * view with Transfer / Don't Transfer: it says whether the fine-tune's changes carry over.
   */
  const showConnectivityReport = (oldBase: string, newBase: string, finetune: string): ConnectivitySession => {
    log.info(`Transfer of ${finetune}: ${oldBase} -> ${newBase}; computing the linear-connectivity report.`);
    lastConnectivity = showConnectivityPanel({ extensionUri: context.extensionUri, log, runner: engine }, { finetune: labelOf(finetune), from: labelOf(oldBase), to: labelOf(newBase) });
    return lastConnectivity;
  };

  /**
   * "Transfer Fine-tune to New Base...": new base + s x (fine-tune - its base). Shows the
   * connectivity report first; on "Transfer" asks the scale and the output, writes the
   * diff_transfer recipe beside the output (<out>.transfer.yml, as `graft transfer` does) and runs it.
   */
  const transfer = async (arg: unknown, given: Partial<TransferOptions>): Promise<FinishedMerge | undefined> => {
    if (runner.refuseIfRestricted('transfer a fine-tune to a new base')) return undefined;
    await index.whenIdle();
    const target = pathOf(arg);
    const finetune = target ? (index.entryContaining(target)?.path ?? target) : await pickCandidate('Transfer Fine-tune to New Base: which fine-tune?', wholeModels(index), 'Choose the fine-tuned model');
    if (!finetune) return undefined;
    const name = modelName(finetune);
    // The declared parent (else one inferred from the weights); asked only when there is none.
    const parent = likelyBases(index, finetune).find((c) => c.rank <= 1)?.path;
    const oldBase = given.oldBase ?? parent ?? (await pickCandidate(`Transfer ${name} (1/2): Graft does not know what it was fine-tuned from; choose its base`, likelyBases(index, finetune), 'The model it was fine-tuned from (declare base_model in its README.md card to skip this)'));
    if (!oldBase) return undefined;
    const newBase = given.newBase ?? (await pickCandidate(`Transfer ${name} (fine-tuned from ${modelName(oldBase)}) onto which new base?`, newBaseCandidates(finetune, oldBase), 'Choose the new base version'));
    if (!newBase) return undefined;

    const session = showConnectivityReport(oldBase, newBase, finetune);
    if ((await session.decision) !== 'transfer') return undefined;
    const risky = session.report?.verdict === 'risky';
    const scale = given.scale ?? (await askNumber(
      `Transfer ${name}: scale of its changes`,
      risky ? 'The report calls this transfer risky: a scale below 1 (e.g. 0.5) adds only part of the fine-tune\'s changes.' : '1 adds all of the fine-tune\'s changes to the new base; below 1 adds part of them.',
      '1',
      (n) => (n === 0 ? 'A scale of 0 gives the new base back unchanged.' : undefined),
    ));
    const out = scale === undefined ? undefined : given.out ?? (await askOutput(`Transfer ${name}: write the transferred model into`, freshPath(path.dirname(finetune), `${name}-on-${modelName(newBase)}`), 'Transfer Into This Folder'));
    if (scale === undefined || !out) {
      session.setStatus('declined');
      return undefined;
    }
    const recipeFile = transferRecipePath(out);
    const text = transferRecipeText({ finetune, from: oldBase, to: newBase, out, scale }, recipeFile);
    if (fs.existsSync(recipeFile) && fs.readFileSync(recipeFile, 'utf8') !== text && !given.replace) {
      const replace = 'Replace Recipe';
      const choice = await vscode.window.showWarningMessage(`${recipeFile} already exists with another recipe.`, { modal: true, detail: 'The transfer writes its recipe beside its output so it can be rerun. Replace that recipe, or cancel and choose another output.' }, replace);
      if (choice !== replace) {
        session.setStatus('declined');
        return undefined;
      }
    }
    fs.mkdirSync(path.dirname(recipeFile), { recursive: true });
    fs.writeFileSync(`${recipeFile}.partial`, text);
    fs.renameSync(`${recipeFile}.partial`, recipeFile);
    log.info(`Wrote the transfer recipe ${recipeFile} (scale ${scale}).`);
    session.setStatus('transferring');
    const finished = await runner.run(vscode.Uri.file(recipeFile), out, { force: given.replace });
    session.setStatus(finished ? 'done' : 'failed', finished ? `Written to ${finished.out}; its recipe is ${path.basename(recipeFile)}.` : 'The transfer did not complete (cancelled, or see the notification and the log).');
    return finished;
  };

  const swapLayers = async (request: LayerSwapRequest): Promise<vscode.Uri | undefined> => {
    const layers = [...new Set(request.layers)].sort((x, y) => x - y);
    if (layers.length === 0 || runner.refuseIfRestricted('write a layer swap recipe')) return undefined;
    let total: number;
    try {
      const [a, b] = await Promise.all([openCheckpoint(request.a), openCheckpoint(request.b)]);
      const count = (names: string[]) => 1 + Math.max(-1, ...names.map((n) => parseTensorName(n)).filter((p) => p.group === SINGLE_STACK_GROUP && p.layer !== null).map((p) => p.layer!));
      total = count(a.tensors.map((t) => t.name));
      const inB = count(b.tensors.map((t) => t.name));
      if (total === 0 || inB !== total) {
        void vscode.window.showErrorMessage(`Layer swapping needs two models with the same numbered layers: ${path.basename(request.a)} has ${total}, ${path.basename(request.b)} has ${inB}.`);
        return undefined;
      }
    } catch (error) {
      void vscode.window.showErrorMessage(`Cannot read the models to swap layers: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
    const folderOf = (p: string) => (p.endsWith('.safetensors') || p.endsWith('.json') ? path.dirname(p) : p);
    const a = folderOf(request.a);
    const b = folderOf(request.b);
    const runs = layers.reduce<number[][]>((acc, l) => {
      const last = acc[acc.length - 1];
      if (last && last[last.length - 1] === l - 1) last.push(l);
      else acc.push([l]);
      return acc;
    }, []).map((r) => (r.length > 1 ? `${r[0]}-${r[r.length - 1]}` : String(r[0])));
    const file = freshRecipeFile(path.dirname(a), `${modelName(a)}-with-${modelName(b)}-layers-${runs.join('_')}`);
    return writeRecipe(file, {
      method: 'passthrough',
      slices: layerSwapSlices(a, b, total, layers),
      comment: `${modelName(a)} with layer${layers.length > 1 ? 's' : ''} ${runs.join(', ')} taken from ${modelName(b)}; embeddings and head from the model of the first and last slice.`,
    });
  };

  context.subscriptions.push(
    runner,
    panel,
    index.onDidChange(updateContextKeys),
    vscode.commands.registerCommand('graft.mergeModels', (prefill?: unknown) => panel.show(typeof prefill === 'object' && prefill !== null && !(prefill instanceof vscode.Uri) ? prefill : undefined)),
    vscode.commands.registerCommand('graft.mergeWith', async (arg?: unknown, selection?: unknown) => {
      const picked = (Array.isArray(selection) && selection.length > 1 ? selection : [arg]).map(pathOf).filter((p): p is string => !!p);
      if (picked.length === 0) return;
      const models = picked.map((p) => index.entryContaining(p)?.path ?? p);
      const parents = models.map(parentsOf);
      const common = parents[0]?.find((p) => parents.every((list) => list.includes(p)));
      const out = path.join(path.dirname(models[0]), `${modelName(models[0])}-merge`);
      panel.show({ models: models.map((p) => ({ path: p, parameters: {} })), base: common, out });
    }),
    vscode.commands.registerCommand('graft.mergeAdapter', (arg?: unknown, out?: unknown) => mergeAdapter(arg, typeof out === 'string' ? out : undefined)),
    vscode.commands.registerCommand('graft.transferFinetune', (arg?: unknown, options?: unknown) => transfer(arg, typeof options === 'string' ? { newBase: options } : optionsOf<TransferOptions>(options))),
    vscode.commands.registerCommand('graft.extractPatch', (arg?: unknown, options?: unknown) => operations.extractDiff(arg, optionsOf<ExtractDiffOptions>(options))),
    vscode.commands.registerCommand('graft.applyPatch', (arg?: unknown, options?: unknown) => operations.applyDiff(arg, optionsOf<ApplyDiffOptions>(options))),
    vscode.commands.registerCommand('graft.extractLora', (arg?: unknown, options?: unknown) => operations.extractAdapter(arg, optionsOf<ExtractLoraOptions>(options))),
    vscode.commands.registerCommand('graft.swapLayersFromB', (request: LayerSwapRequest) => swapLayers(request)),
    vscode.commands.registerCommand('graft.planRecipe', (arg?: unknown) => {
      const uri = recipeUriOf(arg);
      return uri && runner.showPlan(uri);
    }),
    vscode.commands.registerCommand('graft.runRecipe', (arg?: unknown, out?: unknown, options?: unknown) => {
      const uri = recipeUriOf(arg);
      return uri && runner.run(uri, typeof out === 'string' ? out : undefined, typeof options === 'object' && options ? options : {});
    }),
    vscode.commands.registerCommand('graft.cancelMerge', () => runner.cancel()),
    vscode.commands.registerCommand('graft.compareWithParents', async (arg?: unknown, inputs?: unknown) => {
      const target = pathOf(arg);
      if (!target) return;
      const parents = Array.isArray(inputs) && inputs.length ? inputs.filter((p): p is string => typeof p === 'string') : parentsOf(target);
      const candidates = [...new Set(parents.map((p) => index.entryContaining(p)?.path ?? p))].filter((p) => fs.existsSync(p) && path.resolve(p) !== path.resolve(target));
      if (candidates.length === 0) {
        void vscode.window.showInformationMessage(`No parent of ${path.basename(target)} is on disk to compare with.`);
        return;
      }
      const parent = candidates.length === 1 ? candidates[0] : (await vscode.window.showQuickPick(candidates.map((p) => ({ label: path.basename(p), description: vscode.workspace.asRelativePath(p), path: p })), { title: `Compare ${path.basename(target)} with which parent?` }))?.path;
      if (parent) await vscode.commands.executeCommand('graft.compareCheckpoints', vscode.Uri.file(parent), vscode.Uri.file(target));
    }),
  );
  return {
    runner,
    get lastConnectivity() {
      return lastConnectivity;
    },
  };
}
