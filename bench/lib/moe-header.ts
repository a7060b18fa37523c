// The 10,000-tensor checkpoint header the inspector and header-parsing benchmarks use: 294
// llama/MoE-style layers of 34 tensors (attention with biases and q/k norms, a router, a shared
// expert and 6 experts) plus embeddings, final norm, head and rotary frequencies. Small
// dimensions: the header is what matters, the file stays a few MB.
import type { DType } from '../../src/core/safetensors';

export const LAYERS = 294;
const HIDDEN = 16;
const KV = 4;
const EXPERTS = 6;
const EXPERT_FF = 8;
const SHARED_FF = 32;
const VOCAB = 256;

export interface Spec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** 34 tensors per layer: attention with biases and q/k norms, a router, a shared expert and 6 experts. */
function layerSpecs(layer: number): Spec[] {
  const p = `model.layers.${layer}`;
  const bf16 = (name: string, ...shape: number[]): Spec => ({ name: `${p}.${name}`, dtype: 'BF16', shape });
  const f32 = (name: string, ...shape: number[]): Spec => ({ name: `${p}.${name}`, dtype: 'F32', shape });
  const specs = [
    bf16('self_attn.q_proj.weight', HIDDEN, HIDDEN), bf16('self_attn.q_proj.bias', HIDDEN),
    bf16('self_attn.k_proj.weight', KV, HIDDEN), bf16('self_attn.k_proj.bias', KV),
    bf16('self_attn.v_proj.weight', KV, HIDDEN), bf16('self_attn.v_proj.bias', KV),
    bf16('self_attn.o_proj.weight', HIDDEN, HIDDEN),
    f32('self_attn.q_norm.weight', KV), f32('self_attn.k_norm.weight', KV),
    f32('input_layernorm.weight', HIDDEN), f32('post_attention_layernorm.weight', HIDDEN),
    bf16('mlp.gate.weight', EXPERTS, HIDDEN),
    bf16('mlp.shared_expert.gate_proj.weight', SHARED_FF, HIDDEN), bf16('mlp.shared_expert.up_proj.weight', SHARED_FF, HIDDEN),
    bf16('mlp.shared_expert.down_proj.weight', HIDDEN, SHARED_FF), bf16('mlp.shared_expert_gate.weight', 1, HIDDEN),
  ];
  for (let e = 0; e < EXPERTS; e++) {
    specs.push(
      bf16(`mlp.experts.${e}.gate_proj.weight`, EXPERT_FF, HIDDEN),
      bf16(`mlp.experts.${e}.up_proj.weight`, EXPERT_FF, HIDDEN),
      bf16(`mlp.experts.${e}.down_proj.weight`, HIDDEN, EXPERT_FF),
    );
  }
  return specs;
}

/** Every tensor of the header, in file order. */
export function moeHeaderSpecs(): Spec[] {
  const specs: Spec[] = [
    { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [VOCAB, HIDDEN] },
    { name: 'model.norm.weight', dtype: 'F32', shape: [HIDDEN] },
    { name: 'lm_head.weight', dtype: 'BF16', shape: [VOCAB, HIDDEN] },
    { name: 'model.rotary_emb.inv_freq', dtype: 'F32', shape: [KV / 2] },
  ];
  for (let layer = 0; layer < LAYERS; layer++) specs.push(...layerSpecs(layer));
  return specs;
}
