// Copies one model's tensor, optionally scaled: with slices, the building block of layer stacking
// and layer swapping (each output layer comes from one source layer).
import { f32 } from './shared';
import type { MergeMethod } from './types';

export const passthrough: MergeMethod = {
  name: 'passthrough',
  summary: 'Copies tensors from one model per slice: layer stacking, layer swapping, or merging a LoRA (model+adapter) into its base.',
  base: 'none',
  minModels: 1,
  maxModels: 1,
  parameters: [],
  tensorParameters: [{ name: 'scale', kind: 'number', doc: 'Multiply the copied tensor by this factor.' }],
  kernel: {
    apply(t, _found, chunk, out) {
      const x = chunk.models[0];
      const scale = t.perModel[0].scale;
      if (typeof scale === 'number') {
        const s = f32(scale);
        for (let e = 0; e < chunk.count; e++) out[e] = f32(x[e] * s);
      } else {
        out.set(x.subarray(0, chunk.count));
      }
    },
  },
};
