import assert from 'node:assert/strict';
import test from 'node:test';
import { NON_LAYER_GROUP, parseTensorName } from '../../src/core/tensors/names';

type Expected = [name: string, group: string, layer: number | null, module: string];

function check(cases: Expected[]): void {
  for (const [name, group, layer, module] of cases) {
    assert.deepEqual(parseTensorName(name), { group, layer, module }, name);
  }
}

test('llama, mistral and qwen2 decoder layers', () => {
  check([
    ['model.layers.0.self_attn.q_proj.weight', 'layers', 0, 'self_attn.q_proj'],
    ['model.layers.31.self_attn.o_proj.weight', 'layers', 31, 'self_attn.o_proj'],
    ['model.layers.7.mlp.down_proj.weight', 'layers', 7, 'mlp.down_proj'],
    ['model.layers.7.input_layernorm.weight', 'layers', 7, 'input_layernorm'],
    ['model.layers.7.post_attention_layernorm.weight', 'layers', 7, 'post_attention_layernorm'],
    // qwen2 has q/k/v biases: a column of their own beside the weights.
    ['model.layers.3.self_attn.k_proj.bias', 'layers', 3, 'self_attn.k_proj.bias'],
    ['model.layers.2.block_sparse_moe.experts.5.w1.weight', 'layers', 2, 'block_sparse_moe.experts.5.w1'],
    ['model.embed_tokens.weight', NON_LAYER_GROUP, null, 'embed_tokens'],
    ['model.norm.weight', NON_LAYER_GROUP, null, 'norm'],
    ['lm_head.weight', NON_LAYER_GROUP, null, 'lm_head'],
  ]);
});

test('gpt2 and qwen1 (transformer.h.N)', () => {
  check([
    ['transformer.h.0.attn.c_attn.weight', 'layers', 0, 'attn.c_attn'],
    ['transformer.h.0.attn.c_attn.bias', 'layers', 0, 'attn.c_attn.bias'],
    ['transformer.h.11.mlp.c_proj.weight', 'layers', 11, 'mlp.c_proj'],
    ['transformer.h.5.ln_1.weight', 'layers', 5, 'ln_1'],
    // gpt2 files written by older transformers have no "transformer." prefix.
    ['h.5.ln_2.bias', 'layers', 5, 'ln_2.bias'],
    ['transformer.wte.weight', NON_LAYER_GROUP, null, 'wte'],
    ['transformer.wpe.weight', NON_LAYER_GROUP, null, 'wpe'],
    ['transformer.ln_f.bias', NON_LAYER_GROUP, null, 'ln_f.bias'],
  ]);
});

test('gpt-neox', () => {
  check([
    ['gpt_neox.layers.4.attention.query_key_value.weight', 'layers', 4, 'attention.query_key_value'],
    ['gpt_neox.layers.4.attention.dense.bias', 'layers', 4, 'attention.dense.bias'],
    ['gpt_neox.layers.4.mlp.dense_h_to_4h.weight', 'layers', 4, 'mlp.dense_h_to_4h'],
    ['gpt_neox.embed_in.weight', NON_LAYER_GROUP, null, 'embed_in'],
    ['gpt_neox.final_layer_norm.weight', NON_LAYER_GROUP, null, 'final_layer_norm'],
    ['embed_out.weight', NON_LAYER_GROUP, null, 'embed_out'],
  ]);
});

test('bert and vit encoders', () => {
  check([
    ['bert.encoder.layer.0.attention.self.query.weight', 'encoder', 0, 'attention.self.query'],
    ['bert.encoder.layer.1.attention.output.LayerNorm.bias', 'encoder', 1, 'attention.output.LayerNorm.bias'],
    ['bert.encoder.layer.1.intermediate.dense.weight', 'encoder', 1, 'intermediate.dense'],
    ['bert.embeddings.word_embeddings.weight', NON_LAYER_GROUP, null, 'embeddings.word_embeddings'],
    ['bert.pooler.dense.weight', NON_LAYER_GROUP, null, 'pooler.dense'],
    ['cls.predictions.transform.dense.weight', NON_LAYER_GROUP, null, 'cls.predictions.transform.dense'],
    ['vit.encoder.layer.11.attention.attention.query.weight', 'encoder', 11, 'attention.attention.query'],
    ['vit.encoder.layer.11.layernorm_before.weight', 'encoder', 11, 'layernorm_before'],
    ['vit.embeddings.patch_embeddings.projection.weight', NON_LAYER_GROUP, null, 'embeddings.patch_embeddings.projection'],
    ['classifier.weight', NON_LAYER_GROUP, null, 'classifier'],
  ]);
});

test('t5: encoder and decoder blocks are separate groups, sub-layers named by kind', () => {
  check([
    ['encoder.block.0.layer.0.SelfAttention.q.weight', 'encoder', 0, 'SelfAttention.q'],
    ['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'encoder', 0, 'SelfAttention.relative_attention_bias'],
    ['encoder.block.3.layer.0.layer_norm.weight', 'encoder', 3, 'SelfAttention.layer_norm'],
    ['encoder.block.3.layer.1.DenseReluDense.wi.weight', 'encoder', 3, 'DenseReluDense.wi'],
    ['encoder.block.3.layer.1.layer_norm.weight', 'encoder', 3, 'DenseReluDense.layer_norm'],
    ['decoder.block.3.layer.0.SelfAttention.k.weight', 'decoder', 3, 'SelfAttention.k'],
    ['decoder.block.3.layer.1.EncDecAttention.v.weight', 'decoder', 3, 'EncDecAttention.v'],
    ['decoder.block.3.layer.1.layer_norm.weight', 'decoder', 3, 'EncDecAttention.layer_norm'],
    ['decoder.block.3.layer.2.layer_norm.weight', 'decoder', 3, 'DenseReluDense.layer_norm'],
    ['shared.weight', NON_LAYER_GROUP, null, 'shared'],
    ['encoder.final_layer_norm.weight', NON_LAYER_GROUP, null, 'encoder.final_layer_norm'],
  ]);
});

test('bart and clip: several stacks named by their path', () => {
  check([
    ['model.encoder.layers.2.self_attn.q_proj.weight', 'encoder', 2, 'self_attn.q_proj'],
    ['model.decoder.layers.2.encoder_attn.q_proj.weight', 'decoder', 2, 'encoder_attn.q_proj'],
    ['text_model.encoder.layers.5.mlp.fc1.weight', 'text_model.encoder', 5, 'mlp.fc1'],
    ['vision_model.encoder.layers.5.mlp.fc1.weight', 'vision_model.encoder', 5, 'mlp.fc1'],
  ]);
});

test('diffusers unet and transformer blocks', () => {
  check([
    ['down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight', 'down_blocks', 1, 'attentions.0.transformer_blocks.0.attn1.to_q'],
    ['down_blocks.0.resnets.1.conv1.bias', 'down_blocks', 0, 'resnets.1.conv1.bias'],
    ['down_blocks.2.downsamplers.0.conv.weight', 'down_blocks', 2, 'downsamplers.0.conv'],
    ['mid_block.attentions.0.proj_in.weight', 'mid_block', 0, 'attentions.0.proj_in'],
    ['mid_block.resnets.1.norm1.weight', 'mid_block', 0, 'resnets.1.norm1'],
    ['up_blocks.3.resnets.2.conv_shortcut.weight', 'up_blocks', 3, 'resnets.2.conv_shortcut'],
    ['conv_in.weight', NON_LAYER_GROUP, null, 'conv_in'],
    ['time_embedding.linear_1.weight', NON_LAYER_GROUP, null, 'time_embedding.linear_1'],
    ['transformer_blocks.12.attn.to_k.weight', 'transformer_blocks', 12, 'attn.to_k'],
    ['transformer_blocks.12.ff.net.0.proj.weight', 'transformer_blocks', 12, 'ff.net.0.proj'],
    ['single_transformer_blocks.3.proj_mlp.weight', 'single_transformer_blocks', 3, 'proj_mlp'],
    ['model.diffusion_model.input_blocks.1.1.proj_in.weight', 'input_blocks', 1, '1.proj_in'],
  ]);
});

test('PEFT adapters: wrapper prefix stripped, lora_A and lora_B distinct', () => {
  check([
    ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'layers', 0, 'self_attn.q_proj.lora_A'],
    ['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', 'layers', 0, 'self_attn.q_proj.lora_B'],
    ['base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight', 'layers', 1, 'self_attn.v_proj.lora_A.default'],
    ['base_model.model.lm_head.weight', NON_LAYER_GROUP, null, 'lm_head'],
    // Wrappers from DDP and torch.compile.
    ['module.model.layers.2.mlp.up_proj.weight', 'layers', 2, 'mlp.up_proj'],
    ['_orig_mod.transformer.h.1.attn.c_proj.weight', 'layers', 1, 'attn.c_proj'],
  ]);
});

test('generic fallback: the first integer component is the layer', () => {
  check([
    ['features.3.weight', 'features', 3, 'weight'],
    ['backbone.stages.2.blocks.0.conv.weight', 'backbone.stages', 2, 'blocks.0.conv'],
    ['encoder.0.linear.bias', 'encoder', 0, 'linear.bias'],
    ['scale', NON_LAYER_GROUP, null, 'scale'],
    ['weight', NON_LAYER_GROUP, null, 'weight'],
    ['model.weight', NON_LAYER_GROUP, null, 'weight'],
  ]);
});

test('every (group, layer, module) of a llama checkpoint is one tensor', () => {
  const names: string[] = [];
  for (let layer = 0; layer < 4; layer++) {
    for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) {
      names.push(`model.layers.${layer}.${m}.weight`, `model.layers.${layer}.${m}.bias`);
    }
  }
  names.push('model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight');
  const cells = new Set(names.map((n) => JSON.stringify(parseTensorName(n))));
  assert.equal(cells.size, names.length);
});
