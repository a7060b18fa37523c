// Pieces several merge methods share: float32 arithmetic in torch's order, parameter declarations,
// exact Gram matrices of the inputs, and row-wise helpers.
import { subtractResident } from '../../kernels/merge';
import { ExactSums, SUM_BLOCK } from '../exact';
import type { ChunkData, Found, ParamDef, ParamValues, Stage, TensorView } from './types';

/** Rounds to float32: every elementary operation of a float32 torch kernel ends with this. */
export const f32 = Math.fround;

export const WEIGHT: ParamDef = { name: 'weight', kind: 'number', required: true, doc: 'How much of this model goes into the merge.' };
export const DENSITY: ParamDef = { name: 'density', kind: 'number', default: 1, min: 0, max: 1, doc: 'Share of each task vector kept (1 keeps all).' };
export const NORMALIZE = (byDefault: boolean): ParamDef => ({
  name: 'normalize', kind: 'boolean', default: byDefault, doc: 'Divide by the sum of the weights (of the models that agree, with sign election).',
});

export function num(values: ParamValues, name: string): number {
  const v = values[name];
  if (typeof v !== 'number') throw new Error(`Parameter "${name}" must be a number here, not ${JSON.stringify(v)}.`);
  return v;
}

export function bool(values: ParamValues, name: string): boolean {
  const v = values[name];
  if (typeof v !== 'boolean') throw new Error(`Parameter "${name}" must be true or false here, not ${JSON.stringify(v)}.`);
  return v;
}

/** torch.sign of a float32 value: -1, 0 or 1 (NaN stays NaN, so it never agrees with a sign). */
export function sign(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN;
}

/**
 * The vectors a Gram stage works on: the models' tensors, or their differences from the base
 * (task vectors), optionally followed by the base itself.
 */
export type GramSpace = 'models' | 'deltas';

/**
 * A stage computing the exact Gram matrix (all pairwise dot products, upper triangle row-major) of
 * the vectors of `space` over the whole tensor, stored in found[id] as number[][] (symmetric).
 */
export function gramStage(id: string, space: GramSpace): Stage<bigint[]> {
  return {
    id,
    map(t: TensorView, _found: Found, chunk: ChunkData): bigint[] {
      const vectors = space === 'deltas' ? deltasOf(chunk) : chunk.models;
      const n = vectors.length;
      const sums = new ExactSums((n * (n + 1)) / 2);
      for (let from = 0; from < chunk.count; from += SUM_BLOCK) {
        const to = Math.min(chunk.count, from + SUM_BLOCK);
        let q = 0;
        for (let i = 0; i < n; i++) {
          for (let j = i; j < n; j++) {
            const a = vectors[i];
            const b = vectors[j];
            let s = 0;
            for (let e = from; e < to; e++) s += a[e] * b[e];
            sums.add(q++, s);
          }
        }
      }
      return sums.totals;
    },
    merge: ExactSums.merge,
    finalize(p: bigint[], t: TensorView): number[][] {
      const values = ExactSums.values(p);
      const n = t.models;
      const gram = Array.from({ length: n }, () => new Array<number>(n).fill(0));
      let q = 0;
      for (let i = 0; i < n; i++) for (let j = i; j < n; j++) gram[i][j] = gram[j][i] = values[q++];
      return gram;
    },
  };
}

const scratchArrays = new Map<string, Float32Array>();

/**
 * A float32 work array for `tag`, reused across calls on this thread: kernels run one at a time per
 * worker, so per-chunk temporaries need not be allocated (and collected) for every sub-chunk. Two
 * temporaries alive at once need different tags. Contents are whatever was left: overwrite them.
 */
export function scratch(tag: string, count: number): Float32Array {
  let a = scratchArrays.get(tag);
  if (!a || a.length < count) {
    a = new Float32Array(count);
    scratchArrays.set(tag, a);
  }
  return a.length === count ? a : a.subarray(0, count);
}

/**
 * A float32 temporary of the chunk: in the kernels' memory beside the chunk's inputs when they
 * are there (so the kernels can run on it), else scratch(tag, count). Valid for this chunk only.
 */
export function temporary(chunk: ChunkData, tag: string, count = chunk.count): Float32Array {
  return chunk.work?.floats(count) ?? scratch(tag, count);
}

/** x_i - base for every model of the chunk, in float32 (the task vectors), in temporaries under `tag`. */
export function deltasOf(chunk: ChunkData, tag = 'deltas'): Float32Array[] {
  const base = chunk.base;
  if (!base) throw new Error('This method needs a base model.');
  const count = chunk.count;
  return chunk.models.map((x, i) => {
    const d = temporary(chunk, `${tag}:${i}`, count);
    if (chunk.work && subtractResident(chunk.work.kernels, x, base, d)) return d;
    for (let e = 0; e < count; e++) d[e] = x[e] - base[e];
    return d;
  });
}

/** p^T G q for coefficient vectors over the Gram matrix's vectors. */
export function gramDot(gram: number[][], p: number[], q: number[]): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    for (let j = 0; j < q.length; j++) s += p[i] * q[j] * gram[i][j];
  }
  return s;
}

/** Writes base + sum_i c_i v_i (v_i = models or their deltas), computed in float64, as float32. */
export function applyCombination(chunk: ChunkData, coefficients: number[], space: GramSpace, out: Float32Array): void {
  const { models, base, count } = chunk;
  const n = models.length;
  for (let e = 0; e < count; e++) {
    let s = 0;
    if (space === 'deltas') {
      const b = base![e];
      for (let i = 0; i < n; i++) s += coefficients[i] * f32(models[i][e] - b);
      out[e] = s + b;
    } else {
      for (let i = 0; i < n; i++) s += coefficients[i] * models[i][e];
      out[e] = s;
    }
  }
}
