// The connectivity report as the compare view's heatmap draws it: each report cell becomes one
// tensor of a task-vector comparison (a = the new base B2, b = the fine-tune X, base = the old base
// B), so Compare's grid, metrics and exact cell aggregation apply unchanged. Only the task-vector
// fields are meaningful; the plain a-vs-b fields are left undefined (NaN) and never drawn.
import type { TensorDiff } from '../../src/core/diff/types';
import { fixedNoNegativeZero } from '../../src/core/format';
import type { ConnectivityReport, TransferVerdict } from '../../src/core/transfer/types';
import { metricSpec, TASK_VECTOR_SIZE_METRICS, type MetricSpec } from '../compare/model';

export function connectivityTensors(report: ConnectivityReport): TensorDiff[] {
  return report.cells.map((c) => ({
    name: c.name,
    layer: c.layer,
    module: c.module,
    group: c.group,
    numel: c.numel,
    l2_diff: NaN,
    rel_l2: NaN,
    cosine: NaN,
    max_abs_diff: NaN,
    frac_changed: NaN,
    mean_diff: NaN,
    std_diff: NaN,
    cosine_tv: c.cosine,
    rel_norm_a: c.baseUpdate,
    rel_norm_b: c.finetuneDiff,
    norm_tv_a: c.norms.baseUpdate,
    norm_tv_b: c.norms.finetuneDiff,
    norm_base: c.norms.base,
  }));
}

/** The three heatmaps of the report, labelled for X, B and B2; every cell combines its tensors exactly. */
export const CONNECTIVITY_METRICS: readonly MetricSpec[] = [
  { ...metricSpec('cosine_tv'), label: 'cos(B2−B, X−B)', description: 'cosine of the base update and the fine-tune diff: near 0 is independent (good), negative undoes the fine-tune, positive overlaps it', aggregation: 'exact' },
  { ...TASK_VECTOR_SIZE_METRICS[0], label: 'Base update ‖B2−B‖/‖B‖', description: 'how far the new base moved from the old one, relative to the old base' },
  { ...TASK_VECTOR_SIZE_METRICS[1], label: 'Fine-tune diff ‖X−B‖/‖B‖', description: 'how much fine-tuning changed the old base, relative to it' },
];

export const VERDICT_TITLE: Record<TransferVerdict, string> = {
  'likely-safe': 'Transfer likely safe',
  risky: 'Transfer risky',
  'not-applicable': 'Transfer not applicable',
};

export const VERDICT_SUMMARY: Record<TransferVerdict, string> = {
  'likely-safe': 'The two bases are close, and what changed between them is unrelated to what fine-tuning changed: adding the fine-tune\'s changes to the new base should carry them over. Check the result on your own evaluations.',
  risky: 'The transfer can run, but the numbers below say the fine-tune\'s changes may not carry over as they are. Consider a scale below 1, and evaluate the result before using it.',
  'not-applicable': 'The fine-tune\'s changes cannot be added to the new base as they are, for the reasons below. Nothing will be written.',
};

/** "12.3%" ("0.042%" for small shares, "0%" for none), or "unbounded" when the old base is zero where the other is not. */
export function share(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return 'unbounded';
  if (x === 0) return '0%';
  return `${(x * 100).toFixed(x < 0.001 ? 3 : 1)}%`;
}

/** A cosine with `digits` decimals, never "-0.000". */
export function cosineText(x: number, digits = 3): string {
  return fixedNoNegativeZero(x, digits);
}
