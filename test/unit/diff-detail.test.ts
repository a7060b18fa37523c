// The tensor detail kernel (histogram of b - a, per-row change profile) checked against a direct
// full-array computation written here, against torch's figures in golden/diff_metrics.json, and
// on small hand-made files with known answers. Then the Compare view's model (webview/compare/
// model.ts, free of DOM): the heatmap grid, cell aggregation, colour domains, ranking, merge
// guidance and CSV, on real reports of the zoo.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { diffCheckpoints, diffTasks } from '../../src/core/diff';
import { DETAIL_ROW_BUCKETS, tensorDiffDetail } from '../../src/core/diff/detail';
import { diffDetailTasks } from '../../src/core/diff/detailTasks';
import { InlineRunner } from '../../src/core/engine/pool';
import { CancelledError, inlineContext } from '../../src/core/engine/task';
import { openCheckpoint, writeSafetensors } from '../../src/core/safetensors';
import type { TensorRef } from '../../src/core/safetensors/types';
import type { DiffReport, TensorDiff } from '../../src/core/diff/types';
import type { TensorDiffDetail } from '../../src/core/diff/types';
import { buildGrid, cellValue, colourDomain, combine, metricOf, metricSpec, rankTensors, reportToCsv, summarizeInterference, type Cell } from '../../webview/compare/model';
import { fixture, tempDir } from './helpers';

const BASE = fixture('zoo', 'workspace', 'models', 'tiny-llama-base', 'model.safetensors');
const MATH = fixture('zoo', 'workspace', 'models', 'tiny-llama-math', 'model.safetensors');
const golden = JSON.parse(fs.readFileSync(fixture('golden', 'diff_metrics.json'), 'utf8')) as Record<string, Record<string, { l2_diff: number; rel_l2: number; max_abs_diff: number; frac_changed: number; numel: number }>>;

/** Reads a whole bf16/f32 tensor straight from the file, without the project's reader. */
function readWhole(file: string, name: string): { shape: number[]; values: Float64Array } {
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const entry = header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
  const begin = 8 + headerLength + entry.data_offsets[0];
  const end = 8 + headerLength + entry.data_offsets[1];
  const view = new DataView(bytes.buffer, bytes.byteOffset + begin, end - begin);
  const scratch = new DataView(new ArrayBuffer(4));
  const width = entry.dtype === 'F32' ? 4 : 2;
  const values = new Float64Array((end - begin) / width);
  for (let i = 0; i < values.length; i++) {
    if (entry.dtype === 'F32') values[i] = view.getFloat32(i * 4, true);
    else if (entry.dtype === 'BF16') {
      scratch.setUint32(0, view.getUint16(i * 2, true) << 16);
      values[i] = scratch.getFloat32(0);
    } else throw new Error(`test reader: unexpected dtype ${entry.dtype}`);
  }
  return { shape: entry.shape, values };
}

/** The expected detail, computed over the whole arrays at once. */
function directDetail(a: Float64Array, b: Float64Array, shape: number[], bins: number) {
  const d = Array.from(b, (x, i) => x - a[i]);
  const finite = d.filter(Number.isFinite);
  const min = finite.length ? Math.min(...finite) : 0;
  const max = finite.length ? Math.max(...finite) : 0;
  const counts = new Array<number>(bins).fill(0);
  // Bin i holds min + i*w <= x < min + (i+1)*w (w = (max-min)/bins); the last bin also holds max.
  const width = (max - min) / bins;
  for (const x of finite) {
    let i = 0;
    while (i < bins - 1 && x >= min + (i + 1) * width) i++;
    counts[i]++;
  }
  const rows = shape.length === 0 ? 1 : shape[0];
  const rowLength = a.length / rows;
  const rowDiff: number[] = [];
  const rowBase: number[] = [];
  for (let r = 0; r < rows; r++) {
    let dd = 0;
    let aa = 0;
    for (let k = r * rowLength; k < (r + 1) * rowLength; k++) {
      if (!Number.isFinite(d[k])) continue;
      dd += d[k] ** 2;
      aa += a[k] ** 2;
    }
    rowDiff.push(dd);
    rowBase.push(aa);
  }
  return {
    min,
    max,
    counts,
    unchanged: d.filter((x) => x === 0).length,
    nonFinite: d.length - finite.length,
    rowDiffSq: rowDiff,
    rowBaseSq: rowBase,
    diffNorm: Math.sqrt(rowDiff.reduce((s, x) => s + x, 0)),
    baseNorm: Math.sqrt(rowBase.reduce((s, x) => s + x, 0)),
  };
}

function close(actual: number, expected: number, rel = 1e-12, label = ''): void {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${label}: ${actual} != ${expected}`);
}

async function refsOf(fileA: string, fileB: string, name: string): Promise<{ a: TensorRef; b: TensorRef }> {
  const [la, lb] = await Promise.all([openCheckpoint(fileA), openCheckpoint(fileB)]);
  const a = la.tensors.find((t) => t.name === name);
  const b = lb.tensors.find((t) => t.name === name);
  assert.ok(a && b, `${name} in both files`);
  return { a, b };
}

function assertMatchesDirect(detail: TensorDiffDetail, a: Float64Array, b: Float64Array, shape: number[], bins: number): void {
  const expected = directDetail(a, b, shape, bins);
  assert.equal(detail.numel, a.length);
  assert.deepEqual(detail.shape, shape);
  assert.equal(detail.histogram.min, expected.min);
  assert.equal(detail.histogram.max, expected.max);
  assert.deepEqual(Array.from(detail.histogram.counts), expected.counts);
  assert.equal(detail.unchanged, expected.unchanged);
  assert.equal(detail.nonFinite, expected.nonFinite);
  close(detail.diffNorm, expected.diffNorm, 1e-12, 'diffNorm');
  close(detail.baseNorm, expected.baseNorm, 1e-12, 'baseNorm');
  const rows = expected.rowDiffSq.length;
  assert.equal(detail.rows.count, rows);
  if (rows <= DETAIL_ROW_BUCKETS) {
    assert.equal(detail.rows.diffNorm.length, rows);
    for (let r = 0; r < rows; r++) {
      assert.equal(detail.rows.start[r], r);
      close(detail.rows.diffNorm[r], Math.sqrt(expected.rowDiffSq[r]), 1e-12, `row ${r} diff`);
      close(detail.rows.baseNorm[r], Math.sqrt(expected.rowBaseSq[r]), 1e-12, `row ${r} base`);
    }
  }
}

const ZOO_TENSORS = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.3.mlp.down_proj.weight', 'lm_head.weight', 'model.norm.weight', 'model.embed_tokens.weight'];

for (const name of ZOO_TENSORS) {
  test(`zoo base vs math, ${name}: matches a direct computation and torch's norms`, async () => {
    const { a, b } = await refsOf(BASE, MATH, name);
    const whole = { a: readWhole(BASE, name), b: readWhole(MATH, name) };
    const detail = await tensorDiffDetail({ a, b, bins: 50 }, inlineContext());
    assertMatchesDirect(detail, whole.a.values, whole.b.values, whole.a.shape, 50);

    const reference = golden.base_vs_math[name];
    close(detail.diffNorm, reference.l2_diff, 1e-9, 'l2_diff vs torch');
    close(detail.diffNorm / detail.baseNorm, reference.rel_l2, 1e-9, 'rel_l2 vs torch');
    assert.equal(Math.max(-detail.histogram.min, detail.histogram.max), reference.max_abs_diff);
    close(1 - detail.unchanged / detail.numel, reference.frac_changed, 1e-12, 'frac_changed vs torch');
    assert.equal(detail.histogram.counts.reduce((s, x) => s + x, 0), detail.numel);
  });
}

test('chunk boundaries that cut rows give the same result as one read, and progress reaches 1', async () => {
  const name = 'model.layers.2.mlp.gate_proj.weight'; // [160, 64]
  const { a, b } = await refsOf(BASE, MATH, name);
  const whole = await tensorDiffDetail({ a, b, bins: 33 }, inlineContext());
  const fractions: number[] = [];
  const chunked = await tensorDiffDetail({ a, b, bins: 33, chunkElements: 1000 }, inlineContext(undefined, (f) => fractions.push(f)));
  assert.deepEqual(Array.from(chunked.histogram.counts), Array.from(whole.histogram.counts));
  assert.deepEqual(Array.from(chunked.rows.diffNorm), Array.from(whole.rows.diffNorm));
  assert.deepEqual(Array.from(chunked.rows.baseNorm), Array.from(whole.rows.baseNorm));
  assert.equal(chunked.unchanged, whole.unchanged);
  assert.ok(fractions.length >= 2 * Math.ceil(a.numel / 1000), 'progress per chunk and pass');
  assert.ok(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]), 'progress never goes back');
  assert.equal(fractions[fractions.length - 1], 1);
});

test('runs as the tensorDiffDetail kernel through a TaskRunner', async () => {
  const { a, b } = await refsOf(BASE, MATH, 'model.layers.1.self_attn.v_proj.weight');
  const runner = new InlineRunner(diffDetailTasks);
  const detail = await runner.run('tensorDiffDetail', { a, b, bins: 16 });
  assert.equal(detail.rows.count, 32);
  assert.equal(detail.histogram.counts.length, 16);
});

async function handMade(tensors: { name: string; shape: number[]; a: number[] | Float32Array; b: number[] | Float32Array }[]) {
  const dir = tempDir();
  const write = (file: string, side: 'a' | 'b') =>
    writeSafetensors(
      file,
      tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(Float32Array.from(t[side]).buffer) })),
    );
  const fileA = path.join(dir, 'a.safetensors');
  const fileB = path.join(dir, 'b.safetensors');
  await write(fileA, 'a');
  await write(fileB, 'b');
  return { dir, fileA, fileB };
}

test('more than 1,024 rows are aggregated into 1,024 buckets of consecutive rows with exact norms', async () => {
  const rows = 3000;
  const a = new Float32Array(rows * 2);
  const b = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    a[2 * r] = 1;
    a[2 * r + 1] = 2;
    // Row r changes by (r % 7) in its first element only.
    b[2 * r] = 1 + (r % 7);
    b[2 * r + 1] = 2;
  }
  const { dir, fileA, fileB } = await handMade([{ name: 'w', shape: [rows, 2], a, b }]);
  try {
    const { a: ra, b: rb } = await refsOf(fileA, fileB, 'w');
    const detail = await tensorDiffDetail({ a: ra, b: rb, bins: 7, chunkElements: 777 }, inlineContext());
    assert.equal(detail.rows.count, rows);
    assert.equal(detail.rows.diffNorm.length, DETAIL_ROW_BUCKETS);
    const bucketOf = (r: number) => Math.floor((r * DETAIL_ROW_BUCKETS) / rows);
    const expectedDiff = new Float64Array(DETAIL_ROW_BUCKETS);
    const expectedBase = new Float64Array(DETAIL_ROW_BUCKETS);
    for (let r = 0; r < rows; r++) {
      expectedDiff[bucketOf(r)] += (r % 7) ** 2;
      expectedBase[bucketOf(r)] += 5;
    }
    for (let i = 0; i < DETAIL_ROW_BUCKETS; i++) {
      assert.equal(bucketOf(detail.rows.start[i]), i, `bucket ${i} starts at its first row`);
      if (i > 0) assert.equal(bucketOf(detail.rows.start[i] - 1), i - 1, `bucket ${i - 1} ends right before`);
      close(detail.rows.diffNorm[i], Math.sqrt(expectedDiff[i]), 1e-12, `bucket ${i}`);
      close(detail.rows.baseNorm[i], Math.sqrt(expectedBase[i]), 1e-12, `bucket ${i} base`);
    }
    // Differences 0..6 over 7 bins: one bin per value.
    const perValue = [0, 1, 2, 3, 4, 5, 6].map((v) => Array.from({ length: rows }, (_, r) => r % 7).filter((x) => x === v).length);
    assert.deepEqual(Array.from(detail.histogram.counts), [perValue[0] + rows, ...perValue.slice(1)]);
    assert.equal(detail.unchanged, perValue[0] + rows);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('identical tensors, a scalar, non-finite values and a zero-size tensor', async () => {
  const { dir, fileA, fileB } = await handMade([
    { name: 'same', shape: [2, 3], a: [1, 2, 3, 4, 5, 6], b: [1, 2, 3, 4, 5, 6] },
    { name: 'scalar', shape: [], a: [2], b: [2.5] },
    { name: 'nan', shape: [4], a: [1, Infinity, 0, 1], b: [NaN, Infinity, -0.5, 1.25] },
    { name: 'empty', shape: [0, 4], a: [], b: [] },
  ]);
  try {
    const detailOf = async (name: string, bins = 4) => {
      const { a, b } = await refsOf(fileA, fileB, name);
      return tensorDiffDetail({ a, b, bins }, inlineContext());
    };
    const same = await detailOf('same');
    assert.deepEqual([same.histogram.min, same.histogram.max], [0, 0]);
    assert.deepEqual(Array.from(same.histogram.counts), [6, 0, 0, 0]);
    assert.equal(same.unchanged, 6);
    assert.equal(same.diffNorm, 0);
    assert.deepEqual(Array.from(same.rows.diffNorm), [0, 0]);
    close(same.rows.baseNorm[1], Math.sqrt(16 + 25 + 36));

    const scalar = await detailOf('scalar');
    assert.equal(scalar.rows.count, 1);
    assert.deepEqual(Array.from(scalar.rows.diffNorm), [0.5]);
    assert.deepEqual(Array.from(scalar.histogram.counts), [1, 0, 0, 0]);

    const nan = await detailOf('nan', 3);
    assert.equal(nan.nonFinite, 2, 'NaN - 1 and Infinity - Infinity');
    assert.deepEqual([nan.histogram.min, nan.histogram.max], [-0.5, 0.25]);
    assert.deepEqual(Array.from(nan.histogram.counts), [1, 0, 1]);
    assert.deepEqual(Array.from(nan.rows.diffNorm), [0, 0, 0.5, 0.25]);

    const empty = await detailOf('empty');
    assert.equal(empty.numel, 0);
    assert.equal(empty.rows.count, 0);
    assert.deepEqual(Array.from(empty.histogram.counts), [0, 0, 0, 0]);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('rejects different shapes and bad bin counts with what to do, and stops when cancelled', async () => {
  const { a } = await refsOf(BASE, MATH, 'model.layers.0.self_attn.q_proj.weight');
  const { b } = await refsOf(BASE, MATH, 'model.layers.0.self_attn.k_proj.weight');
  await assert.rejects(tensorDiffDetail({ a, b: { ...b, name: a.name }, bins: 10 }, inlineContext()), /shapes differ \(\[64, 64\] vs \[32, 64\]\).*same shape/);
  await assert.rejects(tensorDiffDetail({ a, b: a, bins: 0 }, inlineContext()), /bins must be a whole number from 1 to 4096/);
  await assert.rejects(tensorDiffDetail({ a, b: a, bins: 2.5 }, inlineContext()), RangeError);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(tensorDiffDetail({ a, b: a, bins: 10 }, inlineContext(controller.signal)), CancelledError);
});

// ---- the Compare view's model ----

const CODE = fixture('zoo', 'workspace', 'models', 'tiny-llama-code');
let reports: Promise<{ baseVsMath: DiffReport; interference: DiffReport }> | undefined;
/** Exact reports of base vs math, and math vs code over base, computed once for these tests. */
function zooReports() {
  reports ??= (async () => {
    const runner = new InlineRunner(diffTasks);
    const [base, math, code] = await Promise.all([openCheckpoint(BASE), openCheckpoint(MATH), openCheckpoint(CODE)]);
    return { baseVsMath: await diffCheckpoints(runner, base, math), interference: await diffCheckpoints(runner, math, code, { base }) };
  })();
  return reports;
}

function cellOf(tensors: TensorDiff[]): Cell {
  return { row: 'test', group: 'layers', layer: 0, module: 'test', tensors, numel: tensors.reduce((n, t) => n + t.numel, 0) };
}

test('the grid has one cell per (layer, module), columns in block order, non-layer tensors in a strip', async () => {
  const { baseVsMath } = await zooReports();
  const grid = buildGrid(baseVsMath);
  assert.deepEqual(grid.rows.map((r) => r.label), ['0', '1', '2', '3', '4', '5']);
  assert.deepEqual(grid.modules, ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'input_layernorm', 'post_attention_layernorm']);
  assert.equal(grid.cells.length, 6 * 9);
  assert.ok(grid.cells.every((c) => c.tensors.length === 1));
  assert.deepEqual(grid.globals.map((c) => c.module).sort(), ['embed_tokens', 'lm_head', 'norm']);
  const q3 = grid.byKey.get('layers:3|self_attn.q_proj')!;
  assert.equal(q3.tensors[0].name, 'model.layers.3.self_attn.q_proj.weight');
  close(cellValue(q3, metricSpec('rel_l2')), golden.base_vs_math['model.layers.3.self_attn.q_proj.weight'].rel_l2, 1e-9, 'rel_l2 of the cell vs torch');
});

test('several tensors in one cell combine exactly: norms, cosine and shares against the raw values', async () => {
  const { baseVsMath } = await zooReports();
  const names = ['model.layers.1.mlp.up_proj.weight', 'model.layers.1.post_attention_layernorm.weight', 'model.layers.4.self_attn.v_proj.weight'];
  const tensors = names.map((n) => baseVsMath.tensors.find((t) => t.name === n)!);
  // Direct: the three tensors as one long vector.
  const a = names.flatMap((n) => Array.from(readWhole(BASE, n).values));
  const b = names.flatMap((n) => Array.from(readWhole(MATH, n).values));
  let diff2 = 0, a2 = 0, b2 = 0, dot = 0, changed = 0;
  a.forEach((x, i) => {
    diff2 += (b[i] - x) ** 2;
    a2 += x * x;
    b2 += b[i] ** 2;
    dot += x * b[i];
    if (b[i] !== x) changed++;
  });
  const cell = cellOf(tensors);
  close(cellValue(cell, metricSpec('rel_l2')), Math.sqrt(diff2) / Math.sqrt(a2), 1e-12, 'rel_l2');
  close(cellValue(cell, metricSpec('cosine')), dot / Math.sqrt(a2 * b2), 1e-12, 'cosine');
  close(cellValue(cell, metricSpec('frac_changed')), changed / a.length, 1e-12, 'frac_changed');
  assert.equal(cellValue(cell, metricSpec('max_abs_diff')), Math.max(...a.map((x, i) => Math.abs(b[i] - x))));
  // Reports without norm_a/norm_b: ||a|| comes back from l2_diff / rel_l2.
  const bare = tensors.map(({ norm_a: _a, norm_b: _b, ...rest }) => rest);
  close(combine(bare, metricSpec('rel_l2')), Math.sqrt(diff2) / Math.sqrt(a2), 1e-12, 'rel_l2 without norms');
});

test('metric values: null rel_l2 is unbounded, missing base metrics are NaN; ranking puts them last', () => {
  const t = (name: string, rel: number | null, cosine: number): TensorDiff => ({ name, layer: 0, module: name, numel: 4, l2_diff: 1, rel_l2: rel, cosine, max_abs_diff: 1, frac_changed: 1, mean_diff: 0, std_diff: 0 });
  const tensors = [t('x', 0.5, 0.9), t('y', null, 0), t('z', 0.1, 0.2)];
  assert.equal(metricOf(tensors[1], 'rel_l2'), Infinity);
  assert.ok(Number.isNaN(metricOf(tensors[0], 'conflict')));
  const report = { a: 'a', b: 'b', tensors, only_in_a: [], only_in_b: [], shape_mismatch: [], summary: { tensors: 3, numel: 12, rel_l2: 1, cosine: 1, frac_changed: 1, mode: 'exact' } } as DiffReport;
  assert.deepEqual(rankTensors(report, metricSpec('rel_l2'), 3).map((x) => x.name), ['y', 'x', 'z']);
  assert.deepEqual(rankTensors(report, metricSpec('cosine'), 2).map((x) => x.name), ['y', 'z'], 'lowest cosine is most changed');
});

test('colour domains: log only over positive values, diverging around the centre, oriented to "more change"', () => {
  assert.deepEqual(colourDomain([0, 0.01, 0.5], metricSpec('rel_l2'), true), { type: 'sequential', domain: [0.01, 0.5], log: true });
  assert.deepEqual(colourDomain([0, 0.01, 0.5], metricSpec('rel_l2'), false), { type: 'sequential', domain: [0, 0.5], log: false });
  assert.deepEqual(colourDomain([-0.2, 0.1, 0.4], metricSpec('cosine_tv'), false), { type: 'diverging', domain: [-0.4, 0, 0.4], log: false });
  assert.deepEqual(colourDomain([0.25, 0.625], metricSpec('sign_agreement'), false), { type: 'diverging', domain: [0.25, 0.5, 0.75], log: false });
  // All cosines near 1: sequential over the data, the lowest (most changed) at the hot end.
  assert.deepEqual(colourDomain([0.9, 0.99, NaN], metricSpec('cosine'), true), { type: 'sequential', domain: [0.99, 0.9], log: false });
});

test('interference summary of math and code over base follows the report and names the worst layers', async () => {
  const { interference } = await zooReports();
  const grid = buildGrid(interference);
  const summary = summarizeInterference(interference, grid)!;
  assert.equal(summary.conflict, interference.summary.conflict);
  assert.equal(summary.signAgreement, interference.summary.sign_agreement);
  // Sign agreement of the whole: golden values per tensor, so check the level against them.
  const perTensor = Object.values(golden.taskvec_math_vs_code).map((g) => (g as unknown as { sign_agreement: number }).sign_agreement);
  assert.ok(Math.min(...perTensor) <= summary.signAgreement && summary.signAgreement <= Math.max(...perTensor));
  assert.equal(summary.level, 1 - summary.signAgreement >= 0.4 ? 'high' : 1 - summary.signAgreement <= 0.2 ? 'low' : 'moderate');
  // The top layers really are the ones with the highest element-weighted conflict.
  const byLayer = grid.rows.map((row) => {
    const cells = grid.cells.filter((c) => c.row === row.key).flatMap((c) => c.tensors);
    const conflicted = cells.reduce((s, t) => s + (t.conflict ?? 0) * t.numel, 0);
    return { label: row.label, conflict: conflicted / cells.reduce((s, t) => s + t.numel, 0) };
  }).sort((x, y) => y.conflict - x.conflict);
  assert.deepEqual(summary.topRows.map((r) => r.label), byLayer.slice(0, 3).map((r) => r.label));
  assert.match(summary.guidance.join(' '), new RegExp(`layers ${byLayer[0].label} \\(`));
  assert.match(summary.guidance.join(' '), summary.level === 'high' ? /TIES or DARE/ : /task arithmetic/);
  assert.equal(summarizeInterference((await zooReports()).baseVsMath, buildGrid((await zooReports()).baseVsMath)), undefined, 'no base, no interference');
});

test('CSV export: one row per tensor, quoted names, base columns only with a base', async () => {
  const { baseVsMath, interference } = await zooReports();
  const lines = reportToCsv(baseVsMath).trimEnd().split('\n');
  assert.equal(lines.length, baseVsMath.tensors.length + 1);
  assert.equal(lines[0], 'name,layer,module,numel,l2_diff,rel_l2,cosine,max_abs_diff,frac_changed,mean_diff,std_diff,sampled');
  assert.match(reportToCsv(interference).split('\n')[0], /,cosine_tv,sign_agreement,conflict,rel_norm_a,rel_norm_b,sampled$/);
  const odd = { ...baseVsMath, tensors: [{ ...baseVsMath.tensors[0], name: 'a,"b"', layer: null }] };
  assert.match(reportToCsv(odd).split('\n')[1], /^"a,""b""",,/);
});
