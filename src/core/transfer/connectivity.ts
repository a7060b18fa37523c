// Whether a fine-tune's diff vector can move to a new base version: fine-tuning transfer
// (B2 + s (X - B)) works when B and B2 are linearly connected, so before running it Graft measures,
// per layer, the cosine between the base update (B2 - B) and the fine-tune diff (X - B), their
// norms relative to B, and the share of tensors whose names or shapes changed between B and B2.
// The figures come from the diff engine (a = B2, b = X over base B), aggregated exactly by layer.
import type { TaskRunner } from '../engine/pool';
import { diffCheckpoints } from '../diff/diff';
import type { DiffTasks } from '../diff/tasks';
import type { TensorDiff } from '../diff/types';
import { NON_LAYER_GROUP, parseTensorName } from '../tensors/names';
import { fixedNoNegativeZero } from '../format';
import type { CheckpointLayout } from '../safetensors/types';
import type { ConnectivityCell, ConnectivityLayer, ConnectivityReport, TransferVerdict } from './types';

export type { ConnectivityCell, ConnectivityLayer, ConnectivityReport, TransferVerdict };

/** ||B2 - B|| / ||B|| above this: the bases are far apart and the transfer is risky. */
export const FAR_APART = 0.3;
/** ||B2 - B|| / ||B|| above this: worth a warning, not a verdict. */
export const MODERATELY_APART = 0.1;
/** A layer whose base update points against the fine-tune by this much (cosine below minus this) undoes it. */
export const CONFLICT_COSINE = 0.3;
/** Overall cosine above this: the new base already moved the fine-tune's way; the full diff overshoots. */
export const OVERLAP_COSINE = 0.5;

interface Sums {
  tensors: number;
  dot: number;
  da2: number;
  db2: number;
  c2: number;
}

function addTensor(s: Sums, t: TensorDiff): void {
  const da = t.norm_tv_a ?? 0;
  const db = t.norm_tv_b ?? 0;
  s.tensors++;
  s.dot += (t.cosine_tv ?? 0) * da * db;
  s.da2 += da * da;
  s.db2 += db * db;
  s.c2 += (t.norm_base ?? 0) ** 2;
}

function ratio(x2: number, ref2: number): number | null {
  return ref2 > 0 ? Math.sqrt(x2 / ref2) : x2 === 0 ? 0 : null;
}

function cosineOf(s: Sums): number {
  if (s.da2 > 0 && s.db2 > 0) return Math.min(1, Math.max(-1, s.dot / Math.sqrt(s.da2) / Math.sqrt(s.db2)));
  return s.da2 === 0 && s.db2 === 0 ? 1 : 0;
}

function structureOf(a: CheckpointLayout, b: CheckpointLayout): { tensors: number; changed: string[] } {
  const inA = new Map(a.tensors.map((t) => [t.name, t.shape.join(',')]));
  const inB = new Map(b.tensors.map((t) => [t.name, t.shape.join(',')]));
  const names = new Set([...inA.keys(), ...inB.keys()]);
  const changed = [...names].filter((n) => inA.get(n) !== inB.get(n));
  return { tensors: names.size, changed };
}

const pct = (x: number | null) => (x === null ? 'unbounded' : `${(x * 100).toFixed(1)}%`);

export async function connectivityReport(runner: TaskRunner<DiffTasks>, layouts: { finetune: CheckpointLayout; from: CheckpointLayout; to: CheckpointLayout }, options: { signal?: AbortSignal; onProgress?: (f: number) => void } = {}): Promise<ConnectivityReport> {
  const { finetune, from, to } = layouts;
  const diff = await diffCheckpoints(runner, to, finetune, { base: from, signal: options.signal, onProgress: options.onProgress });
  const total: Sums = { tensors: 0, dot: 0, da2: 0, db2: 0, c2: 0 };
  const rows = new Map<string, Sums & { group: string; layer: number | null }>();
  const cells: ConnectivityCell[] = [];
  for (const t of diff.tensors) {
    if (t.cosine_tv === undefined) continue;
    const { group, layer, module } = parseTensorName(t.name);
    const key = `${group}\u0000${layer}`;
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { group, layer, tensors: 0, dot: 0, da2: 0, db2: 0, c2: 0 }));
    addTensor(row, t);
    addTensor(total, t);
    cells.push({
      name: t.name, group, layer, module, cosine: t.cosine_tv, baseUpdate: t.rel_norm_a ?? null, finetuneDiff: t.rel_norm_b ?? null,
      numel: t.numel, norms: { baseUpdate: t.norm_tv_a ?? 0, finetuneDiff: t.norm_tv_b ?? 0, base: t.norm_base ?? 0 },
    });
  }
  const layers = [...rows.values()]
    .sort((x, y) => (x.group === NON_LAYER_GROUP ? 1 : 0) - (y.group === NON_LAYER_GROUP ? 1 : 0) || x.group.localeCompare(y.group) || (x.layer ?? -1) - (y.layer ?? -1))
    .map((r) => ({ group: r.group, layer: r.layer, tensors: r.tensors, cosine: cosineOf(r), baseUpdate: ratio(r.da2, r.c2), finetuneDiff: ratio(r.db2, r.c2) }));
  const overall = { cosine: cosineOf(total), baseUpdate: ratio(total.da2, total.c2), finetuneDiff: ratio(total.db2, total.c2) };

  const bases = structureOf(from, to);
  const ftStructure = structureOf(from, finetune);
  const structure = {
    tensors: bases.tensors,
    changed: bases.changed.length,
    share: bases.tensors > 0 ? bases.changed.length / bases.tensors : 0,
    examples: bases.changed.slice(0, 5),
    finetuneMismatch: ftStructure.changed.length,
  };

  const reasons: string[] = [];
  const warnings: string[] = [];
  let verdict: TransferVerdict = 'likely-safe';
  const layerName = (l: ConnectivityLayer) => (l.layer === null ? l.group : `layer ${l.layer}${l.group === 'layers' ? '' : ` of ${l.group}`}`);
  if (structure.changed > 0) {
    verdict = 'not-applicable';
    reasons.push(`${structure.changed} of ${structure.tensors} tensors (${pct(structure.share)}) changed name or shape between the two bases (e.g. ${structure.examples.join(', ')}): the diff cannot be added to them.`);
  }
  if (structure.finetuneMismatch > 0) {
    verdict = 'not-applicable';
    reasons.push(`${structure.finetuneMismatch} tensors differ in name or shape between the fine-tune and its old base: it is not a plain fine-tune of it.`);
  }
  if (verdict !== 'not-applicable' && total.db2 === 0) {
    verdict = 'not-applicable';
    reasons.push('The fine-tune is identical to its old base: there is no diff to transfer.');
  }
  if (verdict !== 'not-applicable') {
    const conflicting = layers.filter((l) => l.cosine < -CONFLICT_COSINE);
    if (overall.baseUpdate === null || overall.baseUpdate > FAR_APART) {
      verdict = 'risky';
      reasons.push(`The bases are far apart: the update B2 - B is ${pct(overall.baseUpdate)} of B's norm (above ${FAR_APART * 100}%), so they may not be linearly connected.`);
      warnings.push(`The two bases are far apart (||B2 - B|| / ||B|| = ${pct(overall.baseUpdate)}).`);
    } else if (overall.baseUpdate > MODERATELY_APART) {
      warnings.push(`The bases are moderately apart (||B2 - B|| / ||B|| = ${pct(overall.baseUpdate)}); check the result on your evaluations.`);
    }
    if (conflicting.length > 0) {
      verdict = 'risky';
      reasons.push(`In ${conflicting.length} layer${conflicting.length === 1 ? '' : 's'} the base update points against the fine-tune (cosine ${conflicting.slice(0, 3).map((l) => `${fixedNoNegativeZero(l.cosine, 2)} in ${layerName(l)}`).join(', ')}): the new base undoes part of what fine-tuning did there.`);
    }
    if (overall.cosine > OVERLAP_COSINE) {
      verdict = 'risky';
      reasons.push(`The new base already moved in the fine-tune's direction (cosine ${fixedNoNegativeZero(overall.cosine, 2)}): adding the whole diff overshoots; try --scale below 1.`);
    }
    if (verdict === 'likely-safe') {
      reasons.push(`The bases are close (||B2 - B|| / ||B|| = ${pct(overall.baseUpdate)}, the fine-tune diff is ${pct(overall.finetuneDiff)}), the base update is nearly independent of the fine-tune (cosine ${fixedNoNegativeZero(overall.cosine, 2)} overall, ${fixedNoNegativeZero(Math.min(...layers.map((l) => l.cosine)), 2)} to ${fixedNoNegativeZero(Math.max(...layers.map((l) => l.cosine)), 2)} by layer) and no tensor changed name or shape.`);
    }
  }
  return { finetune: finetune.path, from: from.path, to: to.path, overall, layers, cells, structure, verdict, reasons, warnings };
}
