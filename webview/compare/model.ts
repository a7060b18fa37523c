// The Compare view's data model, free of DOM and d3 so unit tests can check it: the metrics and
// how each is coloured and ranked, the layer x module grid with its cell aggregation, the
// interference summary that drives the merge guidance, CSV export and number formatting.
import { maxOf, minOf } from '../../src/core/collections';
import { summarizeLayers } from '../../src/core/diff/layers';
import { parseTensorName } from '../../src/core/tensors/names';
import type { DiffReport, TensorDiff } from '../../src/core/diff/types';

export type MetricKey = 'rel_l2' | 'cosine' | 'frac_changed' | 'max_abs_diff' | 'cosine_tv' | 'sign_agreement' | 'conflict' | 'rel_norm_a' | 'rel_norm_b';

export interface MetricSpec {
  key: MetricKey;
  label: string;
  /** One line for the legend and the dropdown's title. */
  description: string;
  needsBase: boolean;
  /**
   * 'positive': values >= 0, coloured sequentially (log scale allowed).
   * 'signed': coloured diverging around `center` when values fall on both sides, else sequentially.
   */
  kind: 'positive' | 'signed';
  center: number;
  /** +1 when a higher value means more change (or more conflict), -1 when a lower one does. */
  changeDirection: 1 | -1;
  /**
   * How a cell holding several tensors combines them: 'exact' recomputes the metric from the sums
   * the tensors' norms give back, 'share' weights a share by element counts (exact), 'max' takes
   * the largest, 'mean' is an element-weighted mean (an approximation).
   */
  aggregation: 'exact' | 'share' | 'max' | 'mean';
}

export const METRICS: readonly MetricSpec[] = [
  { key: 'rel_l2', label: 'Relative change ‖b−a‖/‖a‖', description: 'L2 norm of the difference relative to the norm of a', needsBase: false, kind: 'positive', center: 0, changeDirection: 1, aggregation: 'exact' },
  { key: 'cosine', label: 'Cosine similarity (a, b)', description: 'cosine of the angle between a and b; lower means more changed', needsBase: false, kind: 'signed', center: 0, changeDirection: -1, aggregation: 'exact' },
  { key: 'frac_changed', label: 'Share of elements changed', description: 'share of elements where b differs from a', needsBase: false, kind: 'positive', center: 0, changeDirection: 1, aggregation: 'share' },
  { key: 'max_abs_diff', label: 'Largest absolute change', description: 'max |b−a| over the elements', needsBase: false, kind: 'positive', center: 0, changeDirection: 1, aggregation: 'max' },
  { key: 'cosine_tv', label: 'Task vector cosine', description: 'cosine of (a−base) and (b−base); negative means opposing updates', needsBase: true, kind: 'signed', center: 0, changeDirection: -1, aggregation: 'mean' },
  { key: 'sign_agreement', label: 'Sign agreement', description: 'share of equal signs where both task vectors are non-zero (0.5 ≈ unrelated)', needsBase: true, kind: 'signed', center: 0.5, changeDirection: -1, aggregation: 'mean' },
  { key: 'conflict', label: 'Sign conflict', description: 'share of elements where both task vectors are non-zero with opposite signs', needsBase: true, kind: 'positive', center: 0, changeDirection: 1, aggregation: 'share' },
];

/**
 * The sizes of the two task vectors relative to the base, ‖a−base‖/‖base‖ and ‖b−base‖/‖base‖:
 * not offered by Compare's dropdown, drawn by views that label them for their own a and b (the
 * transfer connectivity report).
 */
export const TASK_VECTOR_SIZE_METRICS: readonly MetricSpec[] = [
  { key: 'rel_norm_a', label: 'Task vector a size ‖a−base‖/‖base‖', description: 'norm of a−base relative to the norm of the base', needsBase: true, kind: 'positive', center: 0, changeDirection: 1, aggregation: 'exact' },
  { key: 'rel_norm_b', label: 'Task vector b size ‖b−base‖/‖base‖', description: 'norm of b−base relative to the norm of the base', needsBase: true, kind: 'positive', center: 0, changeDirection: 1, aggregation: 'exact' },
];

export function metricSpec(key: string | undefined): MetricSpec {
  return METRICS.find((m) => m.key === key) ?? METRICS[0];
}

export function metricsFor(report: DiffReport): MetricSpec[] {
  const hasBase = report.base !== undefined || report.tensors.some((t) => t.conflict !== undefined);
  return METRICS.filter((m) => hasBase || !m.needsBase);
}

export function aggregationNote(spec: MetricSpec): string {
  switch (spec.key) {
    case 'rel_l2':
      return 'cell = √Σ‖b−a‖² / √Σ‖a‖² over its tensors (exact)';
    case 'cosine':
      return 'cell = Σ⟨a,b⟩ / (‖a‖·‖b‖) over its tensors (exact)';
    case 'max_abs_diff':
      return 'cell = largest value of its tensors (exact)';
    case 'rel_norm_a':
    case 'rel_norm_b':
      return 'cell = √Σ‖task vector‖² / √Σ‖base‖² over its tensors (exact)';
    case 'cosine_tv':
      if (spec.aggregation === 'exact') return 'cell = Σ⟨a−base, b−base⟩ / (‖a−base‖·‖b−base‖) over its tensors (exact)';
      return 'cell = element-weighted mean of its tensors (approximate)';
    default:
      return spec.aggregation === 'share' ? 'cell = element-weighted share over its tensors (exact)' : 'cell = element-weighted mean of its tensors (approximate)';
  }
}

/**
 * A tensor's value of a metric as a number: NaN when absent (no base) or undefined (sign agreement
 * with no overlap), +Infinity for a relative change from an all-zero tensor (null in the report).
 */
export function metricOf(t: TensorDiff, key: MetricKey): number {
  // Only NaN or infinity was read: its figures are placeholders, shown as missing.
  if (t.not_comparable) return NaN;
  const value = t[key];
  if (value === null) return key === 'rel_l2' || key === 'rel_norm_a' || key === 'rel_norm_b' ? Infinity : NaN;
  return value ?? NaN;
}

// ---- grid ----

export interface GridRow {
  /** Stable key: "<group>:<layer>". */
  key: string;
  group: string;
  layer: number;
  label: string;
}

export interface Cell {
  /** Row key, or GLOBAL_ROW for tensors outside any block. */
  row: string;
  group: string;
  layer: number | null;
  module: string;
  tensors: TensorDiff[];
  numel: number;
}

export const GLOBAL_ROW = 'global';

export interface Grid {
  rows: GridRow[];
  /** Column order of the layer cells. */
  modules: string[];
  cells: Cell[];
  /** One cell per non-layer module (embeddings, final norm, head), in checkpoint order. */
  globals: Cell[];
  byKey: Map<string, Cell>;
}

export function cellKey(row: string, module: string): string {
  return `${row}|${module}`;
}

/** Stack order: encoders and down blocks before middles, before decoders and up blocks. */
function groupRank(group: string): number {
  if (/encoder|down/.test(group)) return 0;
  if (/decoder|up/.test(group)) return 2;
  return 1;
}

const ATTENTION = /attn|attention|q_proj|k_proj|v_proj|o_proj|query|key|value|qkv/i;
const MLP = /mlp|ffn|feed_forward|DenseReluDense|intermediate|gate|up_proj|down_proj|fc\d|c_fc|w[123io]\b/i;
const NORM = /norm|^ln/i;
const ATTENTION_ORDER = [/q_proj|query|(^|\.)q($|\.)|qkv|c_attn/i, /k_proj|key|(^|\.)k($|\.)/i, /v_proj|value|(^|\.)v($|\.)/i, /o_proj|out_proj|c_proj|dense|(^|\.)o($|\.)/i];
const MLP_ORDER = [/gate|w1\b/i, /up_proj|c_fc|fc1|wi|w3\b|intermediate/i, /down_proj|c_proj|fc2|wo|w2\b|output/i];

/** Columns read like a block: attention (q, k, v, o), then the MLP (gate, up, down), then norms. */
export function moduleOrder(a: string, b: string): number {
  const key = (m: string): [number, number] => {
    // A norm is named by its last component ("post_attention_layernorm", "self_attn.q_norm").
    const leaf = m.split('.').filter((p) => p !== 'bias').pop() ?? m;
    if (NORM.test(leaf)) return [2, 0];
    if (ATTENTION.test(m)) return [0, firstMatch(ATTENTION_ORDER, m)];
    if (MLP.test(m)) return [1, firstMatch(MLP_ORDER, m)];
    return [3, 0];
  };
  const [ga, ia] = key(a);
  const [gb, ib] = key(b);
  return ga - gb || ia - ib || (a < b ? -1 : a > b ? 1 : 0);
}

function firstMatch(patterns: RegExp[], text: string): number {
  const i = patterns.findIndex((p) => p.test(text));
  return i < 0 ? patterns.length : i;
}

export function buildGrid(report: Pick<DiffReport, 'tensors'>): Grid {
  const rows = new Map<string, GridRow>();
  const groupFirstSeen = new Map<string, number>();
  const byKey = new Map<string, Cell>();
  const globals: Cell[] = [];
  const modules = new Set<string>();
  report.tensors.forEach((t, index) => {
    const group = t.layer === null ? GLOBAL_ROW : (t.group ?? parseTensorName(t.name).group);
    const row = t.layer === null ? GLOBAL_ROW : `${group}:${t.layer}`;
    if (t.layer !== null) {
      if (!groupFirstSeen.has(group)) groupFirstSeen.set(group, index);
      if (!rows.has(row)) rows.set(row, { key: row, group, layer: t.layer, label: group === 'layers' ? String(t.layer) : `${group} ${t.layer}` });
      modules.add(t.module);
    }
    const key = cellKey(row, t.module);
    let cell = byKey.get(key);
    if (!cell) {
      cell = { row, group, layer: t.layer, module: t.module, tensors: [], numel: 0 };
      byKey.set(key, cell);
      if (t.layer === null) globals.push(cell);
    }
    cell.tensors.push(t);
    cell.numel += t.numel;
  });
  const orderedRows = [...rows.values()].sort(
    (x, y) => groupRank(x.group) - groupRank(y.group) || groupFirstSeen.get(x.group)! - groupFirstSeen.get(y.group)! || x.layer - y.layer,
  );
  const orderedModules = [...modules].sort(moduleOrder);
  const rowIndex = new Map(orderedRows.map((r, i) => [r.key, i]));
  const moduleIndex = new Map(orderedModules.map((m, i) => [m, i]));
  const cells = [...byKey.values()]
    .filter((c) => c.layer !== null)
    .sort((x, y) => rowIndex.get(x.row)! - rowIndex.get(y.row)! || moduleIndex.get(x.module)! - moduleIndex.get(y.module)!);
  return { rows: orderedRows, modules: orderedModules, cells, globals, byKey };
}

/** The value a cell shows for a metric (NaN when no tensor of the cell has it). */
export function cellValue(cell: Cell, spec: MetricSpec): number {
  return combine(cell.tensors, spec);
}

/** Combines several tensors' values of a metric as `spec.aggregation` says. */
export function combine(all: readonly TensorDiff[], spec: MetricSpec): number {
  const key = spec.key;
  const tensors = all.some((t) => t.not_comparable) ? all.filter((t) => !t.not_comparable) : all;
  if (tensors.length === 0) return NaN;
  if (tensors.length === 1) return metricOf(tensors[0], key);
  switch (spec.aggregation) {
    case 'max': {
      const values = tensors.map((t) => metricOf(t, key)).filter((v) => !Number.isNaN(v));
      return maxOf(values, NaN);
    }
    case 'share':
    case 'mean': {
      let sum = 0;
      let weight = 0;
      for (const t of tensors) {
        const v = metricOf(t, key);
        if (!Number.isFinite(v)) continue;
        sum += v * t.numel;
        weight += t.numel;
      }
      return weight > 0 ? sum / weight : NaN;
    }
    case 'exact':
      if (key === 'rel_norm_a' || key === 'rel_norm_b') return combinedTaskVectorSize(tensors, key);
      if (key === 'cosine_tv') return combinedTaskVectorCosine(tensors);
      return key === 'rel_l2' ? combinedRelativeChange(tensors) : combinedCosine(tensors);
  }
}

/** Whether every tensor carries ||a|| and ||b||, so norms and cosines combine exactly. */
function hasNorms(tensors: readonly TensorDiff[]): boolean {
  return tensors.every((t) => t.norm_a !== undefined && t.norm_b !== undefined);
}

/** One row of the engine's own exact roll-up over these tensors, taken as one block. */
function rollUp(tensors: readonly TensorDiff[]) {
  return summarizeLayers(tensors.map((t) => ({ ...t, group: 'cell', layer: 0 })))[0];
}

/**
 * rel_l2 of several tensors: sqrt(sum ||b-a||^2) / sqrt(sum ||a||^2). Reports without norm_a
 * give ||a|| back as l2_diff / rel_l2; an unchanged tensor then hides its norm and is left out of
 * the denominator.
 */
export function combinedRelativeChange(tensors: readonly TensorDiff[]): number {
  if (hasNorms(tensors)) return rollUp(tensors).rel_l2 ?? Infinity;
  let diffSq = 0;
  let baseSq = 0;
  let known = 0;
  for (const t of tensors) {
    if (!Number.isFinite(t.l2_diff)) continue;
    diffSq += t.l2_diff ** 2;
    if (t.l2_diff > 0 && t.rel_l2 !== null && t.rel_l2 > 0 && Number.isFinite(t.rel_l2)) {
      baseSq += (t.l2_diff / t.rel_l2) ** 2;
      known++;
    }
  }
  if (diffSq === 0) return 0;
  return known > 0 ? Math.sqrt(diffSq) / Math.sqrt(baseSq) : Infinity;
}

/** Cosine of several tensors taken as one vector; an element-weighted mean without the norms. */
export function combinedCosine(tensors: readonly TensorDiff[]): number {
  if (hasNorms(tensors)) return rollUp(tensors).cosine;
  return combine(tensors, { ...metricSpec('cosine'), aggregation: 'mean' });
}

/** ‖a−base‖/‖base‖ (or b's) of several tensors: √Σ‖a−base‖² / √Σ‖base‖²; NaN without the norms. */
export function combinedTaskVectorSize(tensors: readonly TensorDiff[], key: 'rel_norm_a' | 'rel_norm_b'): number {
  let tv2 = 0;
  let base2 = 0;
  for (const t of tensors) {
    const tv = key === 'rel_norm_a' ? t.norm_tv_a : t.norm_tv_b;
    if (tv === undefined || t.norm_base === undefined) return combine(tensors, { ...metricSpec('cosine_tv'), key, aggregation: 'mean' });
    tv2 += tv * tv;
    base2 += t.norm_base * t.norm_base;
  }
  return base2 > 0 ? Math.sqrt(tv2 / base2) : tv2 === 0 ? 0 : Infinity;
}

/** cos(a−base, b−base) of several tensors taken as one vector: Σ cos·‖ta‖·‖tb‖ / (√Σ‖ta‖² · √Σ‖tb‖²). */
export function combinedTaskVectorCosine(tensors: readonly TensorDiff[]): number {
  let dot = 0;
  let a2 = 0;
  let b2 = 0;
  for (const t of tensors) {
    if (t.cosine_tv === undefined || t.norm_tv_a === undefined || t.norm_tv_b === undefined) return combine(tensors, { ...metricSpec('cosine_tv'), aggregation: 'mean' });
    dot += t.cosine_tv * t.norm_tv_a * t.norm_tv_b;
    a2 += t.norm_tv_a ** 2;
    b2 += t.norm_tv_b ** 2;
  }
  if (a2 > 0 && b2 > 0) return Math.min(1, Math.max(-1, dot / Math.sqrt(a2) / Math.sqrt(b2)));
  return a2 === 0 && b2 === 0 ? 1 : 0;
}

// ---- colour domain and ranking ----

export interface ColourDomain {
  /** 'sequential': [lo, hi] where hi is the "more change" end; 'diverging': [lo, center, hi]. */
  type: 'sequential' | 'diverging';
  domain: number[];
  log: boolean;
}

/**
 * Positive metrics: sequential over [0 (or the smallest positive value for log), max]. Signed
 * metrics: diverging and symmetric around their center when values fall on both sides, else
 * sequential over the data, oriented so "more change" is the hot end.
 */
export function colourDomain(values: readonly number[], spec: MetricSpec, logRequested: boolean): ColourDomain {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { type: 'sequential', domain: [0, 1], log: false };
  let lo = minOf(finite);
  let hi = maxOf(finite);
  if (spec.kind === 'positive') {
    const positive = finite.filter((v) => v > 0);
    if (logRequested && positive.length > 0) {
      const minPositive = minOf(positive);
      return { type: 'sequential', domain: [minPositive, hi > minPositive ? hi : minPositive * 10], log: true };
    }
    return { type: 'sequential', domain: [0, hi > 0 ? hi : 1], log: false };
  }
  if (lo < spec.center && hi > spec.center) {
    const reach = Math.max(spec.center - lo, hi - spec.center);
    return { type: 'diverging', domain: [spec.center - reach, spec.center, spec.center + reach], log: false };
  }
  if (lo === hi) {
    lo -= 1e-9;
    hi += 1e-9;
  }
  return { type: 'sequential', domain: spec.changeDirection > 0 ? [lo, hi] : [hi, lo], log: false };
}

export function logAllowed(spec: MetricSpec): boolean {
  return spec.kind === 'positive';
}

/** Tensors ordered from most to least changed by the metric; tensors without a value last. */
export function rankTensors(report: DiffReport, spec: MetricSpec, limit: number): TensorDiff[] {
  const score = (t: TensorDiff): number => {
    const v = metricOf(t, spec.key);
    return Number.isNaN(v) ? -Infinity : v * spec.changeDirection;
  };
  return [...report.tensors].sort((x, y) => score(y) - score(x)).slice(0, limit);
}

// ---- interference ----

export type InterferenceLevel = 'high' | 'moderate' | 'low';

export interface InterferenceSummary {
  conflict: number;
  signAgreement: number;
  cosineTv: number;
  level: InterferenceLevel;
  /** Rows (layers) and modules with the highest element-weighted conflict, highest first. */
  topRows: { label: string; conflict: number }[];
  topModules: { module: string; conflict: number }[];
  /** Short factual sentences derived from the figures above. */
  guidance: string[];
}

/** Sign disagreement (1 - sign agreement) at or above this is "high": 0.5 means unrelated updates. */
export const HIGH_DISAGREEMENT = 0.4;
/** At or below this the task vectors mostly pull the same way. */
export const LOW_DISAGREEMENT = 0.2;

export function summarizeInterference(report: DiffReport, grid: Grid): InterferenceSummary | undefined {
  const withBase = report.tensors.filter((t) => t.conflict !== undefined);
  if (withBase.length === 0) return undefined;
  const weighted = (key: 'conflict' | 'sign_agreement' | 'cosine_tv'): number => {
    const fromSummary = report.summary[key];
    if (typeof fromSummary === 'number' && Number.isFinite(fromSummary)) return fromSummary;
    return combine(withBase, metricSpec(key));
  };
  const conflict = weighted('conflict');
  const signAgreement = weighted('sign_agreement');
  const cosineTv = weighted('cosine_tv');
  const conflictSpec = metricSpec('conflict');

  const rowConflict = grid.rows
    .map((row) => {
      const tensors = grid.cells.filter((c) => c.row === row.key).flatMap((c) => c.tensors);
      return { label: row.label, conflict: combine(tensors, conflictSpec) };
    })
    .filter((r) => Number.isFinite(r.conflict))
    .sort((x, y) => y.conflict - x.conflict);
  const moduleConflict = grid.modules
    .map((module) => {
      const tensors = grid.cells.filter((c) => c.module === module).flatMap((c) => c.tensors);
      return { module, conflict: combine(tensors, conflictSpec) };
    })
    .filter((m) => Number.isFinite(m.conflict))
    .sort((x, y) => y.conflict - x.conflict);

  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  // No weight changed by both fine-tunes: nothing can conflict.
  const overlap = Number.isFinite(signAgreement);
  const disagreement = overlap ? 1 - signAgreement : 0;
  const level: InterferenceLevel = disagreement >= HIGH_DISAGREEMENT ? 'high' : disagreement <= LOW_DISAGREEMENT ? 'low' : 'moderate';
  const guidance = [
    overlap
      ? `Where both fine-tunes changed a weight, their updates point in opposite directions ${pct(disagreement)} of the time (50% would mean unrelated updates); ${pct(conflict)} of all weights are in conflict.`
      : 'No weight was changed by both fine-tunes, so their updates cannot conflict.',
    `Task vector cosine: ${formatValue(cosineTv)}${cosineTv < 0 ? ' (opposing updates overall)' : Math.abs(cosineTv) < 0.1 ? ' (nearly orthogonal updates)' : ''}.`,
  ];
  if (rowConflict.length > 0) {
    guidance.push(`Most conflict in layer${rowConflict.length > 1 ? 's' : ''} ${rowConflict.slice(0, 3).map((r) => `${r.label} (${pct(r.conflict)})`).join(', ')}.`);
  }
  if (moduleConflict.length > 0) {
    guidance.push(`By module: ${moduleConflict.slice(0, 3).map((m) => `${m.module} (${pct(m.conflict)})`).join(', ')}.`);
  }
  if (level === 'high') {
    guidance.push(
      `High conflict (disagreement ≥ ${pct(HIGH_DISAGREEMENT)}): a plain average (linear or task arithmetic) cancels much of both updates. TIES or DARE with density ≈ 0.5 trims small deltas and elects one sign per weight.`,
    );
  } else if (level === 'moderate') {
    guidance.push(`Moderate conflict: task arithmetic is a reasonable start; try TIES (density ≈ 0.5) if the merge loses either skill.`);
  } else {
    guidance.push(`Low conflict (disagreement ≤ ${pct(LOW_DISAGREEMENT)}): the updates mostly agree, so linear or task arithmetic merging is fine.`);
  }
  return { conflict, signAgreement, cosineTv, level, topRows: rowConflict.slice(0, 3), topModules: moduleConflict.slice(0, 3), guidance };
}

// ---- export and formatting ----

const CSV_COLUMNS = ['name', 'layer', 'module', 'numel', 'l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'mean_diff', 'std_diff'] as const;
const CSV_BASE_COLUMNS = ['cosine_tv', 'sign_agreement', 'conflict', 'rel_norm_a', 'rel_norm_b'] as const;

export function reportToCsv(report: DiffReport): string {
  const withBase = report.tensors.some((t) => t.conflict !== undefined);
  const columns: (keyof TensorDiff)[] = [...CSV_COLUMNS, ...(withBase ? CSV_BASE_COLUMNS : []), 'sampled'];
  const cell = (value: unknown): string => {
    if (value === undefined || value === null) return '';
    const text = String(value);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [columns.join(',')];
  for (const t of report.tensors) lines.push(columns.map((c) => cell(c === 'sampled' ? Boolean(t.sampled) : t[c])).join(','));
  return lines.join('\n') + '\n';
}

/** Four significant digits; exponent notation for very small or large magnitudes. */
export function formatValue(value: number | null | undefined): string {
  if (value === undefined || value === null) return '—';
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '−∞';
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude < 1e-3 || magnitude >= 1e5) return value.toExponential(3);
  return Number(value.toPrecision(4)).toString();
}

