// Parses a merge recipe (mergekit's YAML; several documents with `name:` for multi-stage recipes)
// and checks it against the method registry, collecting every problem with its line and column.
// Models are not opened here: plan.ts resolves them and checks shapes.
import * as path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode, type Pair, type YAMLMap } from 'yaml';
import { didYouMean, closestName } from '../../suggest';
import { findMethod, methodNames } from '../methods/registry';
import type { ParamDef } from '../methods/types';
import {
  RecipeError, type At, type ModelEntry, type ParamMap, type Pos, type Recipe, type RecipeProblem, type RecipeStage, type Setting, type SliceEntry,
} from './types';

export const STAGE_KEYS = [
  'merge_method', 'base_model', 'target_model', 'models', 'slices', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source', 'random_seed', 'name', 'chat_template',
] as const;
const UNSUPPORTED_KEYS: Record<string, string> = {
  modules: 'per-module merges ("modules") are not supported by Graft yet; use slices or models.',
  tokenizer: 'the "tokenizer" block (token surgery) is not supported by Graft yet; use tokenizer_source: base or a model.',
};
export const DTYPE_NAMES: Record<string, 'F32' | 'F16' | 'BF16'> = {
  float32: 'F32', fp32: 'F32', float: 'F32', float16: 'F16', fp16: 'F16', half: 'F16', bfloat16: 'BF16', bf16: 'BF16',
};

class Collector {
  readonly problems: RecipeProblem[] = [];
  constructor(private readonly lines: LineCounter) {}

  pos(node: YamlNode | null | undefined): Pos {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { line, col };
  }

  add(problem: RecipeProblem): void {
    this.problems.push(problem);
  }

  /** An unknown key in a mapping, with the keys expected there and the closest one as the quick fix. */
  unknownKey(pair: Pair, where: string, expected: readonly string[]): void {
    const k = keyName(pair);
    const suggestion = closestName(k, expected);
    this.add({
      code: 'unknown-key',
      message: `Unknown key "${k}" ${where}.${suggestion ? ` Did you mean "${suggestion}"?` : ''} Expected: ${expected.join(', ')}.`,
      pos: this.pos(pair.key as YamlNode),
      subject: k,
      suggestion,
    });
  }
}

function describe(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return JSON.stringify(node.value);
  return 'nothing';
}

function keyName(pair: Pair): string {
  return isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
}

/** A tag beyond YAML's own (!!python/object and the like): never honoured, reported as an error. */
const PLAIN_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'seq', 'map'].map((t) => `tag:yaml.org,2002:${t}`));

function foreignTag(node: unknown): string | undefined {
  const tag = (node as { tag?: string } | null)?.tag;
  return tag && !PLAIN_TAGS.has(tag) ? tag.replace('tag:yaml.org,2002:', '!!') : undefined;
}

function stringAt(node: unknown, c: Collector, what: string): At<string> | undefined {
  const tag = foreignTag(node);
  if (tag) {
    c.add({ code: 'type', message: `${what} has a YAML tag (${tag}); recipes take plain values only, and tags are never executed.`, pos: c.pos(node as YamlNode) });
    return undefined;
  }
  if (isScalar(node) && typeof node.value === 'string' && node.value.trim() !== '') return { value: node.value.trim(), pos: c.pos(node) };
  c.add({ code: 'type', message: `${what} must be a non-empty string, not ${describe(node)}.`, pos: c.pos(node as YamlNode) });
  return undefined;
}

function settingOf(node: unknown, c: Collector, name: string): Setting | undefined {
  const tag = foreignTag(node);
  if (tag) {
    c.add({ code: 'type', message: `Parameter "${name}" has a YAML tag (${tag}); write a plain value (tags are never executed).`, pos: c.pos(node as YamlNode) });
    return undefined;
  }
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return { kind: 'scalar', value: v };
    c.add({ code: 'type', message: `Parameter "${name}" must be a number, true/false, a string, a list of numbers or a list of filters, not ${describe(node)}.`, pos: c.pos(node) });
    return undefined;
  }
  if (isSeq(node)) {
    const items = node.items;
    if (items.length === 0) {
      c.add({ code: 'bad-value', message: `Parameter "${name}" is an empty list; give a value or a list of values to interpolate over the layers.`, pos: c.pos(node) });
      return undefined;
    }
    if (items.every((i) => isScalar(i) && typeof i.value === 'number')) return { kind: 'gradient', values: items.map((i) => (i as { value: number }).value) };
    if (items.every((i) => isMap(i))) {
      const conditions: { filter?: string; setting: Setting }[] = [];
      for (const item of items as YAMLMap[]) {
        let filter: string | undefined;
        let setting: Setting | undefined;
        for (const pair of item.items) {
          const k = keyName(pair);
          if (k === 'filter') filter = stringAt(pair.value, c, `The filter of "${name}"`)?.value;
          else if (k === 'value') setting = settingOf(pair.value, c, name);
          else c.unknownKey(pair, `in a filtered value of "${name}"`, ['filter', 'value']);
        }
        if (!setting) {
          c.add({ code: 'missing-key', message: `A filtered value of "${name}" has no "value".`, pos: c.pos(item) });
          continue;
        }
        conditions.push({ filter, setting });
      }
      return { kind: 'conditions', conditions };
    }
    c.add({ code: 'type', message: `Parameter "${name}": a list must hold only numbers (a gradient) or only "filter"/"value" entries.`, pos: c.pos(node) });
    return undefined;
  }
  c.add({ code: 'type', message: `Parameter "${name}" must be a value, a list of numbers, or a list of filters, not ${describe(node)}.`, pos: c.pos(node as YamlNode) });
  return undefined;
}

function paramsOf(node: unknown, c: Collector, where: string): ParamMap {
  const out: ParamMap = new Map();
  if (node === undefined || node === null || (isScalar(node) && node.value === null)) return out;
  if (!isMap(node)) {
    c.add({ code: 'type', message: `${where} "parameters" must be a mapping of parameter names to values.`, pos: c.pos(node as YamlNode) });
    return out;
  }
  for (const pair of node.items) {
    const name = keyName(pair);
    const setting = settingOf(pair.value, c, name);
    if (setting) out.set(name, { name, setting, pos: c.pos(pair.key as YamlNode) });
  }
  return out;
}

function modelsOf(node: unknown, c: Collector): ModelEntry[] {
  if (!isSeq(node)) {
    c.add({ code: 'type', message: '"models" must be a list of entries with "model" (and optional "parameters").', pos: c.pos(node as YamlNode) });
    return [];
  }
  const out: ModelEntry[] = [];
  for (const item of node.items) {
    if (isScalar(item)) {
      const model = stringAt(item, c, 'A model');
      if (model) out.push({ model, parameters: new Map() });
      continue;
    }
    if (!isMap(item)) {
      c.add({ code: 'type', message: 'Each entry of "models" must have a "model" key.', pos: c.pos(item as YamlNode) });
      continue;
    }
    let model: At<string> | undefined;
    let parameters: ParamMap = new Map();
    for (const pair of item.items) {
      const k = keyName(pair);
      if (k === 'model') model = stringAt(pair.value, c, '"model"');
      else if (k === 'parameters') parameters = paramsOf(pair.value, c, 'A model\'s');
      else c.unknownKey(pair, 'in a model entry', ['model', 'parameters']);
    }
    if (!model) {
      c.add({ code: 'missing-key', message: 'A model entry has no "model": give a path, a hub id, or model+adapter.', pos: c.pos(item) });
      continue;
    }
    out.push({ model, parameters });
  }
  return out;
}

function layerRangeOf(node: unknown, c: Collector): At<[number, number]> | undefined {
  const pos = c.pos(node as YamlNode);
  if (isSeq(node) && node.items.length === 2 && node.items.every((i) => isScalar(i) && Number.isInteger(i.value) && (i.value as number) >= 0)) {
    const [a, b] = node.items.map((i) => (i as { value: number }).value);
    if (b <= a) {
      c.add({ code: 'layer-range', message: `layer_range [${a}, ${b}] is empty: the end (exclusive) must be greater than the start.`, pos });
      return undefined;
    }
    return { value: [a, b], pos };
  }
  c.add({ code: 'layer-range', message: 'layer_range must be [start, end] with whole numbers, start < end (end exclusive).', pos });
  return undefined;
}

function slicesOf(node: unknown, c: Collector): SliceEntry[] {
  if (!isSeq(node)) {
    c.add({ code: 'type', message: '"slices" must be a list of slices, each with "sources".', pos: c.pos(node as YamlNode) });
    return [];
  }
  const out: SliceEntry[] = [];
  for (const item of node.items) {
    if (!isMap(item)) {
      c.add({ code: 'type', message: 'Each slice must be a mapping with "sources".', pos: c.pos(item as YamlNode) });
      continue;
    }
    const slice: SliceEntry = { sources: [], parameters: new Map(), pos: c.pos(item) };
    for (const pair of item.items) {
      const k = keyName(pair);
      if (k === 'parameters') slice.parameters = paramsOf(pair.value, c, 'A slice\'s');
      else if (k === 'sources') {
        if (!isSeq(pair.value)) {
          c.add({ code: 'type', message: '"sources" must be a list of {model, layer_range}.', pos: c.pos(pair.value as YamlNode) });
          continue;
        }
        for (const src of pair.value.items) {
          if (!isMap(src)) {
            c.add({ code: 'type', message: 'Each source must have "model" and "layer_range".', pos: c.pos(src as YamlNode) });
            continue;
          }
          let model: At<string> | undefined;
          let layerRange: At<[number, number]> | undefined;
          let parameters: ParamMap = new Map();
          for (const sp of src.items) {
            const sk = keyName(sp);
            if (sk === 'model') model = stringAt(sp.value, c, '"model"');
            else if (sk === 'layer_range') layerRange = layerRangeOf(sp.value, c);
            else if (sk === 'parameters') parameters = paramsOf(sp.value, c, 'A source\'s');
            else c.unknownKey(sp, 'in a slice source', ['model', 'layer_range', 'parameters']);
          }
          if (!model) c.add({ code: 'missing-key', message: 'A slice source has no "model".', pos: c.pos(src) });
          else if (!layerRange && !src.items.some((p) => keyName(p) === 'layer_range')) c.add({ code: 'missing-key', message: 'A slice source has no "layer_range" ([start, end), end exclusive).', pos: c.pos(src) });
          if (model && layerRange) slice.sources.push({ model, layerRange, parameters });
        }
      } else if (k === 'base_model' || k === 'residual_weight') {
        c.add({ code: 'unknown-key', message: `"${k}" inside a slice is not supported by Graft; set base_model at the top of the recipe.`, pos: c.pos(pair.key as YamlNode), subject: k });
      } else {
        c.unknownKey(pair, 'in a slice', ['sources', 'parameters']);
      }
    }
    if (!item.items.some((p) => keyName(p) === 'sources')) c.add({ code: 'missing-key', message: 'A slice has no "sources" (a list of {model, layer_range}).', pos: slice.pos });
    out.push(slice);
  }
  return out;
}

function stageOf(doc: YAMLMap | null, docNode: YamlNode | null, c: Collector): RecipeStage | undefined {
  if (!doc || !isMap(doc)) {
    c.add({ code: 'type', message: 'A recipe must be a YAML mapping with at least "merge_method" and "models" or "slices".', pos: c.pos(docNode) });
    return undefined;
  }
  const stage: Partial<RecipeStage> & { parameters: ParamMap; pos: Pos } = { parameters: new Map(), pos: c.pos(doc) };
  for (const pair of doc.items) {
    const k = keyName(pair);
    const v = pair.value;
    const keyPos = c.pos(pair.key as YamlNode);
    switch (k) {
      case 'merge_method': stage.method = stringAt(v, c, '"merge_method"'); break;
      case 'base_model': stage.baseModel = stringAt(v, c, '"base_model"'); break;
      case 'target_model': stage.targetModel = stringAt(v, c, '"target_model"'); break;
      case 'name': stage.name = stringAt(v, c, '"name"'); break;
      case 'models': stage.models = modelsOf(v, c); break;
      case 'slices': stage.slices = slicesOf(v, c); break;
      case 'parameters': stage.parameters = paramsOf(v, c, 'The recipe\'s'); break;
      case 'dtype': stage.dtype = stringAt(v, c, '"dtype"'); break;
      case 'out_dtype': stage.outDtype = stringAt(v, c, '"out_dtype"'); break;
      case 'tokenizer_source': stage.tokenizerSource = stringAt(v, c, '"tokenizer_source"'); break;
      case 'chat_template': break;
      case 'random_seed':
        if (isScalar(v) && Number.isSafeInteger(v.value) && (v.value as number) >= 0) stage.randomSeed = { value: v.value as number, pos: c.pos(v) };
        else c.add({ code: 'type', message: '"random_seed" must be a non-negative whole number.', pos: c.pos(v as YamlNode) });
        break;
      default: {
        const why = UNSUPPORTED_KEYS[k];
        if (why) c.add({ code: 'unknown-key', message: `"${k}": ${why}`, pos: keyPos, subject: k });
        else {
          c.unknownKey(pair, 'in a recipe', STAGE_KEYS);
        }
      }
    }
  }
  if (!stage.method) {
    if (!doc.items.some((p) => keyName(p) === 'merge_method')) c.add({ code: 'missing-key', message: `The recipe has no "merge_method". Methods: ${methodNames().join(', ')}.`, pos: stage.pos });
    return undefined;
  }
  if (stage.models && stage.slices) c.add({ code: 'stage', message: 'Give either "models" or "slices", not both.', pos: stage.pos });
  if (!stage.models && !stage.slices) c.add({ code: 'missing-key', message: 'The recipe lists no inputs: add "models" (a list of {model, parameters}) or "slices".', pos: stage.pos });
  for (const key of ['dtype', 'outDtype'] as const) {
    const d = stage[key];
    if (d && !DTYPE_NAMES[d.value.toLowerCase()]) {
      c.add({ code: 'bad-value', message: `Unknown dtype "${d.value}": use float32, bfloat16 or float16.${didYouMean(d.value, Object.keys(DTYPE_NAMES))}`, pos: d.pos, subject: d.value, suggestion: closestName(d.value, Object.keys(DTYPE_NAMES)) });
    }
  }
  return stage as RecipeStage;
}

/** Checks the stage's method and every parameter name and value it sets against the registry. */
function checkAgainstMethod(stage: RecipeStage, c: Collector): void {
  const method = findMethod(stage.method.value);
  if (!method) {
    const suggestion = closestName(stage.method.value, methodNames());
    c.add({ code: 'unknown-method', message: `Unknown merge method "${stage.method.value}".${didYouMean(stage.method.value, methodNames())} Methods: ${methodNames().join(', ')}.`, pos: stage.method.pos, subject: stage.method.value, suggestion });
    return;
  }
  const globalNames = method.parameters.map((p) => p.name);
  const tensorNames = method.tensorParameters.map((p) => p.name);
  const all = [...globalNames, ...tensorNames];
  const check = (params: ParamMap, modelLevel: boolean) => {
    for (const p of params.values()) {
      const def = [...method.parameters, ...method.tensorParameters].find((d) => d.name === p.name);
      if (!def) {
        const suggestion = closestName(p.name, all);
        const known = all.length > 0 ? ` ${method.name} takes: ${all.join(', ')}.` : ` ${method.name} takes no parameters.`;
        c.add({ code: 'unknown-parameter', message: `Unknown parameter "${p.name}" for ${method.name}.${didYouMean(p.name, all)}${known}`, pos: p.pos, subject: p.name, suggestion });
        continue;
      }
      if (modelLevel && globalNames.includes(p.name)) {
        c.add({ code: 'misplaced-parameter', message: `"${p.name}" applies to the whole merge; set it under the recipe's top-level "parameters", not a model's.`, pos: p.pos, subject: p.name });
      }
      checkSettingValues(p.setting, def, p.pos, c);
    }
  };
  check(stage.parameters, false);
  for (const m of stage.models ?? []) check(m.parameters, true);
  for (const s of stage.slices ?? []) {
    check(s.parameters, false);
    for (const src of s.sources) check(src.parameters, true);
  }
}

function checkSettingValues(setting: Setting, def: ParamDef, pos: Pos, c: Collector): void {
  if (setting.kind === 'conditions') {
    for (const cond of setting.conditions) checkSettingValues(cond.setting, def, pos, c);
    return;
  }
  const values: unknown[] = setting.kind === 'gradient' ? setting.values : [setting.value];
  if (setting.kind === 'gradient' && def.kind !== 'number') {
    c.add({ code: 'type', message: `"${def.name}" takes ${def.kind === 'boolean' ? 'true or false' : 'a string'}, not a list of numbers.`, pos });
    return;
  }
  for (const v of values) {
    if (def.kind === 'number' && typeof v !== 'number') c.add({ code: 'type', message: `"${def.name}" must be a number, not ${JSON.stringify(v)}.`, pos });
    else if (def.kind === 'boolean' && typeof v !== 'boolean') c.add({ code: 'type', message: `"${def.name}" must be true or false, not ${JSON.stringify(v)}.`, pos });
    else if (def.kind === 'string' && typeof v !== 'string') c.add({ code: 'type', message: `"${def.name}" must be a string, not ${JSON.stringify(v)}.`, pos });
    else if (typeof v === 'number' && !Number.isFinite(v)) c.add({ code: 'bad-value', message: `"${def.name}" must be a finite number.`, pos });
    else if (typeof v === 'number' && ((def.min !== undefined && v < def.min) || (def.max !== undefined && v > def.max))) {
      c.add({ code: 'bad-value', message: `"${def.name}" is ${v}, outside [${def.min ?? '-inf'}, ${def.max ?? 'inf'}].`, pos });
    } else if (typeof v === 'string' && def.choices && !def.choices.includes(v)) {
      c.add({ code: 'bad-value', message: `"${def.name}" must be one of ${def.choices.join(', ')}, not "${v}".${didYouMean(v, def.choices)}`, pos, subject: v, suggestion: closestName(v, def.choices) });
    }
  }
}

/** Parses recipe text; returns the recipe and every problem found (a recipe with problems must not run). */
export function parseRecipeText(text: string, file: string): { recipe?: Recipe; problems: RecipeProblem[] } {
  const lines = new LineCounter();
  const c = new Collector(lines);
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  const stages: RecipeStage[] = [];
  for (const doc of list) {
    for (const error of doc.errors) {
      const offset = error.pos?.[0] ?? 0;
      const { line, col } = lines.linePos(offset);
      c.add({ code: 'yaml', message: `YAML syntax: ${error.message.split('\n')[0]}`, pos: { line, col } });
    }
    if (doc.errors.length > 0) continue;
    if (doc.contents === null && list.length > 1) continue;
    const stage = stageOf(doc.contents as YAMLMap | null, doc.contents as YamlNode | null, c);
    if (stage) stages.push(stage);
  }
  if (c.problems.length === 0 && stages.length === 0) c.add({ code: 'missing-key', message: 'The recipe is empty: give "merge_method" and "models" or "slices".', pos: { line: 1, col: 1 } });
  if (stages.length > 1) {
    const seen = new Set<string>();
    stages.forEach((stage, i) => {
      if (!stage.name) c.add({ code: 'stage', message: `Stage ${i + 1} of this multi-stage recipe has no "name"; every stage needs one (later stages use it as a model).`, pos: stage.pos });
      else if (seen.has(stage.name.value)) c.add({ code: 'stage', message: `Two stages are named "${stage.name.value}".`, pos: stage.name.pos });
      else seen.add(stage.name.value);
    });
  }
  for (const stage of stages) checkAgainstMethod(stage, c);
  c.problems.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  return { recipe: c.problems.length === 0 ? { file: path.resolve(file), text, stages } : undefined, problems: c.problems };
}

/** Parses recipe text or throws a RecipeError naming the first problem's file, line and column. */
export function parseRecipe(text: string, file: string): Recipe {
  const { recipe, problems } = parseRecipeText(text, file);
  if (!recipe) throw new RecipeError(file, problems);
  return recipe;
}

