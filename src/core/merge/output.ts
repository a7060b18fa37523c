// The files beside a merged model's weights: config.json from the base (dtype and, for slices, the
// layer count updated), generation config and tokenizer files, the recipe as mergekit_config.yml,
// a model card whose front matter declares the inputs (base_model_relation: merge), and
// graft_provenance.json with the inputs' weight identities. Together they let the lineage
// catalog place the output under its inputs with no extra step.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { writeProvenance } from '../catalog/provenance';
import { openCheckpoint } from '../safetensors';
import { weightIdentity } from '../tensors/identity';
import type { MergePlan } from './plan';

const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'vocab.txt', 'added_tokens.json', 'chat_template.jinja', 'spiece.model',
];

const TORCH_DTYPE: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export function recipeHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A reference as the output's card and provenance should give it: hub ids as they are, paths relative to the output. */
function referenceFromOutput(plan: MergePlan, reference: string, resolvedPath: string | undefined, out: string): string {
  if (!resolvedPath) return reference;
  const local = path.resolve(path.dirname(plan.recipe.file), reference.split('+')[0]);
  if (local !== resolvedPath) return reference; // resolved through the catalog: a hub id
  return path.relative(out, resolvedPath).split(path.sep).join('/') || '.';
}

async function copyIfPresent(from: string | undefined, name: string, to: string): Promise<boolean> {
  if (!from) return false;
  try {
    await fsp.copyFile(path.join(from, name), path.join(to, name));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Copies a model folder's config, generation config and tokenizer files as they are, for outputs
 * that keep the model's architecture and dtype (patched models, transfers written outside a merge).
 */
export async function copyCompanionFiles(fromDir: string, toDir: string): Promise<void> {
  for (const name of ['config.json', 'generation_config.json', ...TOKENIZER_FILES]) await copyIfPresent(fromDir, name, toDir);
}

/** The dtype most output bytes have. */
function mainDtype(plan: MergePlan): string | undefined {
  const bytes = new Map<string, number>();
  for (const t of plan.tensors) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + t.bytes);
  return [...bytes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** weightIdentity() of every input, in plan.inputs order, for the provenance record. */
export function inputIdentities(plan: MergePlan): Promise<string[]> {
  return Promise.all(plan.inputs.map(async (input) => weightIdentity(await openCheckpoint(input.paths[0]))));
}

/**
 * Writes the side files into `dir` (the partial output folder). `finalOut` is where the folder
 * will live, so relative references in the card and provenance are right after the rename.
 */
export async function writeSideFiles(plan: MergePlan, dir: string, finalOut: string, graftVersion: string, identities: readonly string[]): Promise<void> {
  const dtype = mainDtype(plan);
  if (plan.configDir) {
    try {
      const config = JSON.parse(await fsp.readFile(path.join(plan.configDir, 'config.json'), 'utf8')) as Record<string, unknown>;
      if (dtype && TORCH_DTYPE[dtype]) {
        if ('dtype' in config || !('torch_dtype' in config)) config.dtype = TORCH_DTYPE[dtype];
        if ('torch_dtype' in config) config.torch_dtype = TORCH_DTYPE[dtype];
      }
      if (plan.layerCount !== undefined) {
        for (const key of ['num_hidden_layers', 'n_layer', 'num_layers']) if (key in config) config[key] = plan.layerCount;
      }
      await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`Cannot carry config.json over from "${plan.configDir}": ${(error as Error).message}`);
    }
    await copyIfPresent(plan.configDir, 'generation_config.json', dir);
  }
  for (const name of TOKENIZER_FILES) await copyIfPresent(plan.tokenizerDir, name, dir);

  await fsp.writeFile(path.join(dir, 'mergekit_config.yml'), plan.recipe.text.endsWith('\n') ? plan.recipe.text : plan.recipe.text + '\n');

  const finalStage = plan.recipe.stages[plan.recipe.stages.length - 1];
  const baseRef = finalStage.baseModel?.value;
  const refs = plan.inputs.map((input) => ({ input, shown: referenceFromOutput(plan, input.reference, input.paths[0], finalOut) }));
  const baseShown = baseRef ? refs.find((r) => r.input.reference === baseRef)?.shown : undefined;

  const front = toYaml({
    base_model: refs.map((r) => r.shown),
    base_model_relation: 'merge',
    library_name: 'transformers',
    tags: ['merge', 'graft', ...(plan.method !== 'merge' ? [plan.method] : [])],
  }).trimEnd();
  const card = [
    '---',
    front,
    '---',
    '',
    `# ${path.basename(finalOut)}`,
    '',
    `A merge of ${refs.length} model${refs.length === 1 ? '' : 's'} made with Graft (method: \`${plan.method}\`${plan.stageNames.length > 1 ? `, ${plan.stageNames.length} stages fused` : ''}).`,
    '',
    '## Inputs',
    '',
    ...refs.map((r) => `- \`${r.shown}\`${r.input.reference === baseRef ? ' (base)' : ''}${r.input.kind === 'adapted' ? ' (with a LoRA adapter merged in)' : ''}`),
    '',
    '## Recipe',
    '',
    '```yaml',
    plan.recipe.text.trimEnd(),
    '```',
    '',
  ].join('\n');
  await fsp.writeFile(path.join(dir, 'README.md'), card);

  await writeProvenance(dir, {
    version: graftVersion,
    method: plan.method,
    ...(baseShown ? { base: baseShown } : {}),
    models: refs.map((r, i) => ({ model: r.shown, weights: identities[i], ...(r.input.kind === 'adapted' ? { adapter: path.relative(finalOut, r.input.paths[1]).split(path.sep).join('/') } : {}) })),
    recipe: { file: 'mergekit_config.yml', sha256: recipeHash(plan.recipe.text), stages: plan.stageNames },
  });
}
