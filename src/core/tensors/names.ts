// Tensor names -> (group, layer, module): the rows and columns of the diff heatmap.
//
// Scheme, the same for every family so the columns read alike:
// - group: which stack of blocks the tensor belongs to. A model's single decoder/encoder stack is
//   "layers" (llama `model.layers`, gpt2 `transformer.h`, gpt-neox `gpt_neox.layers`); models with
//   several stacks name them ("encoder"/"decoder" for t5, bart and bert, "down_blocks", "mid_block",
//   "up_blocks", "transformer_blocks", "single_transformer_blocks" for diffusers, "text_model.encoder"
//   for clip). Tensors outside any stack (embeddings, final norm, head) are NON_LAYER_GROUP with
//   layer null.
// - layer: the block index within its group.
// - module: the path inside the block with the trailing ".weight" dropped (weight is the default
//   parameter); any other leaf is kept, so "mlp.c_fc" (weight) and "mlp.c_fc.bias" are distinct
//   columns and every (group, layer, module) cell is exactly one tensor.

export interface ParsedTensorName {
  layer: number | null;
  module: string;
  group: string;
}

/** The group of tensors that belong to no block: embeddings, final norm, head. */
export const NON_LAYER_GROUP = 'non-layer';
/** The group name of a model's only stack of blocks, whatever the family calls it. */
export const SINGLE_STACK_GROUP = 'layers';

/** Prefixes added by wrappers around a model (PEFT, DDP, torch.compile), not part of its own naming. */
const WRAPPER_PREFIXES = ['base_model.model.', 'module.', '_orig_mod.'];
/** Leading components that name the model class rather than a part of it. */
const ROOT_COMPONENTS = new Set([
  'model', 'transformer', 'bert', 'roberta', 'xlm_roberta', 'deberta', 'electra', 'albert', 'distilbert',
  'gpt_neox', 'vit', 'deit', 'beit', 'language_model', 'diffusion_model',
]);
/** What families call "the list of blocks"; dropped from group names. */
const STACK_WORDS = new Set(['layers', 'layer', 'h', 'block', 'blocks']);
/** Diffusers' UNet middle block: one block without an index. */
const INDEXLESS_BLOCKS = new Set(['mid_block']);
/** T5 sub-layers named by their index: which kind each index is, per stack. */
const T5_SUBLAYERS: Record<string, string[]> = {
  encoder: ['SelfAttention', 'DenseReluDense'],
  decoder: ['SelfAttention', 'EncDecAttention', 'DenseReluDense'],
};
const T5_SUBLAYER_KINDS = new Set(['SelfAttention', 'EncDecAttention', 'DenseReluDense']);

const INDEX = /^\d+$/;

export function parseTensorName(name: string): ParsedTensorName {
  const parts = dropRoots(stripWrappers(name).split('.'));
  const indexless = parts.findIndex((p) => INDEXLESS_BLOCKS.has(p));
  const indexAt = parts.findIndex((p) => INDEX.test(p));
  if (indexless >= 0 && (indexAt < 0 || indexless < indexAt)) {
    return { layer: 0, module: moduleName(parts.slice(indexless + 1), parts[indexless]), group: groupName(parts.slice(0, indexless + 1)) };
  }
  if (indexAt < 0) return { layer: null, module: moduleName(parts, name), group: NON_LAYER_GROUP };
  const group = groupName(parts.slice(0, indexAt));
  const rest = parts.slice(indexAt + 1);
  return { layer: Number(parts[indexAt]), module: t5Module(group, rest) ?? moduleName(rest, parts[indexAt - 1] ?? name), group };
}

/** The path with a trailing ".weight" dropped; `fallback` when nothing is left (a bare indexed tensor). */
function moduleName(rest: string[], fallback: string): string {
  const path = rest.length > 1 && rest[rest.length - 1] === 'weight' ? rest.slice(0, -1) : rest;
  return path.length > 0 ? path.join('.') : fallback;
}

function stripWrappers(name: string): string {
  let stripped = name;
  for (let changed = true; changed; ) {
    changed = false;
    for (const prefix of WRAPPER_PREFIXES) {
      if (stripped.startsWith(prefix) && stripped.length > prefix.length) {
        stripped = stripped.slice(prefix.length);
        changed = true;
      }
    }
  }
  return stripped;
}

/** Drops model-class roots ("model.", "bert.") but never the last component. */
function dropRoots(parts: string[]): string[] {
  let first = 0;
  while (first < parts.length - 1 && ROOT_COMPONENTS.has(parts[first])) first++;
  return parts.slice(first);
}

function groupName(prefix: string[]): string {
  const named = prefix.length > 0 && STACK_WORDS.has(prefix[prefix.length - 1]) ? prefix.slice(0, -1) : prefix;
  return named.length > 0 ? named.join('.') : SINGLE_STACK_GROUP;
}

/**
 * T5 nests numbered sub-layers in each block (`layer.0.SelfAttention.q`, `layer.1.layer_norm`).
 * The sub-layer index means a different thing in encoder and decoder blocks, so the column is named
 * by the sub-layer's kind: `SelfAttention.q`, `DenseReluDense.layer_norm`.
 */
function t5Module(group: string, rest: string[]): string | undefined {
  if (rest.length < 3 || rest[0] !== 'layer' || !INDEX.test(rest[1])) return undefined;
  const inner = moduleName(rest.slice(2), rest[1]).split('.');
  if (T5_SUBLAYER_KINDS.has(inner[0])) return inner.join('.');
  const kind = T5_SUBLAYERS[group.split('.').pop() ?? '']?.[Number(rest[1])];
  return kind ? [kind, ...inner].join('.') : undefined;
}
