// A small demo workspace for trying Graft by hand (`npm run demo`): a llama-style base model, two
// fine-tunes whose changes form a visible pattern in the compare heatmap (one retunes attention
// in the late layers, the other the MLP in the early layers), one of them sharded, and a LoRA
// adapter. Written with the project's own safetensors writer from a seeded PRNG, so every run
// produces the same bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  encodeFromFloat32, writeSafetensors, writeShardedSafetensors, type DType, type TensorData,
} from '../../src/core/safetensors';
import { Rng } from '../unit/fuzz-mutations';

/** Marks a folder as made by writeDemoWorkspace and lists the files it wrote. */
export const DEMO_MARKER = '.graft-demo.json';
const DEMO_FORMAT = 1;

const HIDDEN = 64;
const INTERMEDIATE = 128;
const LAYERS = 8;
const HEADS = 4;
const VOCAB = 256;
const LORA_RANK = 4;
const LORA_ALPHA = 8;
const ORG = 'demo';

const ATTENTION = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
const MLP = ['gate_proj', 'up_proj', 'down_proj'] as const;

interface TensorPlan {
  name: string;
  shape: number[];
  /** Which layer it belongs to (undefined for embeddings, final norm, head). */
  layer?: number;
  /** Its module (q_proj, ..., input_layernorm, embed_tokens, norm, lm_head). */
  module: string;
  /** Norm weights start at 1; matrices are random. */
  isNorm: boolean;
}

/** The base model's tensors, named as transformers names LlamaForCausalLM's. */
function llamaTensors(): TensorPlan[] {
  const plans: TensorPlan[] = [{ name: 'model.embed_tokens.weight', shape: [VOCAB, HIDDEN], module: 'embed_tokens', isNorm: false }];
  for (let layer = 0; layer < LAYERS; layer++) {
    const prefix = `model.layers.${layer}`;
    for (const module of ATTENTION) plans.push({ name: `${prefix}.self_attn.${module}.weight`, shape: [HIDDEN, HIDDEN], layer, module, isNorm: false });
    plans.push({ name: `${prefix}.mlp.gate_proj.weight`, shape: [INTERMEDIATE, HIDDEN], layer, module: 'gate_proj', isNorm: false });
    plans.push({ name: `${prefix}.mlp.up_proj.weight`, shape: [INTERMEDIATE, HIDDEN], layer, module: 'up_proj', isNorm: false });
    plans.push({ name: `${prefix}.mlp.down_proj.weight`, shape: [HIDDEN, INTERMEDIATE], layer, module: 'down_proj', isNorm: false });
    plans.push({ name: `${prefix}.input_layernorm.weight`, shape: [HIDDEN], layer, module: 'input_layernorm', isNorm: true });
    plans.push({ name: `${prefix}.post_attention_layernorm.weight`, shape: [HIDDEN], layer, module: 'post_attention_layernorm', isNorm: true });
  }
  plans.push({ name: 'model.norm.weight', shape: [HIDDEN], module: 'norm', isNorm: true });
  plans.push({ name: 'lm_head.weight', shape: [VOCAB, HIDDEN], module: 'lm_head', isNorm: false });
  return plans;
}

/** Normal samples from a seeded xorshift (Box-Muller). */
function gaussian(rng: Rng, count: number, std: number): Float32Array {
  const out = new Float32Array(count);
  const uniform = () => (rng.next() + 0.5) / 4294967296;
  for (let i = 0; i < count; i++) out[i] = std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** FNV-1a of a string: a per-tensor seed, so one tensor's values do not depend on the others. */
function seedOf(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Size of a fine-tune's change of one tensor (std of the added noise), by layer and module. */
type DeltaScale = (plan: TensorPlan) => number;

/** The chat fine-tune retunes attention, more strongly towards the last layers. */
const chatDelta: DeltaScale = (plan) => {
  if (plan.layer !== undefined && (ATTENTION as readonly string[]).includes(plan.module)) {
    return plan.layer >= LAYERS - 3 ? 0.003 * (plan.layer - (LAYERS - 4)) : 0.0004;
  }
  return plan.module === 'lm_head' ? 0.002 : 0.0002;
};

/** The code fine-tune retunes the MLP, more strongly towards the first layers. */
const codeDelta: DeltaScale = (plan) => {
  if (plan.layer !== undefined && (MLP as readonly string[]).includes(plan.module)) {
    return plan.layer < 3 ? 0.003 * (3 - plan.layer) : 0.0004;
  }
  return plan.module === 'embed_tokens' ? 0.002 : 0.0002;
};

function baseValues(plan: TensorPlan): Float32Array {
  if (plan.isNorm) return new Float32Array(numel(plan.shape)).fill(1);
  return gaussian(new Rng(seedOf(`base:${plan.name}`)), numel(plan.shape), 0.02);
}

function modelTensors(plans: TensorPlan[], variant: string | undefined, delta: DeltaScale | undefined, dtype: DType): TensorData[] {
  return plans.map((plan) => {
    const values = baseValues(plan);
    if (variant && delta) {
      const noise = gaussian(new Rng(seedOf(`${variant}:${plan.name}`)), values.length, delta(plan));
      for (let i = 0; i < values.length; i++) values[i] += noise[i];
    }
    return { name: plan.name, dtype, shape: plan.shape, data: encodeFromFloat32(dtype, values) };
  });
}

function llamaConfig(): object {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: HIDDEN,
    intermediate_size: INTERMEDIATE,
    num_hidden_layers: LAYERS,
    num_attention_heads: HEADS,
    num_key_value_heads: HEADS,
    head_dim: HIDDEN / HEADS,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    vocab_size: VOCAB,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
  };
}

function card(frontMatter: Record<string, string | string[]>, title: string, body: string): string {
  const lines = ['---'];
  for (const [key, value] of Object.entries(frontMatter)) {
    if (Array.isArray(value)) lines.push(`${key}:`, ...value.map((item) => `- ${item}`));
    else lines.push(`${key}: ${value}`);
  }
  lines.push('---', '', `# ${title}`, '', body, '');
  return lines.join('\n');
}

function loraTensors(): TensorData[] {
  const tensors: TensorData[] = [];
  for (let layer = 0; layer < LAYERS; layer++) {
    for (const module of ['q_proj', 'v_proj']) {
      const prefix = `base_model.model.model.layers.${layer}.self_attn.${module}`;
      // A as initialised (random), B as trained away from its zero start; larger in late layers.
      const a = gaussian(new Rng(seedOf(`lora-A:${prefix}`)), LORA_RANK * HIDDEN, 1 / Math.sqrt(HIDDEN));
      const b = gaussian(new Rng(seedOf(`lora-B:${prefix}`)), HIDDEN * LORA_RANK, 0.002 * (1 + layer));
      tensors.push({ name: `${prefix}.lora_A.weight`, dtype: 'F32', shape: [LORA_RANK, HIDDEN], data: encodeFromFloat32('F32', a) });
      tensors.push({ name: `${prefix}.lora_B.weight`, dtype: 'F32', shape: [HIDDEN, LORA_RANK], data: encodeFromFloat32('F32', b) });
    }
  }
  return tensors;
}

/**
 * A shard size limit that makes the writer's greedy split produce exactly two shards: the first
 * prefix of tensors holding at least half the bytes fills shard one; the rest fits in shard two.
 */
function twoShardLimit(tensors: TensorData[]): number {
  const total = tensors.reduce((sum, tensor) => sum + tensor.data.byteLength, 0);
  let prefix = 0;
  for (const tensor of tensors) {
    prefix += tensor.data.byteLength;
    if (prefix * 2 >= total) return prefix;
  }
  return total;
}

interface DemoMarker {
  format: number;
  files: string[];
}

function readMarker(dir: string): DemoMarker | undefined {
  try {
    const marker = JSON.parse(fs.readFileSync(path.join(dir, DEMO_MARKER), 'utf8')) as DemoMarker;
    return Array.isArray(marker.files) ? marker : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the files an earlier run listed in its marker (and folders left empty), nothing else. */
function removeEarlierDemo(dir: string, marker: DemoMarker): void {
  const root = path.resolve(dir);
  const folders = new Set<string>();
  for (const relative of marker.files) {
    const file = path.resolve(root, relative);
    if (!file.startsWith(root + path.sep)) continue; // never outside the demo folder
    fs.rmSync(file, { force: true });
    for (let parent = path.dirname(file); parent !== root; parent = path.dirname(parent)) folders.add(parent);
  }
  for (const folder of [...folders].sort((a, b) => b.length - a.length)) {
    if (fs.existsSync(folder) && fs.readdirSync(folder).length === 0) fs.rmdirSync(folder);
  }
  fs.rmSync(path.join(root, DEMO_MARKER), { force: true });
}

export interface DemoWorkspace {
  dir: string;
  /** Paths relative to dir of every file written. */
  files: string[];
}

/**
 * Writes the demo into `dir` (created if missing). A folder holding anything else is refused,
 * unless it is an earlier demo (it has DEMO_MARKER): then the files that demo wrote are replaced
 * and any file a person added is left alone.
 */
export async function writeDemoWorkspace(dir: string): Promise<DemoWorkspace> {
  const root = path.resolve(dir);
  if (fs.existsSync(root)) {
    if (!fs.statSync(root).isDirectory()) throw new Error(`${root} is a file; give a folder for the demo workspace.`);
    const marker = readMarker(root);
    if (marker) removeEarlierDemo(root, marker);
    else if (fs.readdirSync(root).length > 0) {
      throw new Error(`${root} is not empty and was not made by the demo (no ${DEMO_MARKER} in it). ` +
        'Choose a new or empty folder, so that no file of yours is overwritten.');
    }
  }
  fs.mkdirSync(root, { recursive: true });
  const written: string[] = [];
  // The marker goes first, so an interrupted run can still be cleaned up by the next one.
  const saveMarker = () => fs.writeFileSync(path.join(root, DEMO_MARKER), JSON.stringify({ format: DEMO_FORMAT, files: written } satisfies DemoMarker, null, 2) + '\n');
  saveMarker();
  const writeText = (relative: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, relative)), { recursive: true });
    fs.writeFileSync(path.join(root, relative), text);
    written.push(relative);
    saveMarker();
  };
  const writeJson = (relative: string, value: object) => writeText(relative, JSON.stringify(value, null, 2) + '\n');
  const metadata = { format: 'pt' };
  const plans = llamaTensors();

  // The base model.
  writeJson('models/tiny-base/config.json', llamaConfig());
  writeText('models/tiny-base/README.md', card(
    { license: 'apache-2.0', library_name: 'transformers', pipeline_tag: 'text-generation', tags: ['llama', 'demo'] },
    'tiny-base',
    `A ${LAYERS}-layer llama-style demo model (hidden size ${HIDDEN}, bf16) with random weights. Base of the other demo models.`,
  ));
  written.push('models/tiny-base/model.safetensors');
  saveMarker();
  await writeSafetensors(path.join(root, 'models/tiny-base/model.safetensors'), modelTensors(plans, undefined, undefined, 'BF16'), metadata);

  // Fine-tune 1: attention, late layers; one file.
  writeJson('models/tiny-chat/config.json', llamaConfig());
  writeText('models/tiny-chat/README.md', card(
    { base_model: `${ORG}/tiny-base`, base_model_relation: 'finetune', license: 'apache-2.0', library_name: 'transformers', tags: ['chat', 'demo'] },
    'tiny-chat',
    'Fine-tuned from tiny-base. Mostly changes attention (q/k/v/o) in the last three layers.',
  ));
  written.push('models/tiny-chat/model.safetensors');
  saveMarker();
  await writeSafetensors(path.join(root, 'models/tiny-chat/model.safetensors'), modelTensors(plans, 'chat', chatDelta, 'BF16'), metadata);

  // Fine-tune 2: MLP, early layers; sharded into two files with an index.
  writeJson('models/tiny-code/config.json', llamaConfig());
  writeText('models/tiny-code/README.md', card(
    { base_model: `${ORG}/tiny-base`, base_model_relation: 'finetune', license: 'apache-2.0', library_name: 'transformers', tags: ['code', 'demo'] },
    'tiny-code',
    'Fine-tuned from tiny-base. Mostly changes the MLP (gate/up/down) in the first three layers. Stored as two shards.',
  ));
  const codeTensors = modelTensors(plans, 'code', codeDelta, 'BF16');
  const sharded = await writeShardedSafetensors(path.join(root, 'models/tiny-code'), codeTensors, { maxShardBytes: twoShardLimit(codeTensors), metadata });
  for (const file of [...sharded.files, sharded.indexFile]) written.push(path.relative(root, file));
  saveMarker();

  // A LoRA adapter of the base, in PEFT's layout.
  writeJson('adapters/tiny-chat-lora/adapter_config.json', {
    base_model_name_or_path: `${ORG}/tiny-base`,
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: LORA_RANK,
    lora_alpha: LORA_ALPHA,
    lora_dropout: 0,
    target_modules: ['q_proj', 'v_proj'],
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
  });
  writeText('adapters/tiny-chat-lora/README.md', card(
    { base_model: `${ORG}/tiny-base`, library_name: 'peft', license: 'apache-2.0', tags: ['lora', 'demo'] },
    'tiny-chat-lora',
    `A LoRA adapter (r ${LORA_RANK}, alpha ${LORA_ALPHA}) on q_proj and v_proj of every layer of tiny-base.`,
  ));
  written.push('adapters/tiny-chat-lora/adapter_model.safetensors');
  saveMarker();
  await writeSafetensors(path.join(root, 'adapters/tiny-chat-lora/adapter_model.safetensors'), loraTensors(), metadata);

  // A recipe to try a merge at once: its CodeLens offers Plan and Run Merge.
  writeText('recipes/chat-code-ties.graft.yml', [
    '# TIES merge of the two demo fine-tunes over their base. Open this file in VS Code with Graft:',
    '# "Plan" and "Run Merge" appear above it; the output goes to recipes/chat-code-ties/.',
    '# From a terminal: graft merge recipes/chat-code-ties.graft.yml --out recipes/chat-code-ties',
    'merge_method: ties',
    'base_model: ../models/tiny-base',
    'models:',
    '  - model: ../models/tiny-chat',
    '    parameters:',
    '      weight: 0.5',
    '      density: 0.5',
    '  - model: ../models/tiny-code',
    '    parameters:',
    '      weight: 0.5',
    '      density: 0.5',
    'dtype: float32',
    'out_dtype: bfloat16',
    '',
  ].join('\n'));

  writeText('ABOUT-THIS-DEMO.md', [
    '# Graft demo workspace',
    '',
    'Generated by `npm run demo` (test/support/demo-workspace.ts); running it again rewrites the files it made.',
    '',
    '- `models/tiny-base`: the base model.',
    '- `models/tiny-chat`: fine-tune that changes attention in the late layers.',
    '- `models/tiny-code`: fine-tune that changes the MLP in the early layers (two shards and an index).',
    '- `adapters/tiny-chat-lora`: a LoRA adapter of the base.',
    '- `recipes/chat-code-ties.graft.yml`: a merge recipe (TIES of tiny-chat and tiny-code over tiny-base).',
    '',
    'Try: the Graft view in the activity bar (lineage), *Graft: Compare Checkpoints...* on tiny-chat and',
    'tiny-code (heatmap), and opening any `.safetensors` file (inspector).',
    'Merge: open the recipe and click "Run Merge" above it, run *Graft: Merge Models...*, right-click the',
    'adapter in the Lineage view and choose "Merge Adapter into Base", or select layers in the compare',
    'heatmap (click their labels) and choose "Swap These Layers from B".',
    '',
  ].join('\n'));
  return { dir: root, files: [...written] };
}
