// PEFT LoRA adapters as merge inputs (`model+adapter`): W' = W + s B A with s = lora_alpha / r
// (lora_alpha / sqrt(r) with use_rslora), per-module r and alpha from rank_pattern/alpha_pattern,
// fan_in_fan_out (W stored transposed), embedding LoRA (lora_embedding_A/B), DoRA (the magnitude
// vector rescales each row of W + s B A to its stored norm, as peft's merge does) and
// modules_to_save (full replacement tensors). Adapter tensors are matched to base tensors by the
// names peft saves.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint, type CheckpointLayout, type TensorRef } from '../safetensors';

export interface AdapterConfig {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  useDora: boolean;
  fanInFanOut: boolean;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  baseModel?: string;
  targetModules?: string[] | string;
}

/** How one base tensor changes: a low-rank delta, or a full replacement (modules_to_save). */
export type AdapterPatch =
  | {
    kind: 'lora';
    a: TensorRef;
    b: TensorRef;
    scale: number;
    /** W is stored [in, out] (fan_in_fan_out, and embeddings): the delta is (B A) transposed. */
    transposed: boolean;
    /** DoRA magnitude, one value per row of W. */
    magnitude?: TensorRef;
  }
  | { kind: 'replace'; tensor: TensorRef };

export interface LoadedAdapter {
  dir: string;
  config: AdapterConfig;
  layout: CheckpointLayout;
  /** Base tensor name -> its patch. */
  patches: Map<string, AdapterPatch>;
}

export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterError';
  }
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** peft matches rank_pattern/alpha_pattern keys against the end of the module path. */
function patternValue(pattern: Record<string, number>, module: string): number | undefined {
  for (const [key, value] of Object.entries(pattern)) {
    if (module === key || module.endsWith(`.${key}`)) return value;
    try {
      if (new RegExp(`^(.*\\.)?${key}$`).test(module)) return value;
    } catch {
      // Not a regular expression: only the literal comparisons above apply.
    }
  }
  return undefined;
}

export async function readAdapterConfig(dir: string): Promise<AdapterConfig> {
  const file = path.join(dir, 'adapter_config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'it has no adapter_config.json' : `its adapter_config.json is not valid JSON (${(error as Error).message})`;
    throw new AdapterError(`"${dir}" is not a PEFT adapter: ${why}.`);
  }
  const c = raw as Record<string, unknown>;
  const type = typeof c.peft_type === 'string' ? c.peft_type : 'LORA';
  if (type !== 'LORA') throw new AdapterError(`"${dir}" is a ${type} adapter; Graft merges LoRA adapters (peft_type LORA) only.`);
  const r = numberOr(c.r, NaN);
  if (!(r > 0)) throw new AdapterError(`"${file}" has no valid "r" (the LoRA rank).`);
  return {
    r,
    loraAlpha: numberOr(c.lora_alpha, r),
    useRslora: c.use_rslora === true,
    useDora: c.use_dora === true,
    fanInFanOut: c.fan_in_fan_out === true,
    rankPattern: (c.rank_pattern && typeof c.rank_pattern === 'object' ? c.rank_pattern : {}) as Record<string, number>,
    alphaPattern: (c.alpha_pattern && typeof c.alpha_pattern === 'object' ? c.alpha_pattern : {}) as Record<string, number>,
    baseModel: typeof c.base_model_name_or_path === 'string' ? c.base_model_name_or_path : undefined,
    targetModules: (Array.isArray(c.target_modules) || typeof c.target_modules === 'string' ? c.target_modules : undefined) as string[] | string | undefined,
  };
}

/** The scale s of one module's delta. */
export function loraScale(config: AdapterConfig, module: string): number {
  const r = patternValue(config.rankPattern, module) ?? config.r;
  const alpha = patternValue(config.alphaPattern, module) ?? config.loraAlpha;
  return config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

const PREFIX = 'base_model.model.';

/** An adapter key without peft's wrapper prefix and adapter-name segments. */
function modulePath(key: string): string {
  let k = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
  k = k.replace(/\.modules_to_save\.default\./, '.').replace(/\.modules_to_save\./, '.');
  return k;
}

/**
 * Reads an adapter and matches its tensors to the base's: every LoRA pair must find its base
 * weight with a consistent shape, or the adapter is refused before anything is computed.
 */
export async function loadAdapter(dir: string, baseTensors: Map<string, TensorRef>): Promise<LoadedAdapter> {
  const config = await readAdapterConfig(dir);
  let layout: CheckpointLayout;
  try {
    layout = await openCheckpoint(dir);
  } catch (error) {
    throw new AdapterError(`Cannot read the weights of adapter "${dir}": ${(error as Error).message}`);
  }
  const byKey = new Map(layout.tensors.map((t) => [t.name, t]));
  const patches = new Map<string, AdapterPatch>();
  const used = new Set<string>();
  const shapeError = (what: string) => new AdapterError(`Adapter "${dir}" does not fit its base: ${what}. Is it an adapter of another model?`);

  for (const t of layout.tensors) {
    const m = /^(.*)\.lora_(embedding_)?A(\.weight)?$/.exec(t.name);
    if (!m) continue;
    const embedding = m[2] !== undefined;
    const prefix = m[1];
    const bKey = `${prefix}.lora_${embedding ? 'embedding_' : ''}B${m[3] ?? ''}`;
    const b = byKey.get(bKey);
    if (!b) throw new AdapterError(`Adapter "${dir}" has ${t.name} but no ${bKey}.`);
    const module = modulePath(prefix);
    const target = `${module}.weight`;
    const base = baseTensors.get(target);
    if (!base) throw shapeError(`it changes "${target}", which the base does not have`);
    if (base.shape.length !== 2 || t.shape.length !== 2 || b.shape.length !== 2) throw shapeError(`"${target}" and its LoRA factors must be matrices`);
    const transposed = embedding || config.fanInFanOut;
    const [rows, cols] = base.shape;
    const rank = t.shape[0];
    // B A is [out, in]; stored transposed it is [in, out] = the base's [rows, cols] the other way round.
    const [outDim, inDim] = transposed ? [cols, rows] : [rows, cols];
    if (b.shape[1] !== rank || b.shape[0] !== outDim || t.shape[1] !== inDim) {
      throw shapeError(`"${target}" is [${base.shape.join(', ')}] but its factors are A [${t.shape.join(', ')}] and B [${b.shape.join(', ')}]`);
    }
    let magnitude: TensorRef | undefined;
    const magnitudeRef = byKey.get(`${prefix}.lora_magnitude_vector`) ?? byKey.get(`${prefix}.lora_magnitude_vector.weight`);
    if (config.useDora || magnitudeRef) {
      if (!magnitudeRef) throw new AdapterError(`Adapter "${dir}" uses DoRA but has no magnitude vector for ${module}.`);
      if (transposed) throw new AdapterError(`Adapter "${dir}": DoRA with fan_in_fan_out or on embeddings (${module}) is not supported by Graft yet.`);
      if (magnitudeRef.numel !== rows) throw shapeError(`the DoRA magnitude of ${module} has ${magnitudeRef.numel} values for ${rows} rows`);
      magnitude = magnitudeRef;
      used.add(magnitudeRef.name);
    }
    patches.set(target, { kind: 'lora', a: t, b, scale: loraScale(config, module), transposed, magnitude });
    used.add(t.name);
    used.add(b.name);
  }
  for (const t of layout.tensors) {
    if (used.has(t.name) || /\.lora_(embedding_)?[AB](\.weight)?$/.test(t.name)) continue;
    if (!t.name.startsWith(PREFIX) && !t.name.includes('modules_to_save')) {
      throw new AdapterError(`Adapter "${dir}" holds "${t.name}", which is neither a LoRA factor nor a module saved by peft (names start with "${PREFIX}"). Is it a full model rather than an adapter?`);
    }
    const target = modulePath(t.name);
    const base = baseTensors.get(target);
    if (!base) throw shapeError(`it saves "${t.name}", which matches no tensor of the base`);
    if (base.shape.join() !== t.shape.join()) throw shapeError(`"${target}" is [${base.shape.join(', ')}] in the base but [${t.shape.join(', ')}] in the adapter`);
    patches.set(target, { kind: 'replace', tensor: t });
  }
  if (patches.size === 0) throw new AdapterError(`Adapter "${dir}" holds no LoRA weights Graft recognises (expected peft's *.lora_A.weight / *.lora_B.weight).`);
  return { dir, config, layout, patches };
}
