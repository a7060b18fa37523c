// From a parsed recipe to a plan: every model resolved and its header read, every output tensor
// matched to its inputs by name (layer indices renumbered for slices), parameters evaluated per
// tensor, and every check a merge can fail on (missing models or tensors, shapes, vocabularies,
// layer ranges, method limits, the output overlapping an input) done before any compute. Headers
// only: planning reads no tensor data.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint, type CheckpointLayout, type DType, type TensorRef } from '../safetensors';
import { byteLengthOf } from '../safetensors/dtypes';
import { NON_LAYER_GROUP, parseTensorName, SINGLE_STACK_GROUP } from '../tensors/names';
import { didYouMean } from '../suggest';
import { needsWholeRows, type Operand, type TensorJob } from './jobs';
import { AdapterError, loadAdapter, type LoadedAdapter } from './lora';
import { findMethod } from './methods/registry';
import type { MergeMethod, ParamDef, ParamValue, ParamValues, TensorView } from './methods/types';
import { DTYPE_NAMES } from './recipe/parse';
import { RecipeError, type At, type ParamMap, type Pos, type Recipe, type RecipeProblem, type RecipeStage, type Setting } from './recipe/types';
import { streamId } from './random';

/** What a recipe is told about a model reference that is neither a path nor an indexed model. */
export function missingModelMessage(reference: string): string {
  return `Model "${reference}" not found: it is neither a path (relative to the recipe's folder) nor a model Graft has indexed (workspace folders, Hugging Face cache).`;
}

/** Resolves a hub id (or other non-path reference) to a local model folder or file. */
export type ModelResolver = (reference: string) => Promise<string | undefined>;

export interface PlanOptions {
  resolveModel?: ModelResolver;
  /** The output folder: a recipe whose inputs lie inside it is refused. */
  out?: string;
}

/** One tensor a model offers: its shape and dtype and how to read it. */
interface SourceTensor {
  shape: number[];
  dtype: DType;
  operand: Operand;
  /** The file tensor behind it, for raw copies of non-float tensors. */
  ref?: TensorRef;
}

/** A model as the planner sees it: a checkpoint, a checkpoint with an adapter, or an earlier stage. */
interface ModelSource {
  reference: string;
  pos: Pos;
  kind: 'checkpoint' | 'adapted' | 'stage';
  /** Folder with config.json and tokenizer files, when the model has one. */
  dir?: string;
  /** Resolved path of the checkpoint (and adapter) read. */
  paths: string[];
  tensors: Map<string, SourceTensor>;
  order: string[];
  layers: number;
  adapter?: LoadedAdapter;
}

export interface PlannedTensor {
  name: string;
  shape: number[];
  dtype: DType;
  bytes: number;
  /** Computed by a merge job... */
  job?: TensorJob;
  /** ...or copied byte for byte (non-float tensors such as integer buffers). */
  copy?: TensorRef;
}

export interface PlannedInput {
  /** As written in the recipe. */
  reference: string;
  /** Resolved paths (checkpoint, and adapter for model+adapter). */
  paths: string[];
  dir?: string;
  kind: 'checkpoint' | 'adapted';
  /** Bytes of tensor data in the checkpoint. */
  bytes: number;
}

export interface MergePlan {
  recipe: Recipe;
  /** The final stage's method. */
  method: string;
  stageNames: string[];
  tensors: PlannedTensor[];
  inputs: PlannedInput[];
  /** Folder whose config.json the output starts from (base, else first model). */
  configDir?: string;
  /** Folder whose tokenizer files the output gets. */
  tokenizerDir?: string;
  /** Output layer count when slices change it. */
  layerCount?: number;
  warnings: string[];
  totals: { tensors: number; elements: number; outputBytes: number; inputBytes: number };
}

const PRE_LAYER = /(^|\.)(embed_tokens|embed|embeddings|wte|wpe|word_embeddings|tok_embeddings|position_embeddings|token_type_embeddings|embed_in)(\.|$)/;
const FLOAT_OUT: DType[] = ['F32', 'F16', 'BF16'];

/** Problems found while planning; a model with another architecture would give one per tensor, so those are capped. */
class Problems {
  readonly list: RecipeProblem[] = [];
  private readonly perTensor = new Map<string, { shown: number; hidden: number; last: RecipeProblem }>();

  add(problem: RecipeProblem): void {
    if (problem.code === 'shape' || problem.code === 'vocab') {
      const key = `${problem.code}:${problem.pos.line}:${problem.pos.col}`;
      const seen = this.perTensor.get(key) ?? { shown: 0, hidden: 0, last: problem };
      this.perTensor.set(key, seen);
      if (seen.shown >= 5) {
        seen.hidden++;
        return;
      }
      seen.shown++;
    }
    this.list.push(problem);
  }

  /** The problem list, with a line for every capped group. */
  finish(): RecipeProblem[] {
    for (const { hidden, last } of this.perTensor.values()) {
      if (hidden > 0) this.list.push({ ...last, message: `...and ${hidden} more tensor${hidden === 1 ? '' : 's'} of this model differ the same way.` });
    }
    return this.list.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  }
}

function isLayerTensor(name: string): { layer: number } | undefined {
  const parsed = parseTensorName(name);
  return parsed.group === SINGLE_STACK_GROUP && parsed.layer !== null ? { layer: parsed.layer } : undefined;
}

/** The name with its (first) layer index replaced. */
export function withLayerIndex(name: string, layer: number): string {
  const parts = name.split('.');
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  if (i < 0) return name;
  parts[i] = String(layer);
  return parts.join('.');
}

function countLayers(names: Iterable<string>): number {
  let max = -1;
  for (const name of names) {
    const l = isLayerTensor(name);
    if (l) max = Math.max(max, l.layer);
  }
  return max + 1;
}

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(() => true, () => false);
}

/** Heads that tied-embedding models leave out of their files, and the embedding they share. */
const TIED_HEADS: [head: string, embedding: string][] = [
  ['lm_head.weight', 'model.embed_tokens.weight'],
  ['lm_head.weight', 'transformer.wte.weight'],
  ['embed_out.weight', 'gpt_neox.embed_in.weight'],
];

async function tiesEmbeddings(dir: string | undefined): Promise<boolean> {
  if (!dir) return false;
  try {
    const config = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8')) as { tie_word_embeddings?: unknown };
    return config.tie_word_embeddings !== false;
  } catch {
    return false;
  }
}

async function checkpointSource(reference: string, pos: Pos, layout: CheckpointLayout, dir: string | undefined): Promise<ModelSource> {
  const tensors = new Map<string, SourceTensor>();
  for (const ref of layout.tensors) tensors.set(ref.name, { shape: ref.shape, dtype: ref.dtype, operand: { kind: 'file', ref }, ref });
  const order = layout.tensors.map((t) => t.name);
  // A tied head is the embedding: merging it with untied models' heads reads the embedding.
  // It is not added to `order`, so an output that follows this model stays tied.
  if (await tiesEmbeddings(dir)) {
    for (const [head, embedding] of TIED_HEADS) {
      const e = tensors.get(embedding);
      if (e && !tensors.has(head)) tensors.set(head, e);
    }
  }
  return { reference, pos, kind: 'checkpoint', dir, paths: [layout.path], tensors, order, layers: countLayers(order) };
}

async function folderOf(target: string): Promise<string | undefined> {
  const stat = await fsp.stat(target).catch(() => undefined);
  if (!stat) return undefined;
  return stat.isDirectory() ? target : path.dirname(target);
}

/** Evaluates a setting for a tensor at gradient position t, as mergekit does. */
export function evaluateSetting(setting: Setting, tensorName: string, t: number): ParamValue | undefined {
  if (setting.kind === 'scalar') return setting.value;
  if (setting.kind === 'gradient') {
    const v = setting.values;
    if (v.length === 1) return v[0];
    const scaled = t * (v.length - 1);
    const i0 = Math.floor(scaled);
    const i1 = Math.min(v.length - 1, i0 + 1);
    const frac = scaled - i0;
    return (1 - frac) * v[i0] + frac * v[i1];
  }
  for (const c of setting.conditions) {
    if (c.filter === undefined || c.filter === '*' || tensorName.includes(c.filter)) return evaluateSetting(c.setting, tensorName, t);
  }
  return undefined;
}

function lookup(maps: ParamMap[], name: string, tensorName: string, t: number): ParamValue | undefined {
  for (const m of maps) {
    const p = m.get(name);
    if (!p) continue;
    const v = evaluateSetting(p.setting, tensorName, t);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** The inputs of one output tensor as the stage's sources give them. */
interface TensorInputs {
  name: string;
  t: number;
  /** Per merged model: the source, the input tensor's name, and the parameter maps in precedence order. */
  models: { source: ModelSource; inputName: string; params: ParamMap[] }[];
  sliceParams: ParamMap[];
}

class StagePlanner {
  constructor(
    private readonly recipe: Recipe,
    private readonly stage: RecipeStage,
    private readonly stageIndex: number,
    private readonly method: MergeMethod,
    private readonly problems: Problems,
    private readonly sources: (ref: At<string>) => ModelSource | undefined,
    private readonly warnings: string[],
  ) {}

  plan(): { outputs: Map<string, SourceTensor & { planned: PlannedTensor }>; order: string[]; layers: number } | undefined {
    const { stage, method } = this;
    const base = stage.baseModel ? this.sources(stage.baseModel) : undefined;
    const target = stage.targetModel ? this.sources(stage.targetModel) : undefined;
    if ((stage.baseModel && !base) || (stage.targetModel && !target)) return undefined;
    if (method.base === 'required' && !base) {
      this.problems.add({ code: 'missing-key', message: `${method.name} needs a base_model (the model the others were fine-tuned from).`, pos: stage.method.pos });
      return undefined;
    }
    if (method.target === 'required' && !target) {
      this.problems.add({ code: 'missing-key', message: `${method.name} needs a target_model (the new base the fine-tunes move onto).`, pos: stage.method.pos });
      return undefined;
    }
    if (method.target !== 'required' && stage.targetModel) {
      this.problems.add({ code: 'unknown-key', message: `target_model is used by diff_transfer only, not by ${method.name}.`, pos: stage.targetModel.pos });
    }

    const inputs = this.tensorInputs(base);
    if (!inputs) return undefined;
    const outputs = new Map<string, SourceTensor & { planned: PlannedTensor }>();
    const order: string[] = [];
    for (const input of inputs.list) {
      const planned = this.planTensor(input, base, target);
      if (!planned) continue;
      order.push(planned.name);
      const operand: Operand = planned.job ? { kind: 'job', job: planned.job } : { kind: 'file', ref: planned.copy! };
      outputs.set(planned.name, { shape: planned.shape, dtype: planned.dtype, operand, ref: planned.copy, planned });
    }
    return { outputs, order, layers: inputs.layers };
  }

  /** Output tensor names with their inputs: all of the reference model's tensors, or slices. */
  private tensorInputs(base: ModelSource | undefined): { list: TensorInputs[]; layers: number } | undefined {
    const { stage, method } = this;
    if (stage.models) {
      let entries = stage.models.map((m) => ({ source: this.sources(m.model), params: m.parameters, ref: m.model }));
      if (entries.some((e) => !e.source)) return undefined;
      if (base) {
        const isBase = (e: (typeof entries)[number]) => e.source!.reference === base.reference;
        if (method.base === 'none' && !entries.some(isBase)) {
          this.problems.add({ code: 'unknown-key', message: `${method.name} takes no base_model; list that model under "models" with a weight, or remove base_model.`, pos: stage.baseModel!.pos });
          return undefined;
        }
        if (method.base !== 'none') entries = entries.filter((e) => !isBase(e));
        if (method.baseAsFirstModel) entries = [{ source: base, params: new Map(), ref: stage.baseModel! }, ...entries];
      }
      if (!this.checkCount(entries.length)) return undefined;
      const reference = (method.baseAsFirstModel ? entries[0]?.source : base) ?? entries[0].source!;
      const layers = reference.layers;
      // The output has the reference's tensors: say what other models have beyond them (a tied head, extra buffers).
      for (const e of entries) {
        const extra = e.source!.order.filter((name) => !reference.tensors.has(name));
        if (extra.length > 0) {
          this.warnings.push(`"${e.source!.reference}" has ${extra.length} tensor${extra.length === 1 ? '' : 's'} that "${reference.reference}" lacks (${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}); the output follows "${reference.reference}" and leaves ${extra.length === 1 ? 'it' : 'them'} out.`);
        }
      }
      const list = reference.order.map((name): TensorInputs => ({
        name,
        t: this.gradientPosition(name, layers),
        models: entries.map((e) => ({ source: e.source!, inputName: name, params: [e.params] })),
        sliceParams: [],
      }));
      return { list, layers };
    }

    const slices = stage.slices!;
    const list: TensorInputs[] = [];
    const sliceSources = slices.map((s) => s.sources.map((src) => ({ src, source: this.sources(src.model) })));
    if (sliceSources.some((s) => s.some((x) => !x.source))) return undefined;
    let outLayer = 0;
    const prepared: { slice: (typeof slices)[number]; sources: { src: (typeof slices)[number]['sources'][number]; source: ModelSource }[]; length: number }[] = [];
    for (let si = 0; si < slices.length; si++) {
      const slice = slices[si];
      let sources = sliceSources[si].map((x) => ({ src: x.src, source: x.source! }));
      const lengths = sources.map((x) => x.src.layerRange.value[1] - x.src.layerRange.value[0]);
      if (lengths.some((l) => l !== lengths[0])) {
        this.problems.add({ code: 'layer-range', message: `The sources of this slice cover ${lengths.join(' and ')} layers; every source of a slice must cover the same number.`, pos: slice.pos });
        return undefined;
      }
      for (const { src, source } of sources) {
        const [a, b] = src.layerRange.value;
        if (source.layers === 0) {
          this.problems.add({ code: 'layer-range', message: `"${src.model.value}" has no numbered layers to slice (its tensor names have no layer index).`, pos: src.model.pos });
          return undefined;
        }
        if (b > source.layers) {
          this.problems.add({ code: 'layer-range', message: `layer_range [${a}, ${b}] goes past the ${source.layers} layers of "${src.model.value}" (valid: 0 to ${source.layers}, end exclusive).`, pos: src.layerRange.pos });
          return undefined;
        }
      }
      if (base && method.base !== 'none') sources = sources.filter((x) => x.source.reference !== base.reference);
      if (method.baseAsFirstModel && base) sources = [{ src: { model: stage.baseModel!, layerRange: sources[0]?.src.layerRange ?? slice.sources[0].layerRange, parameters: new Map() }, source: base }, ...sources];
      if (!this.checkCount(sources.length, slice.pos)) return undefined;
      prepared.push({ slice, sources, length: lengths[0] });
    }
    const first = prepared[0];
    const last = prepared[prepared.length - 1];
    const nonLayer = (which: typeof first, pre: boolean) => {
      const reference = which.sources[0].source;
      for (const name of reference.order) {
        if (isLayerTensor(name)) continue;
        if (parseTensorName(name).group !== NON_LAYER_GROUP && parseTensorName(name).group !== SINGLE_STACK_GROUP) continue;
        if (PRE_LAYER.test(name) !== pre) continue;
        list.push({ name, t: pre ? 0 : 1, models: which.sources.map((x) => ({ source: x.source, inputName: name, params: [x.src.parameters] })), sliceParams: [which.slice.parameters] });
      }
    };
    nonLayer(first, true);
    for (const p of prepared) {
      const reference = p.sources[0];
      for (let k = 0; k < p.length; k++) {
        const t = p.length > 1 ? k / (p.length - 1) : 1;
        const sourceLayer = reference.src.layerRange.value[0] + k;
        for (const name of reference.source.order) {
          const l = isLayerTensor(name);
          if (!l || l.layer !== sourceLayer) continue;
          const outName = withLayerIndex(name, outLayer);
          list.push({
            name: outName,
            t,
            models: p.sources.map((x) => ({ source: x.source, inputName: withLayerIndex(name, x.src.layerRange.value[0] + k), params: [x.src.parameters] })),
            sliceParams: [p.slice.parameters],
          });
        }
        outLayer++;
      }
    }
    nonLayer(last, false);
    return { list, layers: outLayer };
  }

  private checkCount(count: number, pos = this.stage.method.pos): boolean {
    const { method } = this;
    const counted = method.baseAsFirstModel ? 'models (the base counts as the first)' : method.base === 'none' ? 'models' : 'models besides the base';
    if (count < method.minModels || (method.maxModels !== undefined && count > method.maxModels)) {
      const want = method.maxModels === method.minModels ? `exactly ${method.minModels}` : method.maxModels === undefined ? `at least ${method.minModels}` : `${method.minModels} to ${method.maxModels}`;
      this.problems.add({ code: 'stage', message: `${method.name} merges ${want} ${counted}; this recipe gives ${count}.`, pos });
      return false;
    }
    return true;
  }

  private gradientPosition(name: string, layers: number): number {
    const l = isLayerTensor(name);
    if (l) return layers > 1 ? l.layer / (layers - 1) : 1;
    return PRE_LAYER.test(name) ? 0 : 1;
  }

  private planTensor(input: TensorInputs, base: ModelSource | undefined, target: ModelSource | undefined): PlannedTensor | undefined {
    const { stage, method, problems } = this;
    const hasBase = !!base && !method.baseAsFirstModel;
    const refSource = hasBase ? base! : input.models[0].source;
    const refName = hasBase ? input.name : input.models[0].inputName;
    const reference = refSource.tensors.get(refName);
    if (!reference) {
      problems.add({ code: 'shape', message: `The base "${refSource.reference}" has no tensor "${refName}".`, pos: refSource.pos });
      return undefined;
    }
    const get = (source: ModelSource, name: string, pos: Pos): SourceTensor | undefined => {
      const t = source.tensors.get(name);
      if (!t) {
        problems.add({ code: 'shape', message: `"${source.reference}" has no tensor "${name}" (it is in "${refSource.reference}").${didYouMean(name, source.order.slice(0, 5000))}`, pos, subject: name });
        return undefined;
      }
      return t;
    };

    const outDtype = this.outputDtype(reference.dtype);
    if (!outDtype) {
      // Integer and boolean tensors (buffers such as position ids) are not merged: copied from the reference.
      if (!reference.ref) {
        problems.add({ code: 'shape', message: `"${input.name}" is ${reference.dtype}, which Graft cannot merge or pass through an earlier stage.`, pos: refSource.pos });
        return undefined;
      }
      return { name: input.name, shape: reference.shape, dtype: reference.dtype, bytes: byteLengthOf(reference.dtype, reference.ref.numel), copy: reference.ref };
    }

    const numel = reference.shape.reduce((a, b) => a * b, 1);
    const fits = (t: SourceTensor, pos: Pos, who: string): boolean => {
      if (t.shape.join() === reference.shape.join()) return true;
      const vocabLike = t.shape.length === 2 && reference.shape.length === 2 && t.shape[1] === reference.shape[1] && !isLayerTensor(input.name);
      if (vocabLike && stage.tokenizerSource && t.shape[0] > reference.shape[0]) return true; // aligned to the base's rows
      if (vocabLike) {
        problems.add({
          code: 'vocab',
          message: `Vocabulary sizes differ in "${input.name}": ${t.shape[0]} rows in "${who}" but ${reference.shape[0]} in "${refSource.reference}".`
            + (stage.tokenizerSource ? ` With tokenizer_source, other models must have at least the base's ${reference.shape[0]} rows.` : ' Set tokenizer_source: base to keep the base\'s vocabulary (extra rows of the others are dropped).'),
          pos,
          subject: input.name,
        });
        return false;
      }
      problems.add({ code: 'shape', message: `Shapes differ in "${input.name}": [${t.shape.join(', ')}] in "${who}" but [${reference.shape.join(', ')}] in "${refSource.reference}".`, pos, subject: input.name });
      return false;
    };

    const models: Operand[] = [];
    let ok = true;
    for (const m of input.models) {
      const t = get(m.source, m.inputName, m.source.pos);
      if (!t || !fits(t, m.source.pos, m.source.reference)) ok = false;
      else models.push(t.operand);
    }
    let baseOperand: Operand | undefined;
    if (hasBase) baseOperand = reference.operand;
    let targetOperand: Operand | undefined;
    if (target) {
      const t = get(target, input.name, target.pos);
      if (!t || !fits(t, target.pos, target.reference)) ok = false;
      else targetOperand = t.operand;
    }
    if (!ok) return undefined;

    const globals: ParamValues = {};
    for (const def of method.parameters) {
      const v = lookup([...input.sliceParams, stage.parameters], def.name, input.name, input.t) ?? def.default;
      if (v === undefined) {
        if (def.required) {
          problems.add({ code: 'missing-key', message: `${method.name} needs the parameter "${def.name}" (${def.doc})`, pos: stage.method.pos, subject: def.name });
          return undefined;
        }
        continue;
      }
      globals[def.name] = v;
    }
    const perModel: ParamValues[] = [];
    input.models.forEach((m, i) => {
      const values: ParamValues = {};
      const isBaseAsModel = method.baseAsFirstModel && i === 0 && !!base;
      for (const def of method.tensorParameters) {
        const v = lookup([...m.params, ...input.sliceParams, stage.parameters], def.name, m.inputName, input.t) ?? def.default;
        if (v === undefined) {
          if (def.required && !isBaseAsModel) {
            problems.add({ code: 'missing-key', message: `Model "${m.source.reference}" has no "${def.name}" for ${method.name} (${def.doc}) Set it under the model's parameters or the recipe's.`, pos: m.source.pos, subject: def.name });
            ok = false;
          }
          continue;
        }
        values[def.name] = v;
      }
      perModel.push(values);
    });
    if (!ok) return undefined;
    if (!this.checkTypes(globals, method.parameters) || perModel.some((p) => !this.checkTypes(p, method.tensorParameters))) return undefined;

    const seed = this.stage.randomSeed?.value ?? 0;
    const view: TensorView = {
      name: input.name,
      shape: reference.shape,
      numel,
      rowLength: reference.shape.length > 0 ? reference.shape[reference.shape.length - 1] : 1,
      models: models.length,
      hasBase,
      globals,
      perModel,
      seed,
      streams: input.models.map((m) => streamId(`${m.source.reference}\u0000${m.inputName}`)),
    };
    const problem = method.check?.(view);
    if (problem) {
      problems.add({ code: 'bad-value', message: `${method.name} on "${input.name}": ${problem}`, pos: stage.method.pos, subject: input.name });
      return undefined;
    }
    const job: TensorJob = {
      id: `${this.stageIndex}:${input.name}`,
      name: input.name,
      shape: reference.shape,
      numel,
      dtype: outDtype,
      method: method.name,
      view,
      base: baseOperand,
      target: targetOperand,
      models,
      rowWise: method.rowWise?.(globals) ?? false,
    };
    return { name: input.name, shape: reference.shape, dtype: outDtype, bytes: byteLengthOf(outDtype, numel), job };
  }

  private checkTypes(values: ParamValues, defs: ParamDef[]): boolean {
    for (const def of defs) {
      const v = values[def.name];
      if (v === undefined) continue;
      if (typeof v !== def.kind) {
        this.problems.add({ code: 'type', message: `"${def.name}" must be ${def.kind === 'number' ? 'a number' : def.kind === 'boolean' ? 'true or false' : 'a string'}, not ${JSON.stringify(v)}.`, pos: this.stage.method.pos, subject: def.name });
        return false;
      }
    }
    return true;
  }

  private outputDtype(inputDtype: DType): DType | undefined {
    const named = this.stage.outDtype ?? this.stage.dtype;
    const isFloat = inputDtype === 'F32' || inputDtype === 'F16' || inputDtype === 'BF16' || inputDtype === 'F64';
    if (!isFloat) return undefined;
    if (named) return DTYPE_NAMES[named.value.toLowerCase()];
    return FLOAT_OUT.includes(inputDtype) ? inputDtype : 'F32';
  }
}

function firstMention(recipe: Recipe, reference: string): number {
  let i = 0;
  for (const stage of recipe.stages) {
    const refs = [stage.baseModel, stage.targetModel, ...(stage.models ?? []).map((m) => m.model), ...(stage.slices ?? []).flatMap((s) => s.sources.map((x) => x.model))];
    for (const r of refs) {
      if (r?.value === reference) return i;
      i++;
    }
  }
  return i;
}

/** Splits `model+adapter`; a path that exists as written wins over the split. */
async function splitAdapter(reference: string, dir: string): Promise<[string, string | undefined]> {
  if (!reference.includes('+') || (await exists(path.resolve(dir, reference)))) return [reference, undefined];
  const i = reference.lastIndexOf('+');
  return [reference.slice(0, i), reference.slice(i + 1)];
}

/**
 * Plans a recipe. Throws RecipeError (every problem with its position) when the merge cannot run;
 * warnings are in the plan.
 */
export async function planMerge(recipe: Recipe, options: PlanOptions = {}): Promise<MergePlan> {
  const problems = new Problems();
  const recipeDir = path.dirname(recipe.file);
  const warnings: string[] = [];
  const loaded = new Map<string, Promise<ModelSource | undefined>>();
  const stageOutputs = new Map<string, ModelSource>();
  const inputs = new Map<string, PlannedInput>();
  const outAbs = options.out ? path.resolve(options.out) : undefined;

  const locate = async (reference: string): Promise<string | undefined> => {
    const local = path.resolve(recipeDir, reference);
    if (await exists(local)) return local;
    return options.resolveModel?.(reference);
  };

  const resolve = (ref: At<string>): Promise<ModelSource | undefined> => {
    const stageSource = stageOutputs.get(ref.value);
    if (stageSource) return Promise.resolve({ ...stageSource, pos: ref.pos });
    let pending = loaded.get(ref.value);
    if (!pending) {
      pending = (async () => {
        const [modelRef, adapterRef] = await splitAdapter(ref.value, recipeDir);
        const modelPath = await locate(modelRef);
        if (!modelPath) {
          problems.add({ code: 'missing-model', message: missingModelMessage(modelRef), pos: ref.pos, subject: modelRef });
          return undefined;
        }
        if (outAbs && (modelPath === outAbs || modelPath.startsWith(outAbs + path.sep))) {
          problems.add({ code: 'output', message: `"${modelRef}" is inside the output folder "${outAbs}": a merge cannot read its own output. Choose another output folder.`, pos: ref.pos });
          return undefined;
        }
        let layout: CheckpointLayout;
        try {
          layout = await openCheckpoint(modelPath);
        } catch (error) {
          problems.add({ code: 'model', message: `Cannot read "${modelRef}": ${(error as Error).message}`, pos: ref.pos, subject: modelRef });
          return undefined;
        }
        const source = await checkpointSource(ref.value, ref.pos, layout, await folderOf(modelPath));
        if (!adapterRef) {
          inputs.set(ref.value, { reference: ref.value, paths: [layout.path], dir: source.dir, kind: 'checkpoint', bytes: layout.bytes });
          return source;
        }
        const adapterPath = await locate(adapterRef);
        if (!adapterPath) {
          problems.add({ code: 'missing-model', message: `Adapter "${adapterRef}" not found (relative to the recipe's folder, or indexed by Graft).`, pos: ref.pos, subject: adapterRef });
          return undefined;
        }
        let adapter: LoadedAdapter;
        try {
          adapter = await loadAdapter(adapterPath, new Map(layout.tensors.map((t) => [t.name, t])));
        } catch (error) {
          problems.add({ code: 'model', message: error instanceof AdapterError ? error.message : `Cannot read adapter "${adapterRef}": ${(error as Error).message}`, pos: ref.pos });
          return undefined;
        }
        for (const [name, patch] of adapter.patches) {
          const t = source.tensors.get(name)!;
          source.tensors.set(name, { ...t, operand: { kind: 'lora', base: t.operand, patch }, ref: undefined });
        }
        inputs.set(ref.value, { reference: ref.value, paths: [layout.path, adapterPath], dir: source.dir, kind: 'adapted', bytes: layout.bytes + adapter.layout.bytes });
        return { ...source, kind: 'adapted', paths: [layout.path, adapterPath], adapter };
      })();
      loaded.set(ref.value, pending);
    }
    return pending.then((s) => (s ? { ...s, pos: ref.pos } : undefined));
  };

  let final: { outputs: Map<string, SourceTensor & { planned: PlannedTensor }>; order: string[]; layers: number } | undefined;
  let configDir: string | undefined;
  let tokenizerDir: string | undefined;
  const lastStage = recipe.stages[recipe.stages.length - 1];
  for (let si = 0; si < recipe.stages.length; si++) {
    const stage = recipe.stages[si];
    const method = findMethod(stage.method.value)!;
    // Resolve every reference of the stage up front (in parallel), then plan synchronously.
    const refs: At<string>[] = [
      ...(stage.baseModel ? [stage.baseModel] : []),
      ...(stage.targetModel ? [stage.targetModel] : []),
      ...(stage.models ?? []).map((m) => m.model),
      ...(stage.slices ?? []).flatMap((s) => s.sources.map((x) => x.model)),
    ];
    const resolved = new Map<string, ModelSource | undefined>();
    await Promise.all(refs.map(async (r) => resolved.set(`${r.pos.line}:${r.pos.col}`, await resolve(r))));
    if (problems.list.length > 0) break;
    const planner = new StagePlanner(recipe, stage, si, method, problems, (r) => resolved.get(`${r.pos.line}:${r.pos.col}`), warnings);
    const result = planner.plan();
    if (!result || problems.list.length > 0) break;
    const firstModel = (stage.models?.[0]?.model ?? stage.slices?.[0]?.sources[0]?.model)!;
    const configSource = resolved.get(stage.baseModel ? `${stage.baseModel.pos.line}:${stage.baseModel.pos.col}` : `${firstModel.pos.line}:${firstModel.pos.col}`);
    if (stage === lastStage) {
      final = result;
      configDir = configSource?.dir;
      const tok = stage.tokenizerSource?.value;
      if (!tok || tok === 'base') tokenizerDir = configSource?.dir;
      else if (tok === 'union') problems.add({ code: 'bad-value', message: 'tokenizer_source: union is not supported by Graft yet; use base or a model.', pos: stage.tokenizerSource!.pos });
      else {
        const tokSource = await resolve(stage.tokenizerSource!);
        tokenizerDir = tokSource?.dir;
      }
    } else if (stage.name) {
      stageOutputs.set(stage.name.value, {
        reference: stage.name.value,
        pos: stage.name.pos,
        kind: 'stage',
        dir: configSource?.dir,
        paths: [],
        tensors: result.outputs,
        order: result.order,
        layers: result.layers,
      });
    }
  }
  if (problems.list.length > 0 || !final) {
    if (problems.list.length === 0) problems.add({ code: 'stage', message: 'The recipe produced no tensors.', pos: lastStage.pos });
    throw new RecipeError(recipe.file, problems.finish());
  }

  const tensors = final.order.map((name) => final!.outputs.get(name)!.planned);
  for (const t of tensors) {
    if (t.job && needsWholeRows(t.job) && t.shape.length > 0 && t.shape[t.shape.length - 1] > 64 * 1024 * 1024) {
      throw new RecipeError(recipe.file, [{ code: 'shape', message: `Rows of "${t.name}" are too long to merge row by row within Graft's memory bound.`, pos: lastStage.method.pos }]);
    }
  }
  const inputBytes = [...inputs.values()].reduce((n, i) => n + i.bytes, 0);
  const sliced = !!lastStage.slices;
  return {
    recipe,
    method: lastStage.method.value,
    stageNames: recipe.stages.map((s, i) => s.name?.value ?? `stage ${i + 1}`),
    tensors,
    // Base first, then the models in the order the recipe names them.
    inputs: [...inputs.values()].sort((a, b) => firstMention(recipe, a.reference) - firstMention(recipe, b.reference)),
    configDir,
    tokenizerDir,
    layerCount: sliced ? final.layers : undefined,
    warnings,
    totals: {
      tensors: tensors.length,
      elements: tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0),
      outputBytes: tensors.reduce((n, t) => n + t.bytes, 0),
      inputBytes,
    },
  };
}
