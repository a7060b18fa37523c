// Right-click surgery that is not a merge recipe: "Extract Diff Vector..." (a weight patch: what
// fine-tuning changed, model - base), "Apply Diff Vector..." (model + s x patch; -1 removes one)
// and "Extract LoRA Adapter..." (the fine-tune as a low-rank PEFT adapter). Each asks what it
// needs (the most likely base first), is refused in Restricted Mode before asking anything, runs on
// the worker pool in the merges' cancellable progress, writes atomically and never replaces a
// file without asking, then refreshes the index and shows the result in the lineage tree.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CatalogEntry } from '../../core/catalog/types';
import { formatBytes } from '../../core/format';
import { extractLora, type LoraExtractResult } from '../../core/lora';
import { MergeOutputError } from '../../core/merge/outputFolder';
import { applyPatches, extractPatch, patchBaseDistance, PATCH_DTYPES, PatchError, readPatch, type ApplyResult, type ExtractResult, type PatchInfo } from '../../core/patch';
import { openCheckpoint, type CheckpointLayout, type DType } from '../../core/safetensors';
import { weightIdentity } from '../../core/tensors/identity';
import type { Engine } from '../engine';
import type { ModelIndex } from '../lineage/modelIndex';
import { pathOf } from '../targets';
import { askNumber, askOutput, freshPath, likelyBases, mayWrite, modelName, percent, pickCandidate, wholeModels } from './choices';
import type { MergeRunner } from './mergeRunner';

export interface ExtractDiffOptions {
  base: string;
  /** Stored dtype; '' or absent: the model's own. */
  dtype: string;
  density: number;
  out: string;
  /** Replace an existing file (once the new one is complete) without asking. */
  replace: boolean;
}

export interface ApplyDiffOptions {
  /** The model to patch (when the command was started on a patch). */
  model: string;
  /** The patches (when the command was started on a model). */
  patches: string[];
  scales: number[];
  out: string;
  replace: boolean;
  /** Apply patches made against other weights without asking. */
  force: boolean;
}

export interface ExtractLoraOptions {
  base: string;
  rank: number;
  energy: number;
  out: string;
  replace: boolean;
}

const SAFETENSORS_FILTER = { Safetensors: ['safetensors'] };

/** Failures that already say what is wrong and what to do; others also point to the log. */
function reportFailure(log: vscode.LogOutputChannel, what: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof PatchError || error instanceof MergeOutputError) {
    log.warn(`${what}: ${message}`);
    void vscode.window.showErrorMessage(message);
    return;
  }
  log.error(`${what} failed:`, error);
  void vscode.window.showErrorMessage(`${what} failed: ${message}`, 'Show Log').then((choice) => choice && log.show());
}

export class SurgeryOperations {
  constructor(
    private readonly engine: Engine,
    private readonly index: ModelIndex,
    private readonly runner: MergeRunner,
    private readonly log: vscode.LogOutputChannel,
    private readonly graftVersion: string,
  ) {}

  /** The model a command was started on (its catalog entry's path), or one picked from the catalog. */
  private async modelOf(arg: unknown, title: string): Promise<string | undefined> {
    const given = pathOf(arg);
    if (given) return this.index.entryContaining(given)?.path ?? given;
    await this.index.whenIdle();
    return pickCandidate(title, wholeModels(this.index), 'Choose a model');
  }

  private async pickBase(title: string, model: string): Promise<string | undefined> {
    await this.index.whenIdle();
    return pickCandidate(title, likelyBases(this.index, model), 'Choose the base the model was fine-tuned from (the most likely first)');
  }

  private async open(target: string): Promise<CheckpointLayout | undefined> {
    try {
      return await openCheckpoint(target);
    } catch (error) {
      void vscode.window.showErrorMessage(`Cannot read ${target} as a checkpoint: ${error instanceof Error ? error.message : String(error)} Choose a .safetensors file, a sharded set's index or a model folder.`);
      return undefined;
    }
  }

  /** After a write: the index catches up, the tree shows the result, and the user is offered to open it. */
  private async finish(out: string, summary: string, actions: Record<string, () => unknown>): Promise<void> {
    this.log.info(summary);
    await this.index.refresh(`wrote ${out}`);
    await vscode.commands.executeCommand('graft.showInLineage', vscode.Uri.file(out));
    const all: Record<string, () => unknown> = { ...actions, 'Reveal in Explorer': () => vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(out)) };
    void vscode.window.showInformationMessage(summary, ...Object.keys(all)).then((choice) => choice && all[choice]());
  }

  async extractDiff(arg: unknown, options: Partial<ExtractDiffOptions>): Promise<ExtractResult | undefined> {
    if (this.runner.refuseIfRestricted('extract a diff vector')) return undefined;
    const model = await this.modelOf(arg, 'Extract Diff Vector: from which fine-tuned model?');
    if (!model) return undefined;
    const name = modelName(model);
    const base = options.base ?? (await this.pickBase(`Extract Diff Vector (1/4): ${name} minus which base?`, model));
    if (!base) return undefined;
    let dtype = options.dtype;
    if (dtype === undefined) {
      const choice = await vscode.window.showQuickPick(
        [
          { label: 'Same as the model', description: 'each tensor in its own dtype', value: '' },
          { label: 'F32', description: 'exact for 16-bit models (twice their size)', value: 'F32' },
          { label: 'BF16', description: 'half the size of F32, one bf16 rounding', value: 'BF16' },
          { label: 'F16', description: 'half the size of F32, one f16 rounding', value: 'F16' },
          { label: 'F64', description: 'exact for float32 models', value: 'F64' },
        ],
        { title: `Extract Diff Vector (2/4): store the differences as`, placeHolder: 'The dtype of the stored differences' },
      );
      if (!choice) return undefined;
      dtype = choice.value;
    }
    if (dtype && !PATCH_DTYPES.includes(dtype as DType)) {
      void vscode.window.showErrorMessage(`A diff vector can be stored as ${PATCH_DTYPES.join(', ')}, not ${dtype}.`);
      return undefined;
    }
    const density = options.density ?? (await askNumber(
      'Extract Diff Vector (3/4): density',
      'Share of each tensor\'s differences to keep, the largest by magnitude: 1 keeps them all (exact); 0.1 keeps the top 10% (a sparse patch).',
      '1',
      (n) => (n > 0 && n <= 1 ? undefined : 'The density is above 0 and at most 1.'),
    ));
    if (density === undefined) return undefined;
    const out = options.out ?? (await askOutput('Extract Diff Vector (4/4): save the patch as', freshPath(path.dirname(model), `${name}-minus-${modelName(base)}`, '.safetensors'), 'Save Diff Vector', SAFETENSORS_FILTER));
    if (!out) return undefined;
    const write = await mayWrite(out, options.replace);
    if (!write.ok) return undefined;
    const [modelLayout, baseLayout] = [await this.open(model), await this.open(base)];
    if (!modelLayout || !baseLayout) return undefined;
    this.log.info(`Extracting the diff vector ${name} - ${modelName(base)} (dtype ${dtype || 'of the model'}, density ${density}) into ${out}.`);
    try {
      const result = await this.runner.runOperation(`extracting the diff vector of ${name}`, (signal, report) => extractPatch({
        runner: this.engine, model: modelLayout, base: baseLayout, out, dtype: (dtype || undefined) as DType | undefined, density, force: write.force, signal, onProgress: (f) => report(f), graftVersion: this.graftVersion,
      }));
      if (!result) return undefined;
      const rounding = result.inexact > 0 ? ` ${result.inexact.toLocaleString('en-US')} stored values carry the dtype's rounding.` : '';
      await this.finish(result.out, `Extracted ${path.basename(result.out)}: ${result.tensors} changed tensors (${result.unchanged} unchanged left out), ${percent(result.kept / Math.max(1, result.elements))} of their elements stored, ${formatBytes(result.bytes)}.${rounding}`, {
        'Apply to…': () => vscode.commands.executeCommand('graft.applyPatch', vscode.Uri.file(result.out)),
      });
      return result;
    } catch (error) {
      reportFailure(this.log, `Extracting the diff vector of ${name}`, error);
      return undefined;
    }
  }

  /** The patch files of the catalog, those fitting `modelWeights` first. */
  private async pickPatches(model: string, modelWeights: string | undefined): Promise<string[] | undefined> {
    await this.index.whenIdle();
    const items = (this.index.catalog?.entries ?? [])
      .filter((e) => e.kind === 'patch')
      .map((e) => {
        const fits = modelWeights !== undefined && e.patch?.baseWeights === modelWeights;
        const removes = modelWeights !== undefined && e.patch?.sourceWeights === modelWeights;
        const why = fits ? 'made against this model' : removes ? 'taken from this model: a scale of -1 removes it' : `made against ${e.patch?.base ?? 'an unknown base'}`;
        return { label: e.name, description: why, detail: vscode.workspace.asRelativePath(e.path), path: e.path, picked: fits, rank: fits ? 0 : removes ? 1 : 2 };
      })
      .sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label));
    if (items.length === 0) {
      const picked = await vscode.window.showOpenDialog({ title: `Apply Diff Vector to ${modelName(model)}: no patch is indexed; choose patch files`, canSelectMany: true, filters: SAFETENSORS_FILTER });
      return picked?.map((u) => u.fsPath);
    }
    const chosen = await vscode.window.showQuickPick(items, { title: `Apply Diff Vector (1/3): which patches to add to ${modelName(model)}?`, canPickMany: true, placeHolder: 'Several patches compose in one pass', matchOnDescription: true });
    return chosen && chosen.length > 0 ? chosen.map((c) => c.path) : undefined;
  }

  async applyDiff(arg: unknown, options: Partial<ApplyDiffOptions>): Promise<ApplyResult | undefined> {
    if (this.runner.refuseIfRestricted('apply a diff vector')) return undefined;
    const given = pathOf(arg);
    const givenEntry = given ? this.index.entryContaining(given) : undefined;
    const isPatchFile = (file: string) => readPatch(file).then(() => true, () => false);
    const startedOnPatch = given !== undefined && (givenEntry ? givenEntry.kind === 'patch' : given.endsWith('.safetensors') && (await isPatchFile(given)));
    let model: string | undefined;
    let patchFiles: string[] | undefined;
    if (startedOnPatch && given) {
      patchFiles = [givenEntry?.path ?? given];
      await this.index.whenIdle();
      const patchNode = givenEntry && this.index.nodeForEntry(givenEntry);
      const baseId = patchNode && this.index.graph?.edges.find((edge) => edge.child === patchNode.id && edge.relation === 'patch')?.parent;
      const baseNote = (e: CatalogEntry) => (baseId !== undefined && this.index.nodeForEntry(e)?.id === baseId ? 'the patch\'s base' : undefined);
      model = options.model ?? (await pickCandidate(`Apply Diff Vector: add ${path.basename(given)} to which model?`, wholeModels(this.index, baseNote), 'Choose the model (the patch\'s base first)'));
    } else {
      model = await this.modelOf(arg, 'Apply Diff Vector: to which model?');
      if (model && !options.patches) {
        const layout = await this.open(model);
        if (!layout) return undefined;
        patchFiles = await this.pickPatches(model, await weightIdentity(layout));
      } else patchFiles = options.patches;
    }
    if (!model || !patchFiles?.length) return undefined;
    const name = modelName(model);
    const layout = await this.open(model);
    if (!layout) return undefined;
    let infos: PatchInfo[];
    try {
      infos = await Promise.all(patchFiles.map((f) => readPatch(f)));
    } catch (error) {
      reportFailure(this.log, 'Reading the patch', error);
      return undefined;
    }
    const modelWeights = await weightIdentity(layout);
    const scales: number[] = [];
    for (const [i, info] of infos.entries()) {
      let scale: number | undefined = options.scales?.[i];
      if (scale === undefined) {
        const removing = info.sourceWeights === modelWeights && info.baseWeights !== modelWeights;
        scale = await askNumber(
          `Apply Diff Vector (2/3): scale of ${path.basename(info.file)}`,
          removing ? `${name} is the model this patch was taken from: -1 removes it (gives its base back).` : '1 adds the patch as extracted, 0.5 half of it, -1 subtracts it.',
          removing ? '-1' : '1',
          (n) => (n === 0 ? 'A scale of 0 changes nothing; give another scale or leave this patch out.' : undefined),
        );
        if (scale === undefined) return undefined;
      }
      scales.push(scale);
    }
    const out = options.out ?? (await askOutput('Apply Diff Vector (3/3): write the patched model into', freshPath(path.dirname(model), `${name}-patched`), 'Write Patched Model Here'));
    if (!out) return undefined;
    const write = await mayWrite(out, options.replace);
    if (!write.ok) return undefined;

    // A patch made against other weights: say how far this model is from its base, and ask.
    let acceptedMismatch = false;
    for (const [i, info] of infos.entries()) {
      const removesOwn = scales[i] < 0 && info.sourceWeights === modelWeights;
      if (info.baseWeights === modelWeights || removesOwn) continue;
      let distance;
      try {
        distance = await this.runner.runOperation(`checking ${path.basename(info.file)} against ${name}`, (signal) => patchBaseDistance(this.engine, layout, info, signal));
      } catch (error) {
        reportFailure(this.log, `Applying ${path.basename(info.file)} to ${name}`, error);
        return undefined;
      }
      if (!distance) return undefined;
      const detail = `Over the ${info.tensors} tensors the patch changes, ${name} is at least ${percent(distance.relativeDistanceAtLeast, 2)} away from the patch's base (relative L2 distance). ` +
        'A diff vector added to other weights may not do what it did to its base: apply it to its base, or apply it anyway and check the result.';
      this.log.warn(`${info.file} was made against ${info.base} (weights ${info.baseWeights}); ${model} has weights ${modelWeights}, at least ${percent(distance.relativeDistanceAtLeast, 2)} from that base.`);
      if (!options.force) {
        const choice = await vscode.window.showWarningMessage(`${path.basename(info.file)} was made against "${info.base}", not ${name}.`, { modal: true, detail }, 'Apply Anyway');
        if (choice !== 'Apply Anyway') return undefined;
      }
      acceptedMismatch = true;
    }
    const list = infos.map((p, i) => `${path.basename(p.file)} x ${scales[i]}`).join(', ');
    this.log.info(`Applying ${list} to ${model} into ${out}.`);
    try {
      const result = await this.runner.runOperation(`applying ${infos.length === 1 ? path.basename(infos[0].file) : `${infos.length} patches`} to ${name}`, (signal, report) => applyPatches({
        runner: this.engine, model: layout, patches: infos.map((info, i) => ({ info, scale: scales[i] })), out, force: write.force || acceptedMismatch, shardBytes: this.runner.shardBytes(), signal, onProgress: (f) => report(f), graftVersion: this.graftVersion,
      }));
      if (!result) return undefined;
      const far = result.mismatched.map((m) => ` ${path.basename(m.patch)} was made against other weights (at least ${percent(m.relativeDistanceAtLeast, 2)} away).`).join('');
      await this.finish(result.out, `Applied ${list} to ${result.patchedTensors} of ${result.tensors} tensors of ${name} into ${path.basename(result.out)} (${formatBytes(result.bytes)}).${far}`, {
        'Compare with Model': () => vscode.commands.executeCommand('graft.compareCheckpoints', vscode.Uri.file(model), vscode.Uri.file(result.out)),
      });
      return result;
    } catch (error) {
      reportFailure(this.log, `Applying the diff vector to ${name}`, error);
      return undefined;
    }
  }

  async extractAdapter(arg: unknown, options: Partial<ExtractLoraOptions>): Promise<LoraExtractResult | undefined> {
    if (this.runner.refuseIfRestricted('extract a LoRA adapter')) return undefined;
    const model = await this.modelOf(arg, 'Extract LoRA Adapter: from which fine-tuned model?');
    if (!model) return undefined;
    const name = modelName(model);
    const base = options.base ?? (await this.pickBase(`Extract LoRA Adapter (1/3): the adapter of ${name} on which base?`, model));
    if (!base) return undefined;
    let { rank, energy } = options;
    if (rank === undefined && energy === undefined) {
      const mode = await vscode.window.showQuickPick(
        [
          { label: 'Fixed rank', description: 'every module gets rank r', detail: 'Smaller adapters for a lower r; the report gives each module\'s retained energy and error.', value: 'rank' },
          { label: 'Energy threshold', description: 'rank chosen per module', detail: 'Each module gets the smallest rank holding this share of its difference\'s squared norm, up to a maximum rank.', value: 'energy' },
        ],
        { title: `Extract LoRA Adapter (2/3): how to choose the rank`, placeHolder: 'A fixed rank, or a share of each difference to keep' },
      );
      if (!mode) return undefined;
      if (mode.value === 'energy') {
        energy = await askNumber('Extract LoRA Adapter (2/3): energy to keep', 'Share of each module\'s difference (squared norm) the adapter keeps, e.g. 0.9.', '0.9', (n) => (n > 0 && n <= 1 ? undefined : 'The energy is above 0 and at most 1.'));
        if (energy === undefined) return undefined;
      }
      const wholeRank = (n: number) => (Number.isInteger(n) && n >= 1 ? undefined : 'The rank is a whole number of 1 or more.');
      rank = await askNumber(
        `Extract LoRA Adapter (2/3): ${energy !== undefined ? 'largest rank' : 'rank'}`,
        energy !== undefined ? 'No module gets a higher rank than this.' : 'The rank r of every adapted module (lora_alpha = r, so the scale is 1).',
        energy !== undefined ? '64' : '16',
        wholeRank,
      );
      if (rank === undefined) return undefined;
    }
    rank ??= 64;
    const suffix = energy !== undefined ? `e${energy}` : `r${rank}`;
    const out = options.out ?? (await askOutput('Extract LoRA Adapter (3/3): write the adapter folder', freshPath(path.dirname(model), `${name}-lora-${suffix}`), 'Write Adapter Here'));
    if (!out) return undefined;
    const write = await mayWrite(out, options.replace);
    if (!write.ok) return undefined;
    const [modelLayout, baseLayout] = [await this.open(model), await this.open(base)];
    if (!modelLayout || !baseLayout) return undefined;
    this.log.info(`Extracting a LoRA adapter of ${name} on ${modelName(base)} (${energy !== undefined ? `energy ${energy}, rank at most ${rank}` : `rank ${rank}`}) into ${out}.`);
    try {
      const result = await this.runner.runOperation(`extracting a LoRA adapter of ${name}`, (signal, report) => extractLora({
        runner: this.engine, model: modelLayout, base: baseLayout, out, rank: rank!, energy, force: write.force, signal, onProgress: (f) => report(f), graftVersion: this.graftVersion,
      }));
      if (!result) return undefined;
      for (const m of result.modules) this.log.info(`  ${m.module}: rank ${m.rank}, retained energy ${percent(m.retained, 2)}, relative error ${m.relativeError.toFixed(4)}`);
      for (const n of result.notCarried) this.log.warn(`  not carried: ${n.tensor} (${n.reason})`);
      const retained = result.modules.map((m) => m.retained);
      const worst = Math.max(0, ...result.modules.map((m) => m.relativeError));
      const saved = result.modulesToSave.length ? `, ${result.modulesToSave.length} saved whole` : '';
      const missing = result.notCarried.length ? ` ${result.notCarried.length} changed tensors are not carried (see the log).` : '';
      await this.finish(result.out, `Extracted ${path.basename(result.out)}: ${result.modules.length} LoRA modules (r ${result.r})${saved}; retained energy ${percent(Math.min(1, ...retained))} to ${percent(Math.max(0, ...retained))}, largest relative error ${worst.toFixed(3)}.${missing}`, {
        'Open adapter_config.json': () => vscode.commands.executeCommand('vscode.open', vscode.Uri.file(path.join(result.out, 'adapter_config.json'))),
      });
      return result;
    } catch (error) {
      reportFailure(this.log, `Extracting a LoRA adapter of ${name}`, error);
      return undefined;
    }
  }
}
