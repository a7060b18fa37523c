// The task-vector family (mergekit's "generalized task arithmetic"): with d_i = x_i - base per
// tensor, each d_i is optionally sparsified (magnitude top-k, random DARE, breadcrumbs bands,
// DELLA's rank sampling), weighted, optionally sign-elected (TIES), summed and optionally
// normalised, then added to the base. Every operation is float32 in torch's order, so float32
// merges equal mergekit's and peft's bit for bit where their results are deterministic.
//
// `semantics: peft` switches ties / dare_ties / dare_linear to peft's merge_utils: the sign is
// elected on the unweighted pruned deltas (majority_sign_method total or frequency) and the kept
// weighted deltas are divided by the number of agreeing models; DARE rescales by 1/density.
import { scaleResident, taskCombineResident } from '../../kernels/merge';
import { ExactSums, SUM_BLOCK } from '../exact';
import { uniformAt } from '../random';
import { CutCursor, keepInCut, keyOf, magnitudeKeys, rankCutStages, type CutRequest, type RankCut } from '../select';
import { bool, deltasOf, DENSITY, f32, NORMALIZE, num, sign, WEIGHT } from './shared';
import type { ChunkData, Found, MergeMethod, ParamDef, ParamValues, Stage, TensorView } from './types';

type Sparsify = 'none' | 'magnitude' | 'random' | 'outliers' | 'della';
type Consensus = 'none' | 'sum';

interface Family {
  name: string;
  summary: string;
  reference?: string;
  consensus: Consensus;
  sparsify: Sparsify;
  normalize: boolean;
  rescale: boolean;
  /** Offers `semantics: peft` (peft's merge_utils variant of the method). */
  peft?: boolean;
}

const SEMANTICS: ParamDef = {
  name: 'semantics', kind: 'string', default: 'mergekit', choices: ['mergekit', 'peft'],
  doc: "mergekit (default) or peft: peft's merge_utils variant (sign elected on unweighted pruned deltas, average over agreeing models).",
};
const MAJORITY: ParamDef = {
  name: 'majority_sign_method', kind: 'string', default: 'total', choices: ['total', 'frequency'],
  doc: 'With semantics: peft, elect the sign by the sum of the deltas (total) or of their signs (frequency).',
};

function peftMode(t: TensorView): boolean {
  return t.globals.semantics === 'peft';
}

/** Keep count of a magnitude cut: floor(density x numel), as mergekit and peft compute it. */
function keepCount(density: number, numel: number): number {
  return Math.floor(f32(density) * numel);
}

function cutsFor(f: Family, t: TensorView): CutRequest[] {
  const cuts: CutRequest[] = [];
  t.perModel.forEach((p, i) => {
    const density = num(p, 'density');
    if (f.sparsify === 'magnitude') {
      cuts.push({ key: i, rank: density >= 1 ? t.numel : keepCount(density, t.numel), order: 'desc' });
    } else if (f.sparsify === 'outliers') {
      // Breadcrumbs: rank ascending; drop the n_bot smallest and the n_top largest. When the two
      // overlap, fewer top ones are dropped so that density is met.
      if (density >= 1) {
        cuts.push({ key: i, rank: 0, order: 'asc' }, { key: i, rank: t.numel, order: 'asc' });
        return;
      }
      const target = keepCount(density, t.numel);
      let top = Math.floor(f32(num(p, 'gamma')) * t.numel);
      let bottom = t.numel - target - top;
      if (bottom < 0) {
        top += bottom;
        bottom = 0;
      }
      cuts.push({ key: i, rank: bottom, order: 'asc' }, { key: i, rank: t.numel - top, order: 'asc' });
    }
  });
  return cuts;
}

function needsCuts(f: Family): boolean {
  return f.sparsify === 'magnitude' || f.sparsify === 'outliers';
}

/** Sparsified task vectors of a chunk (what each model contributes before weighting). */
function sparsified(f: Family, t: TensorView, found: Found, chunk: ChunkData, tag = 'sparse'): Float32Array[] {
  const ds = deltasOf(chunk, tag);
  const peft = peftMode(t);
  if (f.sparsify === 'magnitude' || f.sparsify === 'outliers') {
    const cuts = found.cuts as RankCut[];
    ds.forEach((d, i) => {
      if (f.sparsify === 'magnitude') {
        keepInCut(d, cuts[i]);
      } else {
        const below = new CutCursor(cuts[2 * i]);
        const within = new CutCursor(cuts[2 * i + 1]);
        for (let e = 0; e < d.length; e++) {
          const key = keyOf(Math.abs(d[e]));
          // Advance both cursors for every element: each counts ties in index order.
          const dropped = below.takes(key);
          const kept = within.takes(key);
          if (dropped || !kept) d[e] = 0;
        }
      }
    });
    const ratios = found.rescale as number[] | undefined;
    if (ratios && !peft) {
      ds.forEach((d, i) => {
        const r = f32(ratios[i]);
        if (r === 1 || (chunk.work && scaleResident(chunk.work.kernels, d, r))) return;
        for (let e = 0; e < d.length; e++) d[e] = d[e] * r;
      });
    }
  } else if (f.sparsify === 'random') {
    const rescale = peft || bool(t.globals, 'rescale');
    ds.forEach((d, i) => {
      const density = num(t.perModel[i], 'density');
      if (density >= 1) return;
      const p = f32(density);
      for (let e = 0; e < d.length; e++) {
        const keep = uniformAt(t.seed, t.streams[i], chunk.start + e) < density;
        d[e] = keep ? (rescale ? f32(d[e] / p) : d[e]) : 0;
      }
    });
  } else if (f.sparsify === 'della') {
    const rescale = bool(t.globals, 'rescale');
    ds.forEach((d, i) => dellaSample(d, t, i, chunk.start, rescale));
  }
  return ds;
}

/**
 * DELLA's MagPrune on whole rows: within each row, the rank of |d| (ascending, ties by index)
 * sets the keep probability from density - epsilon (smallest) to density + epsilon (largest).
 */
function dellaSample(d: Float32Array, t: TensorView, model: number, start: number, rescale: boolean): void {
  const density = num(t.perModel[model], 'density');
  if (density >= 1) return;
  if (density <= 0) {
    d.fill(0);
    return;
  }
  const epsilon = num(t.perModel[model], 'epsilon');
  const row = t.rowLength;
  const order = new Uint32Array(row);
  for (let r0 = 0; r0 < d.length; r0 += row) {
    for (let j = 0; j < row; j++) order[j] = j;
    order.sort((a, b) => Math.abs(d[r0 + a]) - Math.abs(d[r0 + b]) || a - b);
    for (let rank = 0; rank < row; rank++) {
      const e = r0 + order[rank];
      const norm = row > 1 ? rank / (row - 1) : 0;
      const p = f32(density - epsilon + norm * 2 * epsilon);
      const keep = uniformAt(t.seed, t.streams[model], start + e) < p;
      d[e] = keep ? (rescale ? f32(d[e] / p) : d[e]) : 0;
    }
  }
}

/** mergekit's rescale for magnitude-based sparsification: match the L1 norm of the full delta. */
function rescaleStage(f: Family): Stage<bigint[]> {
  return {
    id: 'rescale',
    map(t, found, chunk) {
      const full = deltasOf(chunk, 'full');
      const kept = sparsified(f, t, { cuts: found.cuts }, chunk, 'kept');
      const sums = new ExactSums(2 * t.models);
      for (let from = 0; from < chunk.count; from += SUM_BLOCK) {
        const to = Math.min(chunk.count, from + SUM_BLOCK);
        for (let i = 0; i < t.models; i++) {
          let before = 0;
          let after = 0;
          for (let e = from; e < to; e++) {
            before += Math.abs(full[i][e]);
            after += Math.abs(kept[i][e]);
          }
          sums.add(2 * i, before);
          sums.add(2 * i + 1, after);
        }
      }
      return sums.totals;
    },
    merge: ExactSums.merge,
    finalize(p, t) {
      const v = ExactSums.values(p);
      return Array.from({ length: t.models }, (_, i) => (v[2 * i] < 1e-7 || v[2 * i + 1] < 1e-7 ? 1 : v[2 * i] / v[2 * i + 1]));
    },
  };
}

function makeKernel(f: Family): MergeMethod['kernel'] {
  const cutStages = rankCutStages(
    'cuts',
    (_t, _found, chunk) => deltasOf(chunk, 'keys').map(magnitudeKeys),
    (t) => cutsFor(f, t),
    'delta-magnitudes',
  );
  const rescale = rescaleStage(f);
  return {
    // The rank cuts' passes take bf16 operands as stored; apply decodes them on first use.
    readsBf16: true,
    nextStage(t: TensorView, found: Found) {
      if (needsCuts(f)) {
        const stage = cutStages(t, found);
        if (stage) return stage;
        if (!peftMode(t) && bool(t.globals, 'rescale') && !found.rescale) return rescale;
      }
      return null;
    },
    apply(t, found, chunk, out) {
      const ds = sparsified(f, t, found, chunk);
      const base = chunk.base!;
      const n = ds.length;
      const weights = t.perModel.map((p) => f32(num(p, 'weight')));
      const peft = peftMode(t);
      const consensus = f.consensus !== 'none';
      const normalize = !peft && bool(t.globals, 'normalize');
      const frequency = peft && t.globals.majority_sign_method === 'frequency';
      const lambda = f.sparsify === 'della' ? f32(num(t.perModel[0], 'lambda')) : 1;
      const wd = new Float64Array(n);
      let plainDivisor = 0;
      for (let i = 0; i < n; i++) plainDivisor = f32(plainDivisor + weights[i]);
      if (Math.abs(plainDivisor) < 1e-8) plainDivisor = 1;
      // mergekit's combination runs on the kernels when the chunk is in their memory; the loop below is its reference.
      if (chunk.work && !peft && lambda === 1 && taskCombineResident(chunk.work.kernels, ds, weights, base, consensus, normalize, plainDivisor, out)) return;

      for (let e = 0; e < chunk.count; e++) {
        for (let i = 0; i < n; i++) wd[i] = f32(ds[i][e] * weights[i]);
        let mixed = 0;
        if (!consensus) {
          for (let i = 0; i < n; i++) mixed = f32(mixed + wd[i]);
          if (normalize) mixed = f32(mixed / plainDivisor);
        } else if (!peft) {
          // mergekit: the sign of the sum of the weighted deltas (>= 0 counts as +); zeros never agree.
          let total = 0;
          for (let i = 0; i < n; i++) total = f32(total + wd[i]);
          const majority = total >= 0 ? 1 : -1;
          let divisor = 0;
          for (let i = 0; i < n; i++) {
            if (sign(wd[i]) === majority) {
              mixed = f32(mixed + wd[i]);
              divisor = f32(divisor + weights[i]);
            }
          }
          if (normalize) mixed = f32(mixed / (divisor === 0 ? 1 : divisor));
        } else {
          // peft: elect on the unweighted pruned deltas, average the kept weighted ones.
          let total = 0;
          for (let i = 0; i < n; i++) total = f32(total + (frequency ? sign(ds[i][e]) : ds[i][e]));
          const majority = total >= 0 ? 1 : -1;
          let agreeing = 0;
          for (let i = 0; i < n; i++) {
            if (sign(ds[i][e]) === majority) {
              mixed = f32(mixed + wd[i]);
              agreeing++;
            }
          }
          mixed = f32(mixed / Math.max(agreeing, 1));
        }
        if (lambda !== 1) mixed = f32(mixed * lambda);
        out[e] = f32(base[e] + mixed);
      }
    },
  };
}

function familyMethod(f: Family): MergeMethod {
  const tensorParameters: ParamDef[] = [WEIGHT];
  if (f.sparsify !== 'none') tensorParameters.push(DENSITY);
  if (f.sparsify === 'outliers') tensorParameters.push({ name: 'gamma', kind: 'number', default: 0.01, min: 0, max: 1, doc: 'Share of the largest-magnitude entries dropped as outliers.' });
  if (f.sparsify === 'della') {
    tensorParameters.push(
      { name: 'epsilon', kind: 'number', default: 0.15, min: 0, max: 1, doc: 'Spread of keep probabilities around density, by magnitude rank within each row.' },
      { name: 'lambda', kind: 'number', default: 1, doc: 'Scale applied to the merged task vector.' },
    );
  }
  const parameters: ParamDef[] = [
    NORMALIZE(f.normalize),
    { name: 'rescale', kind: 'boolean', default: f.rescale, doc: 'Rescale kept entries (by 1/keep probability for random methods, to the original L1 norm for magnitude ones).' },
    { name: 'int8_mask', kind: 'boolean', default: false, doc: 'Accepted for mergekit compatibility; masks are never materialised here.' },
  ];
  if (f.peft) parameters.push(SEMANTICS, MAJORITY);
  return {
    name: f.name,
    summary: f.summary,
    reference: f.reference,
    base: 'required',
    minModels: 1,
    parameters,
    tensorParameters,
    rowWise: () => f.sparsify === 'della',
    check(t) {
      if (f.sparsify === 'della') {
        for (const p of t.perModel) {
          const d = num(p, 'density');
          const eps = num(p, 'epsilon');
          if (d < 1 && d > 0 && (d + eps >= 1 || d - eps <= 0)) return `epsilon ${eps} with density ${d} puts keep probabilities outside (0, 1); choose epsilon < min(density, 1 - density).`;
        }
      }
      if (f.sparsify === 'magnitude' && !peftMode(t)) {
        for (const p of t.perModel) {
          const d = num(p, 'density');
          if (d < 1 && keepCount(d, t.numel) === 0) return `density ${d} keeps no element of this ${t.numel}-element tensor; raise density (mergekit refuses this too).`;
        }
      }
      if (t.globals.majority_sign_method === 'frequency' && !peftMode(t)) return 'majority_sign_method applies only with semantics: peft.';
      return undefined;
    },
    kernel: makeKernel(f),
  };
}

export const taskArithmetic = familyMethod({
  name: 'task_arithmetic', consensus: 'none', sparsify: 'none', normalize: false, rescale: false, peft: true,
  summary: 'Adds weighted task vectors (x - base) to the base; negative weights subtract a skill. The simplest way to combine fine-tunes of one base.',
  reference: 'https://arxiv.org/abs/2212.04089',
});

export const ties = familyMethod({
  name: 'ties', consensus: 'sum', sparsify: 'magnitude', normalize: true, rescale: false, peft: true,
  summary: 'Keeps the largest entries of each task vector, elects a sign per entry and averages the agreeing ones: less interference than task arithmetic when fine-tunes conflict.',
  reference: 'https://arxiv.org/abs/2306.01708',
});

export const dareTies = familyMethod({
  name: 'dare_ties', consensus: 'sum', sparsify: 'random', normalize: false, rescale: true, peft: true,
  summary: 'Drops task-vector entries at random (keeping density), rescales the rest, then elects signs as TIES does.',
  reference: 'https://arxiv.org/abs/2311.03099',
});

export const dareLinear = familyMethod({
  name: 'dare_linear', consensus: 'none', sparsify: 'random', normalize: false, rescale: true, peft: true,
  summary: 'Drops task-vector entries at random (keeping density), rescales the rest and adds them weighted, without sign election.',
  reference: 'https://arxiv.org/abs/2311.03099',
});

export const breadcrumbs = familyMethod({
  name: 'breadcrumbs', consensus: 'none', sparsify: 'outliers', normalize: false, rescale: false,
  summary: 'Drops both the largest outliers (gamma) and the smallest entries of each task vector, then adds them weighted.',
  reference: 'https://arxiv.org/abs/2312.06795',
});

export const breadcrumbsTies = familyMethod({
  name: 'breadcrumbs_ties', consensus: 'sum', sparsify: 'outliers', normalize: false, rescale: false,
  summary: 'Breadcrumbs sparsification followed by TIES sign election.',
  reference: 'https://arxiv.org/abs/2312.06795',
});

export const della = familyMethod({
  name: 'della', consensus: 'sum', sparsify: 'della', normalize: true, rescale: true,
  summary: 'Drops entries with a probability that falls with their magnitude rank (MagPrune), rescales, then elects signs as TIES does.',
  reference: 'https://arxiv.org/abs/2406.11617',
});

export const dellaLinear = familyMethod({
  name: 'della_linear', consensus: 'none', sparsify: 'della', normalize: false, rescale: true,
  summary: 'DELLA magnitude-ranked dropping without sign election: a weighted sum of the rescaled task vectors.',
  reference: 'https://arxiv.org/abs/2406.11617',
});

export const magnitudePrune = familyMethod({
  name: 'magnitude_prune', consensus: 'none', sparsify: 'magnitude', normalize: false, rescale: false,
  summary: "peft's magnitude_prune: keeps the largest entries of each task vector (density), then adds them weighted.",
});

export type { ParamValues };
