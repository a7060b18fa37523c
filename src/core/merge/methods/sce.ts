// SCE (select, calculate, erase): keep the entries where the fine-tunes' task vectors vary most
// (select_topk of the non-zero-variance entries), weight each task vector by its mean squared
// magnitude, drop the entries against the elected sign, and average what remains.
import { ExactSums, SUM_BLOCK } from '../exact';
import { CutCursor, keyOf, rankCutStages, type RankCut } from '../select';
import { deltasOf, f32, num, sign } from './shared';
import type { ChunkData, Found, MergeMethod, Stage, TensorView } from './types';

function taskVectors(chunk: ChunkData): Float32Array[] {
  return deltasOf(chunk, 'sce');
}

/** Population variance across models of each element, as float32 magnitude keys. */
function varianceKeys(ds: Float32Array[], count: number): Uint32Array {
  const keys = new Uint32Array(count);
  const n = ds.length;
  for (let e = 0; e < count; e++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += ds[i][e];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (ds[i][e] - mean) ** 2;
    keys[e] = keyOf(v / n);
  }
  return keys;
}

const nonZeroStage: Stage<number> = {
  id: 'nonzero',
  map(_t, _found, chunk) {
    const keys = varianceKeys(taskVectors(chunk), chunk.count);
    let n = 0;
    for (let e = 0; e < keys.length; e++) if (keys[e] !== 0) n++;
    return n;
  },
  merge: (a, b) => a + b,
  finalize: (p) => p,
};

const selectStages = rankCutStages(
  'select',
  (_t, _found, chunk) => [varianceKeys(taskVectors(chunk), chunk.count)],
  (t, found) => [{ key: 0, rank: Math.floor(Math.abs(num(t.globals, 'select_topk')) * (found.nonzero as number)), order: 'desc' }],
);

/** Task vectors with the entries outside the selection zeroed. */
function selected(t: TensorView, found: Found, chunk: ChunkData): Float32Array[] {
  const ds = taskVectors(chunk);
  if (num(t.globals, 'select_topk') >= 1) return ds;
  const keys = varianceKeys(ds, chunk.count);
  const cursor = new CutCursor((found.select as RankCut[])[0]);
  for (let e = 0; e < chunk.count; e++) {
    if (!cursor.takes(keys[e])) for (const d of ds) d[e] = 0;
  }
  return ds;
}

const energyStage: Stage<bigint[]> = {
  id: 'energy',
  map(t, found, chunk) {
    const ds = selected(t, found, chunk);
    const sums = new ExactSums(ds.length);
    for (let from = 0; from < chunk.count; from += SUM_BLOCK) {
      const to = Math.min(chunk.count, from + SUM_BLOCK);
      ds.forEach((d, i) => {
        let s = 0;
        for (let e = from; e < to; e++) s += d[e] * d[e];
        sums.add(i, s);
      });
    }
    return sums.totals;
  },
  merge: ExactSums.merge,
  finalize(p, t) {
    const energy = ExactSums.values(p).map((s) => s / t.numel);
    const total = energy.reduce((a, b) => a + b, 0);
    return total === 0 ? energy.map(() => 1 / energy.length) : energy.map((x) => x / total);
  },
};

export const sce: MergeMethod = {
  name: 'sce',
  summary: 'Selects the entries where fine-tunes disagree most, weights each by its energy and erases minority signs: for merging several fine-tunes of one base.',
  reference: 'https://arxiv.org/abs/2408.07990',
  base: 'required',
  minModels: 1,
  parameters: [
    { name: 'select_topk', kind: 'number', default: 1, min: 0, max: 1, doc: 'Share of the highest-variance entries kept (1 keeps all).' },
    { name: 'int8_mask', kind: 'boolean', default: false, doc: 'Accepted for mergekit compatibility.' },
  ],
  tensorParameters: [],
  kernel: {
    nextStage(t, found) {
      if (num(t.globals, 'select_topk') < 1) {
        if (found.nonzero === undefined) return nonZeroStage as Stage;
        const stage = selectStages(t, found);
        if (stage) return stage;
      }
      return found.energy ? null : (energyStage as Stage);
    },
    apply(t, found, chunk, out) {
      const ds = selected(t, found, chunk);
      const weights = (found.energy as number[]).map(f32);
      const base = chunk.base!;
      for (let e = 0; e < chunk.count; e++) {
        let total = 0;
        for (const d of ds) total = f32(total + d[e]);
        const majority = total >= 0 ? 1 : -1;
        let mixed = 0;
        let divisor = 0;
        for (let i = 0; i < ds.length; i++) {
          if (sign(ds[i][e]) !== majority) continue;
          mixed = f32(mixed + f32(ds[i][e] * weights[i]));
          divisor = f32(divisor + weights[i]);
        }
        out[e] = f32(base[e] + f32(mixed / (divisor === 0 ? 1 : divisor)));
      }
    },
  },
};
