// PCB (Parameter Competition Balancing): each task vector entry gets a score from intra-balancing
// (softmax over the tensor of N * its normalised square) times inter-balancing (sum over models of
// the softmax of its normalised product with the other task vectors); the top `density` scores per
// model are kept, and the merged delta is the score-weighted sum of the task vectors, scaled by
// `weight`. Every whole-tensor quantity (norms, softmax denominators, score total) is an exact sum.
import { ExactSums, SUM_BLOCK } from '../exact';
import { CutCursor, keyOf, rankCutStages, type RankCut } from '../select';
import { deltasOf, f32, num } from './shared';
import type { ChunkData, Found, MergeMethod, Stage, TensorView } from './types';

function taskVectors(chunk: ChunkData): Float32Array[] {
  return deltasOf(chunk, 'pcb');
}

/** Index of the unordered pair (i <= j) in the upper triangle, row-major. */
function pair(n: number, i: number, j: number): number {
  if (i > j) [i, j] = [j, i];
  return i * n - (i * (i - 1)) / 2 + (j - i);
}

/** Sums over blocks of f(e) for each quantity q, added exactly. */
function blockSums(count: number, quantities: number, f: (q: number, e: number) => number): bigint[] {
  const sums = new ExactSums(quantities);
  for (let from = 0; from < count; from += SUM_BLOCK) {
    const to = Math.min(count, from + SUM_BLOCK);
    for (let q = 0; q < quantities; q++) {
      let s = 0;
      for (let e = from; e < to; e++) s += f(q, e);
      sums.add(q, s);
    }
  }
  return sums.totals;
}

function pairsOf(n: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) out.push([i, j]);
  return out;
}

/** ||d_i * d_j|| for every pair: the normalisers of the products. */
const normsStage: Stage<bigint[]> = {
  id: 'norms',
  map(t, _found, chunk) {
    const ds = taskVectors(chunk);
    const pairs = pairsOf(ds.length);
    return blockSums(chunk.count, pairs.length, (q, e) => {
      const [i, j] = pairs[q];
      const p = ds[i][e] * ds[j][e];
      return p * p;
    });
  },
  merge: ExactSums.merge,
  finalize: (p) => ExactSums.values(p).map((s) => Math.max(Math.sqrt(s), 1e-12)),
};

/** Softmax denominators: intra per model, then inter per pair. */
const softmaxStage: Stage<bigint[]> = {
  id: 'softmax',
  map(t, found, chunk) {
    const ds = taskVectors(chunk);
    const n = ds.length;
    const norms = found.norms as number[];
    const pairs = pairsOf(n);
    return blockSums(chunk.count, n + pairs.length, (q, e) => {
      if (q < n) return Math.exp((n * ds[q][e] * ds[q][e]) / norms[pair(n, q, q)]);
      const [i, j] = pairs[q - n];
      return Math.exp((ds[i][e] * ds[j][e]) / norms[q - n]);
    });
  },
  merge: ExactSums.merge,
  finalize: (p) => ExactSums.values(p),
};

/** The balancing scores b_i of every element of a chunk. */
function scores(t: TensorView, found: Found, ds: Float32Array[], count: number): Float64Array[] {
  const n = ds.length;
  const norms = found.norms as number[];
  const z = found.softmax as number[];
  return ds.map((di, i) => {
    const b = new Float64Array(count);
    for (let e = 0; e < count; e++) {
      const intra = Math.exp((n * di[e] * di[e]) / norms[pair(n, i, i)]) / z[i];
      let inter = 0;
      for (let j = 0; j < n; j++) {
        const q = pair(n, i, j);
        inter += Math.exp((di[e] * ds[j][e]) / norms[q]) / z[n + q];
      }
      b[e] = intra * inter;
    }
    return b;
  });
}

function scoreKeys(b: Float64Array[]): Uint32Array[] {
  return b.map((bi) => {
    const keys = new Uint32Array(bi.length);
    for (let e = 0; e < bi.length; e++) keys[e] = keyOf(bi[e]);
    return keys;
  });
}

const keepStages = rankCutStages(
  'keep',
  (t, found, chunk) => scoreKeys(scores(t, found, taskVectors(chunk), chunk.count)),
  (t) => Array.from({ length: t.models }, (_, i) => ({ key: i, rank: Math.floor(t.numel * num(t.globals, 'density')), order: 'desc' as const })),
);

/** Scores with the entries outside each model's top-k zeroed. */
function keptScores(t: TensorView, found: Found, ds: Float32Array[], count: number): Float64Array[] {
  const b = scores(t, found, ds, count);
  const cuts = found.keep as RankCut[];
  b.forEach((bi, i) => {
    const cursor = new CutCursor(cuts[i]);
    for (let e = 0; e < count; e++) if (!cursor.takes(keyOf(bi[e]))) bi[e] = 0;
  });
  return b;
}

const totalStage: Stage<bigint[]> = {
  id: 'total',
  map(t, found, chunk: ChunkData) {
    const b = keptScores(t, found, taskVectors(chunk), chunk.count);
    return blockSums(chunk.count, 1, (_q, e) => b.reduce((s, bi) => s + bi[e], 0));
  },
  merge: ExactSums.merge,
  finalize: (p) => ExactSums.values(p)[0],
};

export const pcb: MergeMethod = {
  name: 'pcb',
  summary: 'Parameter Competition Balancing: scores each entry by its importance within and across task vectors, keeps the top density and weights by score.',
  reference: 'https://arxiv.org/abs/2410.02396',
  base: 'required',
  minModels: 1,
  parameters: [
    { name: 'density', kind: 'number', required: true, min: 0, max: 1, doc: 'Share of entries kept per task vector, by balancing score.' },
    { name: 'weight', kind: 'number', default: 1, doc: 'Scale of the merged task vector added to the base.' },
  ],
  tensorParameters: [],
  kernel: {
    nextStage(t, found) {
      if (!found.norms) return normsStage as Stage;
      if (!found.softmax) return softmaxStage as Stage;
      const stage = keepStages(t, found);
      if (stage) return stage;
      return found.total === undefined ? (totalStage as Stage) : null;
    },
    apply(t, found, chunk, out) {
      const ds = taskVectors(chunk);
      const b = keptScores(t, found, ds, chunk.count);
      const total = found.total as number;
      const weight = num(t.globals, 'weight');
      const base = chunk.base!;
      for (let e = 0; e < chunk.count; e++) {
        let delta = 0;
        if (total !== 0) for (let i = 0; i < ds.length; i++) delta += ds[i][e] * (b[i][e] / total);
        out[e] = f32(base[e] + weight * delta);
      }
    },
  },
};
