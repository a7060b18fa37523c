// Recipe files written for the user: the merge panel, "Swap These Layers from B", "Merge Adapter
// into Base" and "Transfer Fine-tune to New Base" all produce a mergekit YAML that the user can
// read, change and run again, and that parses back to the same recipe.
import * as path from 'node:path';
import { Document, isPair, isScalar, isSeq, visit } from 'yaml';
import type { ParamValue } from '../methods/types';

/** Parameter values as a recipe writes them: a list of numbers is a gradient over the layers. */
export type RecipeParams = Record<string, ParamValue | number[]>;

export interface RecipeModelSpec {
  /** A path (absolute, or relative to the recipe's folder), a hub id, or model+adapter. */
  model: string;
  parameters?: RecipeParams;
}

export interface RecipeSliceSpec {
  model: string;
  /** [start, end), end exclusive. */
  layerRange: [number, number];
}

export interface RecipeSpec {
  method: string;
  baseModel?: string;
  targetModel?: string;
  models?: RecipeModelSpec[];
  /** One source per slice (passthrough stacking and swapping). */
  slices?: RecipeSliceSpec[];
  parameters?: RecipeParams;
  dtype?: string;
  /** A comment put above the recipe: what it does and where it came from. */
  comment?: string;
}

/** A reference as a recipe in `recipeDir` should write it: local paths relative, hub ids unchanged. */
export function referenceFrom(recipeDir: string, reference: string): string {
  return reference
    .split('+')
    .map((part) => (path.isAbsolute(part) ? path.relative(recipeDir, part).split(path.sep).join('/') || '.' : part))
    .join('+');
}

function params(values: RecipeParams | undefined): RecipeParams | undefined {
  if (!values) return undefined;
  const entries = Object.entries(values).filter(([, v]) => v !== undefined && v !== '');
  return entries.length ? Object.fromEntries(entries) : undefined;
}

/** The recipe as YAML text, with model references relative to `recipeDir`. */
export function recipeToYaml(spec: RecipeSpec, recipeDir: string): string {
  const ref = (r: string) => referenceFrom(recipeDir, r);
  const doc: Record<string, unknown> = { merge_method: spec.method };
  if (spec.baseModel) doc.base_model = ref(spec.baseModel);
  if (spec.targetModel) doc.target_model = ref(spec.targetModel);
  if (spec.models) {
    doc.models = spec.models.map((m) => {
      const p = params(m.parameters);
      return p ? { model: ref(m.model), parameters: p } : { model: ref(m.model) };
    });
  }
  if (spec.slices) doc.slices = spec.slices.map((s) => ({ sources: [{ model: ref(s.model), layer_range: [...s.layerRange] }] }));
  const globals = params(spec.parameters);
  if (globals) doc.parameters = globals;
  if (spec.dtype) doc.dtype = spec.dtype;
  const yaml = new Document(doc);
  // layer_range reads best as [start, end], as mergekit's examples write it.
  visit(yaml, {
    Pair(_, pair) {
      if (isPair(pair) && isScalar(pair.key) && pair.key.value === 'layer_range' && isSeq(pair.value)) pair.value.flow = true;
    },
  });
  const body = yaml.toString({ flowCollectionPadding: false, lineWidth: 0 });
  const comment = spec.comment ? spec.comment.split('\n').map((line) => `# ${line}`.trimEnd()).join('\n') + '\n' : '';
  return comment + body;
}

/**
 * Slices that take `swapped` layers from `b` and every other layer from `a` (both with `layers`
 * layers): runs of consecutive layers become one slice each, in layer order.
 */
export function layerSwapSlices(a: string, b: string, layers: number, swapped: Iterable<number>): RecipeSliceSpec[] {
  const fromB = new Set(swapped);
  for (const layer of fromB) {
    if (!Number.isInteger(layer) || layer < 0 || layer >= layers) throw new RangeError(`Layer ${layer} is not one of the ${layers} layers (0 to ${layers - 1}).`);
  }
  const slices: RecipeSliceSpec[] = [];
  for (let layer = 0; layer < layers; layer++) {
    const model = fromB.has(layer) ? b : a;
    const last = slices[slices.length - 1];
    if (last && last.model === model && last.layerRange[1] === layer) last.layerRange[1] = layer + 1;
    else slices.push({ model, layerRange: [layer, layer + 1] });
  }
  return slices;
}
