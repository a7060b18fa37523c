// `graft lora extract`: a dense fine-tune compressed into a PEFT LoRA adapter. Every changed 2-D
// weight (not embeddings) gets a truncated SVD of its difference on the worker pool (tasks.ts),
// saved as lora_A = sqrt(S) V^T and lora_B = U sqrt(S) under peft's names with alpha = rank (scale
// 1); changed 1-D tensors and embeddings go to modules_to_save whole; anything else is reported.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeProvenance } from '../catalog/provenance';
import { mapLimit, type TaskRunner } from '../engine/pool';
import { CancelledError } from '../engine/task';
import { beginPartialFolder, checkOutputFolder, finishPartialFolder } from '../merge/outputFolder';
import { matchTensors, referenceFrom } from '../patch/extract';
import { PatchError } from '../patch/format';
import type { PatchTasks } from '../patch/tasks';
import { writeSafetensors, type TensorData } from '../safetensors';
import { readTensorBytes } from '../safetensors/reader';
import type { CheckpointLayout, DType } from '../safetensors/types';
import { weightIdentity } from '../tensors/identity';
import type { LoraTasks } from './tasks';

const PREFIX = 'base_model.model.';
const EMBEDDING = /(^|\.)(embed_tokens|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings|embed_positions|embeddings)(\.|$)/;

export interface LoraExtractOptions {
  runner: TaskRunner<LoraTasks & PatchTasks>;
  model: CheckpointLayout;
  base: CheckpointLayout;
  out: string;
  /** Fixed rank, or the largest rank when `energy` is given. */
  rank: number;
  energy?: number;
  dtype?: DType;
  oversample?: number;
  powerIterations?: number;
  seed?: number;
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  graftVersion: string;
}

export interface ExtractedModule {
  module: string;
  shape: number[];
  rank: number;
  retained: number;
  relativeError: number;
}

export interface LoraExtractResult {
  out: string;
  modules: ExtractedModule[];
  modulesToSave: string[];
  /** Changed tensors the adapter does not carry, with why. */
  notCarried: { tensor: string; reason: string }[];
  unchanged: number;
  r: number;
}

export async function extractLora(options: LoraExtractOptions): Promise<LoraExtractResult> {
  const { runner, model, base, signal } = options;
  if (!(Number.isInteger(options.rank) && options.rank >= 1)) throw new PatchError(`The rank must be a whole number of 1 or more, not ${options.rank}.`);
  if (options.energy !== undefined && !(options.energy > 0 && options.energy <= 1)) throw new PatchError(`The energy threshold must be above 0 and at most 1 (the share of each difference's squared norm to keep), not ${options.energy}.`);
  const dtype = options.dtype ?? 'F32';
  const out = path.resolve(options.out);
  await checkOutputFolder(out, options.force ?? false, 0, 'adapter');
  const pairs = matchTensors(model, base);

  // Which tensors changed: the patch scan kernel, one task per tensor (sums only).
  const changed = (await mapLimit(pairs, Math.max(2, runner.concurrency * 2), async (p) => {
    if (!['F64', 'F32', 'F16', 'BF16'].includes(p.model.dtype)) return undefined;
    const r = await runner.run('patchScan', { model: p.model, base: p.base, start: 0, count: p.model.numel, pass: 'sums', wide: true }, { signal });
    return r.changed > 0 ? p : undefined;
  }, signal)).filter((p) => p !== undefined);

  const moduleOf = (name: string) => name.replace(/\.(weight|bias)$/, '');
  const low = changed.filter((p) => p.model.shape.length === 2 && p.model.name.endsWith('.weight') && !EMBEDDING.test(p.model.name));
  const lowModules = new Set(low.map((p) => moduleOf(p.model.name)));
  const save: typeof changed = [];
  const notCarried: { tensor: string; reason: string }[] = [];
  for (const p of changed) {
    if (low.includes(p)) continue;
    if (lowModules.has(moduleOf(p.model.name))) notCarried.push({ tensor: p.model.name, reason: 'its module gets a LoRA for its weight, and peft cannot also save the module whole' });
    else if (p.model.shape.length <= 2) save.push(p);
    else notCarried.push({ tensor: p.model.name, reason: `${p.model.shape.length}-D tensors are neither LoRA targets nor saved modules here` });
  }

  let done = 0;
  const results = await mapLimit(low, Math.max(1, runner.concurrency), async (p) => {
    if (signal?.aborted) throw new CancelledError();
    const r = await runner.run('loraExtract', {
      model: p.model, base: p.base, rank: options.rank, energy: options.energy, oversample: options.oversample ?? 10, powerIterations: options.powerIterations ?? 2, seed: options.seed ?? 0, dtype,
    }, { signal });
    options.onProgress?.(++done / Math.max(1, low.length));
    return { p, r };
  }, signal);

  const r = Math.max(1, ...results.map((x) => x.r.rank));
  const tensors: TensorData[] = [];
  const modules: ExtractedModule[] = [];
  const rankPattern: Record<string, number> = {};
  for (const { p, r: result } of results) {
    const module = moduleOf(p.model.name);
    const [m, n] = p.model.shape;
    tensors.push({ name: `${PREFIX}${module}.lora_A.weight`, dtype, shape: [result.rank, n], data: result.a! });
    tensors.push({ name: `${PREFIX}${module}.lora_B.weight`, dtype, shape: [m, result.rank], data: result.b! });
    if (result.rank !== r) rankPattern[module] = result.rank;
    modules.push({ module, shape: p.model.shape, rank: result.rank, retained: result.retained, relativeError: result.relativeError });
  }
  for (const p of save) tensors.push({ name: `${PREFIX}${p.model.name}`, dtype: p.model.dtype, shape: p.model.shape, data: await readTensorBytes(p.model) });
  if (tensors.length === 0) throw new PatchError('The model and the base hold the same weights: there is nothing to extract.');

  const modelDir = (await fsp.stat(model.path)).isDirectory() ? model.path : path.dirname(model.path);
  let taskType: string | null = null;
  try {
    const config = JSON.parse(await fsp.readFile(path.join(modelDir, 'config.json'), 'utf8')) as { architectures?: string[] };
    if (config.architectures?.some((a) => a.endsWith('ForCausalLM'))) taskType = 'CAUSAL_LM';
  } catch {
    // No config: peft loads adapters without a task type too.
  }
  const config = {
    peft_type: 'LORA',
    task_type: taskType,
    base_model_name_or_path: referenceFrom(out, path.resolve(base.path)),
    r,
    lora_alpha: r,
    rank_pattern: rankPattern,
    alpha_pattern: rankPattern,
    target_modules: [...new Set(modules.map((m) => m.module.split('.').pop()!))].sort(),
    modules_to_save: save.length > 0 ? save.map((p) => moduleOf(p.model.name)) : null,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
  };

  const partial = await beginPartialFolder(out);
  try {
    await writeSafetensors(path.join(partial, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    await fsp.writeFile(path.join(partial, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
    const [baseWeights, sourceWeights] = await Promise.all([weightIdentity(base), weightIdentity(model)]);
    await writeProvenance(partial, {
      version: options.graftVersion,
      method: 'lora_extract',
      base: config.base_model_name_or_path,
      models: [{ model: referenceFrom(out, path.resolve(model.path)), weights: sourceWeights }],
      recipe: {
        base_weights: baseWeights, rank: options.rank, ...(options.energy !== undefined ? { energy: options.energy } : {}), dtype,
        oversample: options.oversample ?? 10, power_iterations: options.powerIterations ?? 2, seed: options.seed ?? 0,
        modules: Object.fromEntries(modules.map((m) => [m.module, { rank: m.rank, retained_energy: m.retained, relative_error: m.relativeError }])),
      },
    });
    await finishPartialFolder(partial, out, options.force ?? false, 'adapter');
  } catch (error) {
    await fsp.rm(partial, { recursive: true, force: true });
    throw error;
  }
  return { out, modules, modulesToSave: save.map((p) => moduleOf(p.model.name)), notCarried, unchanged: pairs.length - changed.length, r };
}
