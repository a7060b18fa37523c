// The LoRA extraction kernel for the worker pool (registered in src/worker/tasks.ts): a truncated
// SVD of one weight's difference D = model - base (m x n) by a randomized range finder with power
// iterations, in float64. D is never held whole: each product with it streams D's rows from the two
// files (sub-chunks of whole rows, read ahead), so a worker holds the m x l and n x l sketches only.
// Passes: Y = D Omega (and ||D||^2); q times Q = orth(Y), Z = orth(D^T Q), Y = D Z; Q = orth(Y),
// B^T = D^T Q; then the l x l eigenproblem of B B^T gives U = Q W, sigma, V = B^T W / sigma.
import type { TaskContext } from '../engine/task';
import { encodeFromFloat32 } from '../safetensors/dtypes';
import type { DType, TensorRef } from '../safetensors/types';
import { forEachSubChunk } from '../patch/tasks';
import { gaussianMatrix, orthonormalizeColumns, symmetricEigen } from './linalg';

/** Elements per streamed sub-chunk (whole rows). */
const ROWS_CHUNK_ELEMENTS = 1 << 18;

export interface LoraExtractInput {
  model: TensorRef;
  base: TensorRef;
  /** A fixed rank, or (when `energy` is set) the largest rank allowed. */
  rank: number;
  /** Keep the smallest rank whose singular values hold this share of ||D||^2. */
  energy?: number;
  oversample: number;
  powerIterations: number;
  seed: number;
  dtype: DType;
}

export interface LoraExtractOutput {
  /** 0 when the tensor did not change (no factors then). */
  rank: number;
  /** lora_A [rank, n] and lora_B [m, rank] bytes in `dtype`. */
  a?: Uint8Array;
  b?: Uint8Array;
  /** Singular values found (descending), the first `rank` kept. */
  singularValues: Float64Array;
  /** ||D||_F^2. */
  totalEnergy: number;
  /** Share of ||D||^2 the kept rank holds. */
  retained: number;
  /** ||D - B A||_F / ||D||_F of the float64 factors. */
  relativeError: number;
}

/** Runs `visit(row, values)` over every row of D = model - base. */
async function forEachRow(input: LoraExtractInput, ctx: TaskContext, visit: (row: number, d: Float64Array) => void): Promise<void> {
  const [m, n] = input.model.shape;
  const rowsPerChunk = Math.max(1, Math.floor(ROWS_CHUNK_ELEMENTS / n));
  const d = new Float64Array(n);
  await forEachSubChunk([input.model, input.base], 0, m * n, ctx, ([x, b], offset, length) => {
    for (let r = 0; r < length / n; r++) {
      for (let j = 0; j < n; j++) d[j] = x[r * n + j] - b[r * n + j];
      visit(offset / n + r, d);
    }
  }, rowsPerChunk * n);
  ctx.throwIfCancelled();
}

/** Y (m x l) = D X for X (n x l). */
async function times(input: LoraExtractInput, ctx: TaskContext, x: Float64Array, l: number, energy?: { total: number }): Promise<Float64Array> {
  const [m] = input.model.shape;
  const y = new Float64Array(m * l);
  await forEachRow(input, ctx, (row, d) => {
    const out = row * l;
    for (let j = 0; j < d.length; j++) {
      const dj = d[j];
      if (dj === 0) continue;
      if (energy) energy.total += dj * dj;
      const xj = j * l;
      for (let k = 0; k < l; k++) y[out + k] += dj * x[xj + k];
    }
  });
  return y;
}

/** Z (n x l) = D^T Q for Q (m x l). */
async function transposeTimes(input: LoraExtractInput, ctx: TaskContext, q: Float64Array, l: number): Promise<Float64Array> {
  const [, n] = input.model.shape;
  const z = new Float64Array(n * l);
  await forEachRow(input, ctx, (row, d) => {
    const qr = row * l;
    for (let j = 0; j < d.length; j++) {
      const dj = d[j];
      if (dj === 0) continue;
      const zj = j * l;
      for (let k = 0; k < l; k++) z[zj + k] += dj * q[qr + k];
    }
  });
  return z;
}

/** The rank to keep: fixed, or the smallest holding `energy` of the total. */
export function chooseRank(sigma: Float64Array, total: number, maxRank: number, energy?: number): number {
  const limit = Math.min(maxRank, sigma.length);
  if (energy === undefined) return limit;
  let held = 0;
  for (let r = 0; r < limit; r++) {
    held += sigma[r] * sigma[r];
    if (held >= energy * total) return r + 1;
  }
  return limit;
}

function encode(dtype: DType, values: Float64Array): Uint8Array {
  if (dtype === 'F64') return new Uint8Array(Float64Array.from(values).buffer);
  return encodeFromFloat32(dtype, Float32Array.from(values));
}

export const loraTasks = {
  loraExtract: async (input: LoraExtractInput, ctx: TaskContext): Promise<LoraExtractOutput> => {
    const [m, n] = input.model.shape;
    const l = Math.min(m, n, input.rank + input.oversample);
    const passes = 2 + 2 * input.powerIterations;
    let passesDone = 0;
    const step = () => ctx.progress(++passesDone / passes);
    const energy = { total: 0 };
    let y = await times(input, ctx, gaussianMatrix(n, l, input.seed, input.model.name), l, energy);
    step();
    if (energy.total === 0) return { rank: 0, singularValues: new Float64Array(0), totalEnergy: 0, retained: 1, relativeError: 0 };
    for (let i = 0; i < input.powerIterations; i++) {
      orthonormalizeColumns(y, m, l);
      const z = await transposeTimes(input, ctx, y, l);
      step();
      orthonormalizeColumns(z, n, l);
      y = await times(input, ctx, z, l);
      step();
    }
    orthonormalizeColumns(y, m, l);
    const q = y;
    const bt = await transposeTimes(input, ctx, q, l);
    step();
    // B B^T = Bt^T Bt (l x l).
    const gram = new Float64Array(l * l);
    for (let j = 0; j < n; j++) {
      for (let a = 0; a < l; a++) {
        const x = bt[j * l + a];
        if (x === 0) continue;
        for (let b = a; b < l; b++) gram[a * l + b] += x * bt[j * l + b];
      }
    }
    for (let a = 0; a < l; a++) for (let b = 0; b < a; b++) gram[a * l + b] = gram[b * l + a];
    const { values, vectors } = symmetricEigen(gram, l);
    const sigma = Float64Array.from(values, (v) => Math.sqrt(Math.max(0, v)));
    const rank = Math.max(1, chooseRank(sigma, energy.total, input.rank, input.energy));
    // lora_B = U_r sqrt(sigma), lora_A = sqrt(sigma) V_r^T, with U = Q W and V = Bt W / sigma.
    const bFactor = new Float64Array(m * rank);
    const aFactor = new Float64Array(rank * n);
    for (let k = 0; k < rank; k++) {
      const root = Math.sqrt(sigma[k]);
      for (let i = 0; i < m; i++) {
        let u = 0;
        for (let c = 0; c < l; c++) u += q[i * l + c] * vectors[c * l + k];
        bFactor[i * rank + k] = u * root;
      }
      for (let j = 0; j < n; j++) {
        let v = 0;
        for (let c = 0; c < l; c++) v += bt[j * l + c] * vectors[c * l + k];
        aFactor[k * n + j] = sigma[k] > 0 ? (v / sigma[k]) * root : 0;
      }
    }
    let kept = 0;
    for (let k = 0; k < rank; k++) kept += sigma[k] * sigma[k];
    const retained = Math.min(1, kept / energy.total);
    return {
      rank,
      a: encode(input.dtype, aFactor),
      b: encode(input.dtype, bFactor),
      singularValues: sigma,
      totalEnergy: energy.total,
      retained,
      relativeError: Math.sqrt(Math.max(0, 1 - retained)),
    };
  },
};

export type LoraTasks = typeof loraTasks;
