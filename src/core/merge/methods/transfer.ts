// Fine-tuning transfer: a fine-tune's diff vector moved onto a new version of its base,
// target_model + sum_i w_i (x_i - base_model), where base_model is the version each x_i was
// fine-tuned from and target_model the new base (as in "fine-tuning transfer" between model
// versions). Float32 in the same order as the expression.
import { f32, num } from './shared';
import type { MergeMethod } from './types';

export const diffTransfer: MergeMethod = {
  name: 'diff_transfer',
  summary: 'Moves fine-tunes onto a new base version: target_model + sum w_i (x_i - base_model). Use when the bases are linearly connected.',
  base: 'required',
  target: 'required',
  minModels: 1,
  parameters: [],
  tensorParameters: [{ name: 'weight', kind: 'number', default: 1, doc: 'Scale of this fine-tune\'s diff vector on the new base.' }],
  kernel: {
    apply(t, _found, chunk, out) {
      const base = chunk.base!;
      const target = chunk.target!;
      const weights = t.perModel.map((p) => f32(num(p, 'weight')));
      for (let e = 0; e < chunk.count; e++) {
        let mixed = 0;
        for (let i = 0; i < weights.length; i++) mixed = f32(mixed + f32(weights[i] * f32(chunk.models[i][e] - base[e])));
        out[e] = f32(target[e] + mixed);
      }
    },
  },
};
