// A JSON schema of merge recipes, derived from the method registry, for editors that validate YAML
// with JSON schemas (package.json contributes it through yamlValidation as media/recipe.schema.json;
// a unit test keeps that file equal to what this function returns).
import { MERGE_METHODS } from '../methods/registry';
import type { ParamDef } from '../methods/types';
import { DTYPE_NAMES } from './parse';

type Schema = Record<string, unknown>;

function paramSchema(def: ParamDef): Schema {
  const scalar: Schema = def.kind === 'number' ? { type: 'number' } : def.kind === 'boolean' ? { type: 'boolean' } : { type: 'string' };
  if (def.min !== undefined) scalar.minimum = def.min;
  if (def.max !== undefined) scalar.maximum = def.max;
  if (def.choices) scalar.enum = [...def.choices];
  const description = `${def.doc}${def.default !== undefined ? ` Default: ${String(def.default)}.` : def.required ? ' Required.' : ''}`;
  const conditions = { type: 'array', items: { type: 'object', properties: { filter: { type: 'string' }, value: {} }, required: ['value'], additionalProperties: false } };
  const variants: Schema[] = [scalar, conditions];
  if (def.kind === 'number') variants.splice(1, 0, { type: 'array', items: { type: 'number' }, minItems: 1, description: 'A gradient: values interpolated over the layers.' });
  return { description, anyOf: variants };
}

/** Every parameter name the registry knows, with the first definition found for its schema. */
function allParameters(which: 'parameters' | 'tensorParameters'): Schema {
  const out: Schema = {};
  for (const method of MERGE_METHODS) {
    for (const def of method[which]) if (!(def.name in out)) out[def.name] = paramSchema(def);
  }
  return out;
}

export function recipeJsonSchema(): Schema {
  const modelRef = { type: 'string', description: 'A path relative to the recipe, a hub id (org/name), or model+adapter to merge a LoRA in.' };
  const modelParams = { type: 'object', properties: allParameters('tensorParameters') };
  const stageParams = { type: 'object', properties: { ...allParameters('tensorParameters'), ...allParameters('parameters') } };
  const dtypes = Object.keys(DTYPE_NAMES);
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Graft merge recipe (mergekit YAML)',
    type: 'object',
    required: ['merge_method'],
    properties: {
      merge_method: { description: 'The merge method.', enum: MERGE_METHODS.map((m) => m.name), markdownEnumDescriptions: MERGE_METHODS.map((m) => m.summary) },
      base_model: { ...modelRef, description: 'The model the others were fine-tuned from (task vectors are taken against it).' },
      target_model: { ...modelRef, description: 'diff_transfer only: the new base the fine-tunes move onto.' },
      name: { type: 'string', description: 'The stage name of a multi-stage recipe; later stages use it as a model.' },
      models: { type: 'array', items: { anyOf: [modelRef, { type: 'object', properties: { model: modelRef, parameters: modelParams }, required: ['model'], additionalProperties: false }] } },
      slices: {
        type: 'array',
        items: {
          type: 'object',
          required: ['sources'],
          additionalProperties: false,
          properties: {
            sources: {
              type: 'array',
              items: {
                type: 'object',
                required: ['model', 'layer_range'],
                additionalProperties: false,
                properties: {
                  model: modelRef,
                  layer_range: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2, description: '[start, end): end exclusive.' },
                  parameters: modelParams,
                },
              },
            },
            parameters: stageParams,
          },
        },
      },
      parameters: stageParams,
      dtype: { enum: dtypes, description: 'The dtype merges are computed in before the output dtype.' },
      out_dtype: { enum: dtypes, description: 'The dtype of the written tensors.' },
      tokenizer_source: { type: 'string', description: 'Where the tokenizer comes from: base, or a model of the recipe.' },
      random_seed: { type: 'integer', minimum: 0, description: 'Seed of the random methods (DARE, DELLA, breadcrumbs).' },
      chat_template: { type: 'string' },
    },
    additionalProperties: false,
  };
}
