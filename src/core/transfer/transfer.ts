// Fine-tuning transfer, B2 + s (X - B), run as a `diff_transfer` recipe through the merge engine.
// The recipe is written beside the output (<out>.transfer.yml) so the transfer can be rerun or
// edited with `graft merge`; the engine also copies it into the output as mergekit_config.yml.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { TaskRunner } from '../engine/pool';
import { checkOutput, executeMerge, type MergeProgress, type MergeResult } from '../merge/engine';
import { MergeOutputError, existsPath } from '../merge/outputFolder';
import { planMerge, type MergePlan } from '../merge/plan';
import { parseRecipe } from '../merge/recipe/parse';
import type { MergeTasks } from '../merge/tasks';

export interface TransferRequest {
  finetune: string;
  from: string;
  to: string;
  out: string;
  scale?: number;
}

/** Where the recipe of a transfer into `out` is written. */
export function transferRecipePath(out: string): string {
  return `${path.resolve(out)}.transfer.yml`;
}

/** The diff_transfer recipe, with model paths relative to the recipe's folder. */
export function transferRecipeText(request: TransferRequest, recipeFile: string): string {
  const dir = path.dirname(recipeFile);
  const rel = (p: string) => {
    const r = path.relative(dir, path.resolve(p)).split(path.sep).join('/');
    return r.startsWith('.') || r.startsWith('/') ? r : `./${r}`;
  };
  const recipe = {
    merge_method: 'diff_transfer',
    base_model: rel(request.from),
    target_model: rel(request.to),
    models: [{ model: rel(request.finetune), parameters: { weight: request.scale ?? 1 } }],
  };
  return `# Fine-tuning transfer written by graft transfer: target_model + weight x (model - base_model).\n# Rerun with: graft merge ${path.basename(recipeFile)} --out ${path.basename(request.out)} --force\n${toYaml(recipe)}`;
}

export interface TransferRun {
  recipeFile: string;
  plan: MergePlan;
}

/**
 * Writes the recipe (refusing to replace a different one without force) and plans the merge;
 * every check of the merge engine runs before anything is computed.
 */
export async function prepareTransfer(request: TransferRequest, force: boolean): Promise<TransferRun> {
  const recipeFile = transferRecipePath(request.out);
  const text = transferRecipeText(request, recipeFile);
  const plan = await planMerge(parseRecipe(text, recipeFile), { out: path.resolve(request.out) });
  await checkOutput(plan, request.out, force);
  if ((await existsPath(recipeFile)) && !force) {
    const existing = await fsp.readFile(recipeFile, 'utf8').catch(() => undefined);
    if (existing !== text) throw new MergeOutputError(`"${recipeFile}" already exists with another recipe. Choose another output, or pass --force to replace it.`);
  }
  await fsp.mkdir(path.dirname(recipeFile), { recursive: true });
  const partial = `${recipeFile}.partial`;
  await fsp.writeFile(partial, text);
  await fsp.rename(partial, recipeFile);
  return { recipeFile, plan };
}

export async function runTransfer(run: TransferRun, options: { runner: TaskRunner<MergeTasks>; out: string; force?: boolean; signal?: AbortSignal; onProgress?: (p: MergeProgress) => void; graftVersion: string; chunkElements?: number }): Promise<MergeResult> {
  return executeMerge(run.plan, { ...options, out: path.resolve(options.out) });
}
