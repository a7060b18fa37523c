// Every merge method against small cases computed by hand (values chosen so float32 rounding is
// exact or negligible), run through the method's own stages and apply on one chunk.
import assert from 'node:assert/strict';
import test from 'node:test';
import { findMethod, MERGE_METHODS } from '../../src/core/merge';
import type { ChunkData, Found, ParamValues, TensorView } from '../../src/core/merge/methods/types';

interface Case {
  base?: number[];
  target?: number[];
  models: number[][];
  globals?: ParamValues;
  perModel?: ParamValues[];
  shape?: number[];
  seed?: number;
}

/** Runs a method's stages and apply over the whole tensor as one chunk, with its declared defaults. */
function run(name: string, c: Case): number[] {
  const method = findMethod(name);
  assert.ok(method, `method ${name} is registered`);
  const numel = c.models[0].length;
  const shape = c.shape ?? [numel];
  const globals: ParamValues = {};
  for (const p of method.parameters) if (p.default !== undefined) globals[p.name] = p.default;
  Object.assign(globals, c.globals);
  const perModel = c.models.map((_, i) => {
    const values: ParamValues = {};
    for (const p of method.tensorParameters) if (p.default !== undefined) values[p.name] = p.default;
    return Object.assign(values, c.perModel?.[i]);
  });
  const view: TensorView = {
    name: 'model.layers.0.mlp.down_proj.weight', shape, numel, rowLength: shape[shape.length - 1], models: c.models.length, hasBase: !!c.base,
    globals, perModel, seed: c.seed ?? 0, streams: c.models.map((_, i) => 1000 + i),
  };
  const problem = method.check?.(view);
  if (problem) throw new Error(problem);
  const chunk: ChunkData = {
    start: 0, count: numel, base: c.base ? Float32Array.from(c.base) : undefined, target: c.target ? Float32Array.from(c.target) : undefined,
    models: c.models.map((m) => Float32Array.from(m)),
  };
  const found: Found = {};
  for (let stage = method.kernel.nextStage?.(view, found); stage; stage = method.kernel.nextStage?.(view, found)) {
    found[stage.id] = stage.finalize(stage.map(view, found, chunk), view, found);
  }
  const out = new Float32Array(numel);
  method.kernel.apply(view, found, chunk, out);
  return Array.from(out);
}

function close(actual: number[], expected: number[], tolerance = 1e-6): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])), `element ${i}: ${a} vs ${expected[i]} (all: ${actual})`));
}

test('linear: weighted average, normalised by default', () => {
  assert.deepEqual(run('linear', { models: [[1, 2], [3, 6]], perModel: [{ weight: 1 }, { weight: 3 }] }), [2.5, 5]);
  assert.deepEqual(run('linear', { models: [[1, 2], [3, 6]], perModel: [{ weight: 1 }, { weight: 3 }], globals: { normalize: false } }), [10, 20]);
  assert.throws(() => run('linear', { models: [[1], [2]], perModel: [{ weight: 1 }, { weight: -1 }] }), /sum to 0/);
});

test('task_arithmetic: base + sum w_i (x_i - base); negative weights subtract', () => {
  assert.deepEqual(run('task_arithmetic', { base: [1, 1, 1], models: [[2, 0, 1], [1, 3, 1]], perModel: [{ weight: 1 }, { weight: -0.5 }] }), [2, -1, 1]);
});

test('ties (mergekit): top-k per task vector, sign of the weighted sum, mean over agreeing weights', () => {
  const models = [[3, -1, 2, -4], [-2, 5, 1, 1], [1, 1, -3, 2]];
  const perModel = models.map(() => ({ weight: 1, density: 0.5 }));
  assert.deepEqual(run('ties', { base: [0, 0, 0, 0], models, perModel }), [3, 5, -3, -4]);
  // Weight 2 on the first model: element 0 keeps 2*3 = 6 and divides by its weight 2 when normalising.
  const weighted = [{ weight: 2, density: 0.5 }, { weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }];
  assert.deepEqual(run('ties', { base: [0, 0, 0, 0], models, perModel: weighted }), [3, 5, -3, -4]);
  assert.deepEqual(run('ties', { base: [0, 0, 0, 0], models, perModel: weighted, globals: { normalize: false } }), [6, 5, -3, -8]);
  // Equal magnitudes: the lower index wins a place in the top-k.
  assert.deepEqual(run('ties', { base: [0, 0, 0, 0], models: [[1, -1, 1, 1]], perModel: [{ weight: 1, density: 0.5 }] }), [1, -1, 0, 0]);
  // Per-model densities.
  assert.deepEqual(run('ties', { base: [0, 0, 0, 0], models: [[4, 3, 2, 1], [4, 3, 2, 1]], perModel: [{ weight: 1, density: 0.25 }, { weight: 1, density: 0.75 }] }), [4, 3, 2, 0]);
});

test('ties (peft): sign elected on unweighted pruned deltas, total or frequency, averaged over agreeing models', () => {
  const c = { base: [0], models: [[5], [-1], [-1]], perModel: [{ weight: 1 }, { weight: 1 }, { weight: 1 }] };
  assert.deepEqual(run('ties', { ...c, globals: { semantics: 'peft', majority_sign_method: 'total' } }), [5]);
  assert.deepEqual(run('ties', { ...c, globals: { semantics: 'peft', majority_sign_method: 'frequency' } }), [-1]);
  // Weighted kept deltas divided by the number of agreeing models, not by their weights.
  assert.deepEqual(run('ties', { base: [0], models: [[2], [4]], perModel: [{ weight: 0.5 }, { weight: 1 }], globals: { semantics: 'peft' } }), [2.5]);
});

test('magnitude_prune: prune each task vector to density, then a weighted sum', () => {
  assert.deepEqual(run('magnitude_prune', { base: [0, 0, 0, 0], models: [[4, -1, 2, 0.5]], perModel: [{ weight: 0.5, density: 0.5 }] }), [2, 0, 1, 0]);
});

test('breadcrumbs: drops the gamma largest and the smallest to reach density', () => {
  const d = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.deepEqual(run('breadcrumbs', { base: d.map(() => 0), models: [d], perModel: [{ weight: 1, density: 0.5, gamma: 0.1 }] }), [0, 0, 0, 0, 5, 6, 7, 8, 9, 0]);
  // density + gamma > 1: fewer large ones are dropped so that density is met.
  assert.deepEqual(run('breadcrumbs', { base: d.map(() => 0), models: [d], perModel: [{ weight: 1, density: 0.95, gamma: 0.2 }] }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
  // Ties rank by index (ascending, lower first): of four equal magnitudes the first two are dropped.
  assert.deepEqual(run('breadcrumbs', { base: [0, 0, 0, 0], models: [[1, 1, 1, 1]], perModel: [{ weight: 1, density: 0.5, gamma: 0 }] }), [0, 0, 1, 1]);
});

test('dare: keeps about density of the entries, rescaled by 1/density, reproducibly from the seed', () => {
  const n = 100_000;
  const models = [Array.from({ length: n }, () => 1)];
  const base = Array.from({ length: n }, () => 0);
  const a = run('dare_linear', { base, models, perModel: [{ weight: 1, density: 0.3 }], seed: 7 });
  const kept = a.filter((v) => v !== 0);
  assert.ok(Math.abs(kept.length / n - 0.3) < 0.01, `kept ${kept.length / n}`);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.3) < 1e-6));
  assert.deepEqual(run('dare_linear', { base, models, perModel: [{ weight: 1, density: 0.3 }], seed: 7 }), a);
  assert.notDeepEqual(run('dare_linear', { base, models, perModel: [{ weight: 1, density: 0.3 }], seed: 8 }), a);
  assert.deepEqual(run('dare_linear', { base: [1, 2], models: [[2, 0]], perModel: [{ weight: 1, density: 1 }] }), [2, 0], 'density 1 is task arithmetic');
});

test('della: keep probability rises with magnitude rank within a row, rescaled by it', () => {
  const row = Array.from({ length: 1000 }, (_, i) => i + 1);
  const rows = 200;
  const models = [Array.from({ length: rows }, () => row).flat()];
  const out = run('della_linear', { base: models[0].map(() => 0), models, shape: [rows, 1000], perModel: [{ weight: 1, density: 0.5, epsilon: 0.4 }] });
  let small = 0;
  let large = 0;
  out.forEach((v, i) => {
    const rank = i % 1000;
    if (rank < 100 && v !== 0) small++;
    if (rank >= 900 && v !== 0) large++;
    if (v !== 0) {
      const p = Math.fround(0.1 + (rank / 999) * 0.8);
      assert.ok(Math.abs(v - (rank + 1) / p) < 1e-3 * v, `rescaled by its probability at rank ${rank}`);
    }
  });
  assert.ok(small / (rows * 100) < 0.2 && large / (rows * 100) > 0.8, `small ${small} large ${large}`);
  assert.throws(() => run('della', { base: [0, 0], models: [[1, 2]], perModel: [{ weight: 1, density: 0.1, epsilon: 0.2 }] }), /epsilon/);
});

test('slerp: great-circle interpolation, lerp when nearly parallel; the base is the t = 0 end', () => {
  close(run('slerp', { models: [[1, 0], [0, 1]], globals: { t: 0.5 } }), [Math.SQRT1_2, Math.SQRT1_2]);
  close(run('slerp', { models: [[1, 0], [0, 1]], globals: { t: 0 } }), [1, 0]);
  close(run('slerp', { models: [[1, 1], [2, 2]], globals: { t: 0.25 } }), [1.25, 1.25]);
  close(run('slerp', { models: [[2, 0], [0, 1]], globals: { t: 0.5 } }), [2 * Math.SQRT1_2, Math.SQRT1_2], 1e-6);
});

test('nuslerp: t from the weights, of task vectors when there is a base, per row without flattening', () => {
  close(run('nuslerp', { models: [[1, 0], [0, 1]], perModel: [{ weight: 1 }, { weight: 3 }] }), [Math.sin(Math.PI / 8), Math.sin((3 * Math.PI) / 8)]);
  close(run('nuslerp', { base: [1, 1], models: [[2, 1], [1, 2]], perModel: [{ weight: 1 }, { weight: 1 }] }), [1 + Math.SQRT1_2, 1 + Math.SQRT1_2]);
  // Rows interpolate separately: row 0 is parallel (lerp), row 1 orthogonal.
  close(run('nuslerp', { models: [[1, 0, 1, 0], [2, 0, 0, 1]], shape: [2, 2], perModel: [{ weight: 1 }, { weight: 1 }], globals: { nuslerp_flatten: false } }), [1.5, 0, Math.SQRT1_2, Math.SQRT1_2]);
});

test('nuslerp_row_wise: each column interpolates separately (mergekit dim 0), like rows of the transpose', () => {
  const columns = { nuslerp_flatten: false, nuslerp_row_wise: true };
  // Column 0 is (1, 0) and (0, 1), column 1 is (2, 0) and (0, 3): both pairs orthogonal.
  close(run('nuslerp', { models: [[1, 2, 0, 0], [0, 0, 1, 3]], shape: [2, 2], perModel: [{ weight: 1 }, { weight: 1 }], globals: columns }),
    [Math.SQRT1_2, 2 * Math.SQRT1_2, Math.SQRT1_2, 3 * Math.SQRT1_2]);
  // Against rows of the transposed tensors, with a base and uneven weights.
  const rows = 5;
  const cols = 3;
  const random = (seed: number) => Array.from({ length: rows * cols }, (_, i) => Math.fround(Math.sin(seed * 12.9898 + i * 78.233) * 2));
  const transpose = (m: number[]) => Array.from({ length: rows * cols }, (_, i) => m[(i % rows) * cols + Math.floor(i / rows)]);
  const [base, a, b] = [random(1), random(2), random(3)];
  const perModel = [{ weight: 0.3 }, { weight: 0.9 }];
  const byColumns = run('nuslerp', { base, models: [a, b], shape: [rows, cols], perModel, globals: columns });
  const byRowsOfTranspose = run('nuslerp', { base: transpose(base), models: [transpose(a), transpose(b)], shape: [cols, rows], perModel, globals: { nuslerp_flatten: false } });
  const back = Array.from({ length: rows * cols }, (_, i) => byRowsOfTranspose[(i % cols) * rows + Math.floor(i / cols)]);
  close(byColumns, back, 1e-6);
  // A vector has one column: the whole vector, as with flattening.
  close(run('nuslerp', { models: [a.slice(0, 4), b.slice(0, 4)], perModel, globals: columns }), run('nuslerp', { models: [a.slice(0, 4), b.slice(0, 4)], perModel }), 1e-6);
});

test('multislerp and karcher: orthogonal unit vectors average to the diagonal on the sphere', () => {
  close(run('multislerp', { models: [[1, 0], [0, 1]], perModel: [{ weight: 1 }, { weight: 1 }] }), [Math.SQRT1_2, Math.SQRT1_2]);
  close(run('karcher', { models: [[1, 0], [0, 1]] }), [Math.SQRT1_2, Math.SQRT1_2], 1e-5);
  // Karcher of three vectors on a circle arc: the middle one, scaled by the mean norm (1).
  close(run('karcher', { models: [[1, 0], [Math.SQRT1_2, Math.SQRT1_2], [0, 1]] }), [Math.SQRT1_2, Math.SQRT1_2], 1e-5);
});

test('model_stock: t = N cos / (1 + (N-1) cos) between the fine-tunes\' mean and the base', () => {
  close(run('model_stock', { base: [0, 0], models: [[1, 0], [0, 1]] }), [0, 0]);
  close(run('model_stock', { base: [0, 0], models: [[1, 1], [1, 1]] }), [1, 1]);
  const cos = Math.SQRT1_2;
  const t = (2 * cos) / (1 + cos);
  close(run('model_stock', { base: [0, 0], models: [[1, 0], [1, 1]] }), [t, t * 0.5], 1e-6);
  // Per row: row 0 agrees fully, row 1 is orthogonal.
  close(run('model_stock', { base: [0, 0, 0, 0], models: [[1, 1, 1, 0], [1, 1, 0, 1]], shape: [2, 2], globals: { filter_wise: true } }), [1, 1, 0, 0]);
});

test('sce: energy-weighted average of the entries that agree with the elected sign', () => {
  const w1 = 2.5 / 9;
  const w2 = 6.5 / 9;
  close(run('sce', { base: [0, 0], models: [[2, -1], [2, 3]] }), [(2 * w1 + 2 * w2) / (w1 + w2), 3]);
  // select_topk keeps the highest-variance share of the entries whose variance is not zero:
  // element 1 (variance 4) over element 2 (0.25); element 0 (variance 0) never counts.
  close(run('sce', { base: [0, 0, 0], models: [[2, -1, 1], [2, 3, 0]], globals: { select_topk: 0.5 } }), [0, 3, 0]);
});

test('nearswap: takes the other model within t of the base, moves toward it by t / |difference| beyond', () => {
  close(run('nearswap', { base: [0, 0], models: [[0.05, 1]], globals: { t: 0.1 } }), [0.05, 0.1]);
});

test('pcb: one task vector [1, 0] gets balancing scores (e/(e+1))^2 and (1/(e+1))^2', () => {
  const e = Math.E;
  const b0 = (e / (e + 1)) ** 2;
  const b1 = (1 / (e + 1)) ** 2;
  close(run('pcb', { base: [0, 0], models: [[1, 0]], globals: { density: 1 } }), [b0 / (b0 + b1), 0], 1e-6);
  close(run('pcb', { base: [0, 0], models: [[1, 0]], globals: { density: 0.5, weight: 2 } }), [2, 0], 1e-6);
});

test('passthrough and diff_transfer', () => {
  assert.deepEqual(run('passthrough', { models: [[1, -2]] }), [1, -2]);
  assert.deepEqual(run('passthrough', { models: [[1, -2]], perModel: [{ scale: 0.5 }] }), [0.5, -1]);
  assert.deepEqual(run('diff_transfer', { base: [1, 1], target: [2, 3], models: [[1.5, 0]] }), [2.5, 2]);
  assert.deepEqual(run('diff_transfer', { base: [1, 1], target: [2, 3], models: [[1.5, 0]], perModel: [{ weight: 2 }] }), [3, 1]);
});

test('every registered method has a summary, documented parameters and a hand-computed case above', () => {
  const covered = new Set(['linear', 'task_arithmetic', 'ties', 'magnitude_prune', 'breadcrumbs', 'dare_linear', 'della_linear', 'della', 'slerp', 'nuslerp', 'multislerp', 'karcher', 'model_stock', 'sce', 'nearswap', 'pcb', 'passthrough', 'diff_transfer', 'dare_ties', 'breadcrumbs_ties']);
  for (const m of MERGE_METHODS) {
    assert.ok(m.summary.length > 20, `${m.name} has a summary`);
    for (const p of [...m.parameters, ...m.tensorParameters]) assert.ok(p.doc.length > 5, `${m.name}.${p.name} is documented`);
    assert.ok(covered.has(m.name), `${m.name} has a case`);
  }
  // dare_ties and breadcrumbs_ties combine pieces tested above; check the combination once.
  assert.deepEqual(run('breadcrumbs_ties', { base: [0, 0, 0, 0], models: [[1, 2, 3, 4], [-4, -3, 2, 1]], perModel: [{ weight: 1, density: 0.5, gamma: 0.25 }, { weight: 1, density: 0.5, gamma: 0.25 }] }), [0, -3, 5, 0]);
  assert.deepEqual(run('dare_ties', { base: [0, 0], models: [[1, -2], [3, 1]], perModel: [{ weight: 1, density: 1 }, { weight: 1, density: 1 }] }), [4, -2]);
});
