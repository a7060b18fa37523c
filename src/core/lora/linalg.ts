// Small dense linear algebra in float64 for LoRA extraction: seeded Gaussian test matrices,
// orthonormal bases (modified Gram-Schmidt, twice for stability) and the symmetric eigenproblem
// (cyclic Jacobi). Matrices are row-major Float64Arrays.
import { streamId, uniformAt } from '../merge/random';

/** A rows x cols matrix of standard normal draws, a pure function of (seed, name). */
export function gaussianMatrix(rows: number, cols: number, seed: number, name: string): Float64Array {
  const stream = streamId(name);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    const u = uniformAt(seed, stream, 2 * i) || 2 ** -33;
    const v = uniformAt(seed, stream, 2 * i + 1);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/**
 * Orthonormalizes the columns of `m` (rows x cols) in place. Columns that are (numerically) in
 * the span of the earlier ones become zero, so a rank-deficient input gives zero columns.
 */
export function orthonormalizeColumns(m: Float64Array, rows: number, cols: number): void {
  let largest = 0;
  for (let k = 0; k < cols; k++) {
    let original = 0;
    for (let i = 0; i < rows; i++) original += m[i * cols + k] ** 2;
    largest = Math.max(largest, Math.sqrt(original));
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < k; p++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += m[i * cols + p] * m[i * cols + k];
        for (let i = 0; i < rows; i++) m[i * cols + k] -= dot * m[i * cols + p];
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += m[i * cols + k] ** 2;
    norm = Math.sqrt(norm);
    const keep = norm > 1e-12 * Math.max(largest, 1e-300);
    for (let i = 0; i < rows; i++) m[i * cols + k] = keep ? m[i * cols + k] / norm : 0;
  }
}

/** Eigenvalues (descending) and eigenvectors (columns of `vectors`, n x n) of a symmetric matrix. */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += a[i * n + i] ** 2;
      for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => {
    for (let k = 0; k < n; k++) vectors[k * n + to] = v[k * n + from];
  });
  return { values, vectors };
}
