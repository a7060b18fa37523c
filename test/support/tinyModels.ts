// Small llama-like checkpoints for merge tests and benchmarks, written with Graft's own writer:
// a seeded base and fine-tunes of it (base + heavy-tailed updates), with config.json.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { prng } from '../../src/core/sampling';
import { encodeFromFloat32, writeSafetensors, writeShardedSafetensors, type DType, type TensorData } from '../../src/core/safetensors';

export interface TinyModelSpec {
  layers: number;
  hidden: number;
  intermediate: number;
  vocab: number;
  dtype: DType;
}

export const TINY: TinyModelSpec = { layers: 4, hidden: 32, intermediate: 48, vocab: 64, dtype: 'BF16' };

/** Tensor names and shapes of a llama-like model, in the order transformers saves them. */
export function tensorShapes(spec: TinyModelSpec): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [{ name: 'model.embed_tokens.weight', shape: [spec.vocab, spec.hidden] }];
  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      { name: `${p}.input_layernorm.weight`, shape: [spec.hidden] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [spec.hidden, spec.hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [spec.hidden / 2, spec.hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [spec.hidden / 2, spec.hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [spec.hidden, spec.hidden] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [spec.hidden] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [spec.intermediate, spec.hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [spec.intermediate, spec.hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [spec.hidden, spec.intermediate] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [spec.hidden] }, { name: 'lm_head.weight', shape: [spec.vocab, spec.hidden] });
  return out;
}

/** A deterministic generator in [0, 1): the sampler's mulberry32. */
export const rng = prng;

export function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
}

/** Float32 values of every tensor: the base from `seed`, or base + scale x heavy-tailed noise. */
export function tinyValues(spec: TinyModelSpec, seed: number, from?: Map<string, Float32Array>, scale = 0.01): Map<string, Float32Array> {
  const random = rng(seed);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of tensorShapes(spec)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const parent = from?.get(name);
    for (let i = 0; i < n; i++) {
      if (parent) {
        // Student-t-like updates: most small, a few large, as fine-tuning leaves them.
        const g = normal(random);
        const tail = 1 / Math.max(0.15, Math.abs(normal(random)));
        v[i] = parent[i] + scale * g * tail * 0.3;
      } else {
        v[i] = name.endsWith('norm.weight') ? 1 + 0.05 * normal(random) : 0.05 * normal(random);
      }
    }
    out.set(name, v);
  }
  return out;
}

export async function writeTinyModel(dir: string, spec: TinyModelSpec, values: Map<string, Float32Array>, options: { shards?: number } = {}): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const tensors: TensorData[] = tensorShapes(spec).map(({ name, shape }) => ({ name, dtype: spec.dtype, shape, data: encodeFromFloat32(spec.dtype, values.get(name)!) }));
  if (options.shards && options.shards > 1) {
    const total = tensors.reduce((n, t) => n + t.data.byteLength, 0);
    await writeShardedSafetensors(dir, tensors, { maxShardBytes: Math.ceil(total / options.shards), metadata: { format: 'pt' } });
  } else {
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  }
  await writeTinyConfig(dir, spec);
}

/** The config.json of a llama-like model of `spec`. */
export async function writeTinyConfig(dir: string, spec: TinyModelSpec): Promise<void> {
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: spec.hidden, intermediate_size: spec.intermediate,
    num_hidden_layers: spec.layers, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: spec.vocab,
    torch_dtype: spec.dtype === 'BF16' ? 'bfloat16' : spec.dtype === 'F16' ? 'float16' : 'float32',
  };
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
}

/** Writes a base and `count` fine-tunes under `root` (base/, ft1/, ft2/, ...) and returns their folders. */
export async function writeTinyFamily(root: string, spec: TinyModelSpec = TINY, count = 3, seed = 1): Promise<{ base: string; finetunes: string[] }> {
  const baseValues = tinyValues(spec, seed);
  const base = path.join(root, 'base');
  await writeTinyModel(base, spec, baseValues);
  const finetunes: string[] = [];
  for (let i = 1; i <= count; i++) {
    const dir = path.join(root, `ft${i}`);
    await writeTinyModel(dir, spec, tinyValues(spec, seed * 100 + i, baseValues), { shards: i === 2 ? 3 : 1 });
    finetunes.push(dir);
  }
  return { base, finetunes };
}
