// Weighted average of the models' tensors (mergekit's `linear`): sum w_i x_i, divided by sum w_i
// when normalize (the default). No base: every input is averaged.
import { weightedSumBf16Resident, weightedSumResident } from '../../kernels/merge';
import { bool, f32, NORMALIZE, num, WEIGHT } from './shared';
import type { MergeMethod } from './types';

export const linear: MergeMethod = {
  name: 'linear',
  summary: 'Weighted average of the models (model soup). Use for fine-tunes of the same base that should count equally or by weight.',
  reference: 'https://arxiv.org/abs/2203.05482',
  base: 'none',
  minModels: 1,
  parameters: [NORMALIZE(true)],
  tensorParameters: [WEIGHT],
  check(t) {
    if (!bool(t.globals, 'normalize')) return undefined;
    let sum = 0;
    for (const p of t.perModel) sum = f32(sum + f32(num(p, 'weight')));
    return sum === 0 ? 'the weights sum to 0, so they cannot be normalised; change a weight or set normalize: false.' : undefined;
  },
  kernel: {
    readsBf16: true,
    apply(t, _found, chunk, out) {
      const weights = t.perModel.map((p) => f32(num(p, 'weight')));
      let divisor = 0;
      for (const w of weights) divisor = f32(divisor + w);
      const normalize = bool(t.globals, 'normalize');
      const bits = chunk.bf16Models;
      // Stored bf16 models are summed from their bits (`models` would decode them first).
      if (chunk.work && bits?.every((b) => b !== undefined) && weightedSumBf16Resident(chunk.work.kernels, bits as Uint16Array[], weights, normalize, divisor, out)) return;
      const { models, count } = chunk;
      if (chunk.work && weightedSumResident(chunk.work.kernels, models, weights, normalize, divisor, out)) return;
      for (let e = 0; e < count; e++) {
        let s = 0;
        for (let i = 0; i < models.length; i++) s = f32(s + f32(weights[i] * models[i][e]));
        out[e] = normalize ? f32(s / divisor) : s;
      }
    },
  },
};
