// The linear-connectivity report of a fine-tuning transfer (connectivity.ts computes it): plain
// data, shared with the CLI's JSON output and the editor's connectivity view.

export interface ConnectivityLayer {
  group: string;
  layer: number | null;
  tensors: number;
  /** cos(B2 - B, X - B) over the layer's tensors. */
  cosine: number;
  /** ||B2 - B|| / ||B||; null when B is zero there and B2 is not. */
  baseUpdate: number | null;
  /** ||X - B|| / ||B||. */
  finetuneDiff: number | null;
}

/** One (layer, module) cell: the tensor's own figures, for the heatmap. */
export interface ConnectivityCell {
  name: string;
  group: string;
  layer: number | null;
  module: string;
  cosine: number;
  baseUpdate: number | null;
  finetuneDiff: number | null;
  /** Elements, and ||B2 - B||, ||X - B||, ||B||: views combine cells from these exactly. */
  numel: number;
  norms: { baseUpdate: number; finetuneDiff: number; base: number };
}

export type TransferVerdict = 'likely-safe' | 'risky' | 'not-applicable';

export interface ConnectivityReport {
  finetune: string;
  from: string;
  to: string;
  overall: { cosine: number; baseUpdate: number | null; finetuneDiff: number | null };
  layers: ConnectivityLayer[];
  cells: ConnectivityCell[];
  structure: {
    /** Tensors in B or B2. */
    tensors: number;
    /** Of those, tensors only in one of them or with different shapes. */
    changed: number;
    share: number;
    examples: string[];
    /** Tensors of B that X lacks or holds in another shape (X is then not a plain fine-tune of B). */
    finetuneMismatch: number;
  };
  verdict: TransferVerdict;
  /** Plain-language reasons for the verdict, with the numbers behind them. */
  reasons: string[];
  warnings: string[];
}
