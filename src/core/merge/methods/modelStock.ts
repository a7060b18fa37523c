// Model Stock: the average of the fine-tunes pulled toward the base by how much their task vectors
// agree: t = N cos / (1 + (N - 1) cos), cos the mean pairwise cosine of the offsets x_i - base
// (per tensor, or per row with filter_wise), result t * mean(x) + (1 - t) * base.
import { bool, f32, gramStage } from './shared';
import type { ChunkData, MergeMethod, TensorView } from './types';

const offsetsGram = gramStage('gram', 'deltas');

/** The Model Stock ratio from the offsets' Gram matrix. */
export function modelStockT(gram: number[][]): number {
  const n = gram.length;
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const normProduct = Math.sqrt(gram[i][i]) * Math.sqrt(gram[j][j]);
      sum += Math.min(1, Math.max(-1, gram[i][j] / Math.max(normProduct, 1e-6)));
      pairs++;
    }
  }
  const cos = sum / pairs;
  return (n * cos) / (1 + (n - 1) * cos);
}

function applyRatio(chunk: ChunkData, t: number, from: number, to: number, out: Float32Array): void {
  const { models, base } = chunk;
  const tt = f32(t);
  const rest = f32(1 - tt);
  const n = models.length;
  for (let e = from; e < to; e++) {
    let s = 0;
    for (let i = 0; i < n; i++) s = f32(s + models[i][e]);
    const avg = f32(s / n);
    out[e] = f32(f32(tt * avg) + f32(rest * base![e]));
  }
}

function rowGram(chunk: ChunkData, from: number, to: number): number[][] {
  const n = chunk.models.length;
  const gram = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const base = chunk.base!;
  for (let e = from; e < to; e++) {
    for (let i = 0; i < n; i++) {
      const di = f32(chunk.models[i][e] - base[e]);
      for (let j = i; j < n; j++) gram[i][j] += di * f32(chunk.models[j][e] - base[e]);
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) gram[i][j] = gram[j][i];
  return gram;
}

export const modelStock: MergeMethod = {
  name: 'model_stock',
  summary: 'Averages fine-tunes and moves the average toward the base by their agreement (cosine of task vectors); needs a base and two or more fine-tunes.',
  reference: 'https://arxiv.org/abs/2403.19522',
  base: 'required',
  minModels: 2,
  parameters: [{ name: 'filter_wise', kind: 'boolean', default: false, doc: 'Compute the ratio per row instead of per tensor.' }],
  tensorParameters: [],
  rowWise: (globals) => globals.filter_wise === true,
  kernel: {
    nextStage: (t: TensorView, found) => (bool(t.globals, 'filter_wise') || found.gram ? null : offsetsGram),
    apply(t, found, chunk, out) {
      if (!bool(t.globals, 'filter_wise')) {
        applyRatio(chunk, modelStockT(found.gram as number[][]), 0, chunk.count, out);
        return;
      }
      for (let from = 0; from < chunk.count; from += t.rowLength) {
        const to = from + t.rowLength;
        applyRatio(chunk, modelStockT(rowGram(chunk, from, to)), from, to, out);
      }
    },
  },
};
