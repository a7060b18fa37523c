// NearSwap: where the secondary model is within t of the base, take it; further away, move toward
// it only by t / |base - x| (mergekit's `nearswap`).
import { f32, num } from './shared';
import type { MergeMethod } from './types';

export const nearswap: MergeMethod = {
  name: 'nearswap',
  summary: 'Takes the other model where it is close to the base (within t) and stays near the base where they differ: a conservative interpolation.',
  reference: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  parameters: [{ name: 't', kind: 'number', required: true, doc: 'Similarity threshold: the distance below which the other model is taken whole.' }],
  tensorParameters: [],
  check: (t) => (num(t.globals, 't') <= 0 ? `t must be greater than 0, not ${num(t.globals, 't')}.` : undefined),
  kernel: {
    apply(t, _found, chunk, out) {
      const v0 = chunk.base!;
      const v1 = chunk.models[0];
      const threshold = f32(num(t.globals, 't'));
      for (let e = 0; e < chunk.count; e++) {
        let w = f32(threshold / f32(Math.abs(f32(v0[e] - v1[e]))));
        if (!Number.isFinite(w)) w = 1;
        w = Math.min(1, Math.max(0, w));
        out[e] = f32(f32(w * v1[e]) + f32(f32(1 - w) * v0[e]));
      }
    },
  },
};
