// A comparison of two checkpoints (optionally against a common base), as `graft diff --json`
// prints it and the Compare webview draws it.
//
// Edge cases (the same in every field of a TensorDiff, a ShapeMismatch overlap and the summary):
// - Non-finite inputs: positions where a, b (or the base) hold NaN or +-Infinity are left out of
//   every metric and counted in `nonfinite`; the metrics describe the finite pairs.
// - rel_l2 and rel_norm_*: 0 when the reference norm and the difference are both 0; null (in
//   memory and in JSON) when the reference is a zero vector but the difference is not, since the
//   ratio is unbounded.
// - cosine and cosine_tv: 1 when both vectors are zero (they are equal), 0 when only one is.
// - sign_agreement: null when no position has both task vectors non-zero.
// - An empty tensor is unchanged: distances 0, cosine 1, shares 0.
// - A tensor with elements but no finite pair (all NaN or infinity in a or b) is not comparable:
//   `not_comparable` says why, its figures are those of an empty tensor and must not be read as
//   "unchanged"; views show it as missing and the summary counts it in `not_comparable`.
// - A tensor whose dtype cannot be decoded (C64) is not compared: listed in `skipped`.
// - Quick mode: metrics on the fixed sample of src/core/sampling.ts; norms (l2_diff, norm_a,
//   norm_b) are scaled up to estimate the whole tensor; max_abs_diff is the sample's (a lower bound).

export interface TensorDiff {
  name: string;
  /** Layer index parsed from the name, or null for non-layer tensors (embeddings, final norm, head). */
  layer: number | null;
  /** Module path inside the block, e.g. "self_attn.q_proj", "mlp.down_proj"; the name's path for non-layer tensors. */
  module: string;
  /** Stack of blocks the layer index counts in ("layers", "encoder", "decoder", "down_blocks"...), or "non-layer". */
  group?: string;
  /** Elements in the compared block (the whole tensor, or the overlap of a shape mismatch). */
  numel: number;
  /** Elements actually read: numel, or the sample size in quick mode. */
  compared?: number;
  /** Positions left out because an input was NaN or +-Infinity. */
  nonfinite?: number;
  /** ||b - a||. */
  l2_diff: number;
  /** ||b - a|| / ||a||; null when a is a zero vector and b is not. */
  rel_l2: number | null;
  /** ||a|| and ||b||: with l2_diff and cosine they let views aggregate tensors into cells exactly. */
  norm_a?: number;
  norm_b?: number;
  cosine: number;
  max_abs_diff: number;
  frac_changed: number;
  mean_diff: number;
  std_diff: number;
  /** With a base: cosine of the task vectors a-base and b-base. */
  cosine_tv?: number;
  /** With a base: share of equal signs where both task vectors are non-zero; null when there is no such position. */
  sign_agreement?: number | null;
  /** With a base: share of elements where both task vectors are non-zero with opposite signs. */
  conflict?: number;
  /** With a base: ||a-base|| / ||base|| and ||b-base|| / ||base||. */
  rel_norm_a?: number | null;
  rel_norm_b?: number | null;
  /** With a base: ||a-base||, ||b-base|| and ||base||, so views can aggregate task-vector metrics exactly. */
  norm_tv_a?: number;
  norm_tv_b?: number;
  norm_base?: number;
  /** True when computed on the fixed sample rather than every element. */
  sampled?: boolean;
  /** Set when no position had finite values in both inputs: the figures mean nothing. */
  not_comparable?: string;
}

/** A tensor present in both checkpoints that was not compared, and why. */
export interface SkippedTensor {
  name: string;
  reason: string;
}

export interface ShapeMismatch {
  name: string;
  shapeA: number[];
  shapeB: number[];
  /** Set when the overlapping block (e.g. the rows of a resized vocabulary both have) was compared. */
  overlap?: TensorDiff;
  /** Leading rows the overlap covers (the smaller first dimension). */
  overlapRows?: number;
}

/** Over every compared block (tensors and shape-mismatch overlaps) as one long vector. */
export interface DiffSummary {
  tensors: number;
  numel: number;
  /** Over all compared elements: ||b-a|| / ||a||. */
  rel_l2: number | null;
  cosine: number;
  frac_changed: number;
  l2_diff?: number;
  max_abs_diff?: number;
  nonfinite?: number;
  /** Compared tensors with no finite pair (counted in `tensors`, left out of the figures). */
  not_comparable?: number;
  cosine_tv?: number;
  sign_agreement?: number | null;
  conflict?: number;
  rel_norm_a?: number | null;
  rel_norm_b?: number | null;
  mode: 'exact' | 'quick';
}

export interface DiffReport {
  a: string;
  b: string;
  base?: string;
  tensors: TensorDiff[];
  only_in_a: string[];
  only_in_b: string[];
  shape_mismatch: ShapeMismatch[];
  /** With a base: compared tensors the base lacks or holds in a shape not covering the block (no task-vector metrics). */
  base_mismatch?: string[];
  /** Tensors in both checkpoints that were not compared (a dtype that cannot be decoded, e.g. C64). */
  skipped?: SkippedTensor[];
  summary: DiffSummary;
}

/** Distribution of b - a for one tensor and how the change spreads along its first dimension. */
export interface TensorDiffDetail {
  name: string;
  shape: number[];
  numel: number;
  histogram: {
    /** Smallest and largest finite b - a. Equal when every difference is the same (all counts in bin 0). */
    min: number;
    max: number;
    /** counts[i] = elements with min + i*w <= d < min + (i+1)*w, w = (max-min)/bins; the last bin includes max. */
    counts: Float64Array;
  };
  /** Elements with b == a exactly. */
  unchanged: number;
  /** Elements where b - a is NaN or infinite (left out of the histogram and the norms). */
  nonFinite: number;
  /** ||b - a|| and ||a|| over the whole tensor (finite differences only). */
  diffNorm: number;
  baseNorm: number;
  rows: {
    /** Length of dim 0 (1 for a scalar). */
    count: number;
    /**
     * Buckets of consecutive rows: row r is in bucket floor(r * buckets / count), so with at most
     * 1,024 rows each bucket is one row. start[i] is the first row of bucket i.
     */
    start: Float64Array;
    /** sqrt(sum over the bucket's rows of ||b_row - a_row||^2) and the same for ||a_row||. */
    diffNorm: Float64Array;
    baseNorm: Float64Array;
  };
}
