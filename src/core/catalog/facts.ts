// The small files beside weights, reduced to the facts lineage and the views use. Each parser
// takes the file's text and throws an Error whose message says what is wrong with it.
import type { GgufHeader, GgufValue } from '../gguf';
import { parseProvenance, provenanceModelNames } from './provenance';
import { parsePlainYaml } from './yaml';
import type { AdapterFacts, ConfigFacts, GgufBaseModel, GgufFacts, MergeFacts, PatchFacts, TrainerFacts } from './types';

function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON (${error instanceof Error ? error.message : String(error)}).`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error(`${file} must hold a JSON object.`);
  return data as Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const strings = (v: unknown): string[] | undefined => {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) return undefined;
  const out = v.filter((x): x is string => typeof x === 'string');
  return out.length > 0 ? out : undefined;
};

function compact<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}

export function parseConfigFacts(text: string): ConfigFacts {
  const config = parseJsonObject(text, 'config.json');
  const quant = config.quantization_config;
  let quantization: ConfigFacts['quantization'];
  if (typeof quant === 'object' && quant !== null && !Array.isArray(quant)) {
    const q = quant as Record<string, unknown>;
    const bits = num(q.bits) ?? (q.load_in_4bit === true ? 4 : q.load_in_8bit === true ? 8 : undefined);
    quantization = compact({ method: str(q.quant_method), bits });
  }
  return compact({
    architectures: strings(config.architectures),
    modelType: str(config.model_type),
    nameOrPath: str(config._name_or_path),
    dtype: str(config.dtype) ?? str(config.torch_dtype),
    quantization,
  });
}

export function parseAdapterFacts(text: string): AdapterFacts {
  const config = parseJsonObject(text, 'adapter_config.json');
  return compact({
    baseModel: str(config.base_model_name_or_path),
    peftType: str(config.peft_type),
    r: num(config.r),
    loraAlpha: num(config.lora_alpha),
    targetModules: strings(config.target_modules),
    taskType: str(config.task_type),
  });
}

/** mergekit_config.yml: `models: [{model, parameters}]`, `merge_method`, `base_model`, or `slices: [{sources: [{model}]}]`. */
export function parseMergekitFacts(text: string): MergeFacts {
  let parsed;
  try {
    parsed = parsePlainYaml(text);
  } catch (error) {
    throw new Error(`mergekit_config.yml does not parse as YAML (${error instanceof Error ? error.message.split('\n')[0] : String(error)}).`);
  }
  if (parsed.tagged.length > 0) {
    const { key, tag } = parsed.tagged[0];
    throw new Error(`mergekit_config.yml: ${key ? `"${key}"` : 'the document'} carries the YAML tag ${tag}, which Graft does not evaluate; the file was ignored (remove the tag).`);
  }
  const data = parsed.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('mergekit_config.yml must be a YAML mapping (merge_method, models, ...).');
  const config = data as Record<string, unknown>;
  const models: string[] = [];
  const add = (ref: unknown) => {
    const name = typeof ref === 'string' ? ref : typeof ref === 'object' && ref !== null ? str((ref as { model?: unknown }).model) : undefined;
    if (name && !models.includes(name)) models.push(name);
  };
  if (Array.isArray(config.models)) config.models.forEach(add);
  if (Array.isArray(config.slices)) {
    for (const slice of config.slices) {
      const sources = typeof slice === 'object' && slice !== null ? (slice as { sources?: unknown }).sources : undefined;
      if (Array.isArray(sources)) sources.forEach(add);
    }
  }
  const baseModel = str(config.base_model);
  if (models.length === 0 && !baseModel) throw new Error('mergekit_config.yml names no models (no "models", "slices" or "base_model").');
  return compact({ tool: 'mergekit' as const, method: str(config.merge_method), baseModel, models, dtype: str(config.dtype) });
}

export function parseProvenanceFacts(text: string): MergeFacts {
  const provenance = parseProvenance(text);
  return compact({ tool: 'graft' as const, method: provenance.method, baseModel: provenance.base, models: provenanceModelNames(provenance), created: provenance.created });
}

/**
 * The patch facts of a safetensors `__metadata__` that marks a Graft patch (`graft_patch`, see
 * src/core/patch/format.ts); undefined for any other checkpoint.
 */
export function patchFactsFromMetadata(metadata: Record<string, unknown> | undefined): PatchFacts | undefined {
  if (!metadata || str(metadata.graft_patch) === undefined) return undefined;
  const count = (v: unknown) => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    return Number.isFinite(n) ? n : undefined;
  };
  return compact({
    base: str(metadata.graft_patch_base),
    baseWeights: str(metadata.graft_patch_base_weights),
    source: str(metadata.graft_patch_source),
    sourceWeights: str(metadata.graft_patch_source_weights),
    tensors: count(metadata.graft_patch_tensors),
    density: count(metadata.graft_patch_density),
    dtype: str(metadata.graft_patch_dtype),
  });
}

export function parseTrainerFacts(text: string, runDir: string): TrainerFacts {
  const state = parseJsonObject(text, 'trainer_state.json');
  return compact({ globalStep: num(state.global_step), epoch: num(state.epoch), bestModelCheckpoint: str(state.best_model_checkpoint), runDir });
}

/** "checkpoint-1200" -> 1200 (the Trainer's folder naming). */
export function checkpointStepFromName(name: string): number | undefined {
  const match = /^checkpoint-(\d+)$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** A JSON-safe rendering of a GGUF value: bigints past 2^53 as strings, arrays over `maxItems` as a summary. */
export function ggufValueToJson(value: GgufValue, maxItems = 64): unknown {
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  if (typeof value !== 'object') return value;
  if (!value.items || value.length > maxItems) return { array: value.itemType, length: value.length };
  return value.items.map((item) => ggufValueToJson(item, maxItems));
}

/** "https://huggingface.co/org/name" or "org/name" -> "org/name". */
export function hubIdFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const match = /^(?:https?:\/\/)?(?:www\.)?(?:huggingface\.co|hf\.co)\/([^/\s]+\/[^/\s?#]+)/i.exec(url.trim());
  return match ? match[1] : undefined;
}

export function ggufFacts(header: GgufHeader): GgufFacts {
  const general: Record<string, unknown> = {};
  const raw = new Map<string, GgufValue>();
  for (const entry of header.metadata) {
    if (!entry.key.startsWith('general.')) continue;
    raw.set(entry.key, entry.value);
    general[entry.key] = ggufValueToJson(entry.value);
  }
  const text = (key: string) => {
    const v = raw.get(key);
    return typeof v === 'string' && v.trim() ? v.trim() : undefined;
  };
  const describeModel = (prefix: string): GgufBaseModel | undefined => {
    const model: GgufBaseModel = compact({
      name: text(`${prefix}.name`),
      organization: text(`${prefix}.organization`),
      version: text(`${prefix}.version`),
      repoUrl: text(`${prefix}.repo_url`) ?? text(`${prefix}.url`) ?? text(`${prefix}.huggingface.repository`),
    });
    if (Object.keys(model).length === 0) return undefined;
    const fromRepo = text(`${prefix}.huggingface.repository`);
    model.hubId = hubIdFromUrl(model.repoUrl) ?? (fromRepo && /^[^/\s]+\/[^/\s]+$/.test(fromRepo) ? fromRepo : undefined);
    if (!model.hubId && model.organization && model.name) model.hubId = `${model.organization}/${model.name}`.replace(/\s+/g, '-');
    return compact(model);
  };
  const countValue = raw.get('general.base_model.count');
  const count = typeof countValue === 'number' ? countValue : typeof countValue === 'bigint' ? Number(countValue) : 0;
  const baseModels: GgufBaseModel[] = [];
  for (let i = 0; i < Math.min(count, 64); i++) {
    const model = describeModel(`general.base_model.${i}`);
    if (model) baseModels.push(model);
  }
  const fileType = raw.get('general.file_type');
  return compact({
    version: header.version,
    tensorCount: header.tensors.length,
    architecture: text('general.architecture'),
    name: text('general.name'),
    fileType: typeof fileType === 'number' ? fileType : undefined,
    general,
    skippedMetadata: header.skippedMetadata,
    baseModels,
    source: describeModel('general.source'),
    tensors: header.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.typeName, offset: t.offset })),
  });
}

