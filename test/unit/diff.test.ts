import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { diffCacheKey, diffCheckpoints } from '../../src/core/diff/diff';
import { summarizeLayers } from '../../src/core/diff/layers';
import { accumulatePair, accumulatePairBits, accumulateWithBase, accumulateWithBaseBits, emptyPartial } from '../../src/core/diff/metrics';
import { diffTasks, type DiffTasks } from '../../src/core/diff/tasks';
import type { DiffReport, TensorDiff } from '../../src/core/diff/types';
import { InlineRunner, WorkerPool, type RunOptions, type TaskInput, type TaskOutput, type TaskRunner } from '../../src/core/engine/pool';
import { CancelledError } from '../../src/core/engine/task';
import { encodeFromFloat32, openCheckpoint, writeSafetensors } from '../../src/core/safetensors';
import { bf16ToF32Table, f16ToF32Table } from '../../src/core/safetensors/dtypes';
import type { DType } from '../../src/core/safetensors/types';
import { fixture, tempDir, workerScript } from './helpers';

interface GoldenPair {
  l2_diff: number;
  rel_l2: number;
  cosine: number;
  max_abs_diff: number;
  frac_changed: number;
  numel: number;
}
interface GoldenTaskVectors {
  cosine_tv: number;
  sign_agreement: number | null;
}
const golden = JSON.parse(fs.readFileSync(fixture('golden', 'diff_metrics.json'), 'utf8')) as {
  base_vs_math: Record<string, GoldenPair>;
  base_vs_code: Record<string, GoldenPair>;
  base_vs_v2: Record<string, GoldenPair>;
  taskvec_math_vs_code: Record<string, GoldenTaskVectors>;
};

const models = (name: string) => fixture('zoo', 'workspace', 'models', name);
const inline = new InlineRunner(diffTasks);

function close(actual: number | null | undefined, expected: number, what: string, tolerance = 1e-6): void {
  assert.equal(typeof actual, 'number', `${what}: expected a number, got ${actual}`);
  const scale = Math.max(Math.abs(expected), 1e-12);
  // Expected zeros (e.g. a cosine of disjoint changes) are compared absolutely.
  const error = expected === 0 ? Math.abs(actual!) : Math.abs(actual! - expected) / scale;
  assert.ok(error <= tolerance, `${what}: ${actual} vs ${expected} (error ${error})`);
}

function byName(report: DiffReport): Map<string, TensorDiff> {
  return new Map(report.tensors.map((t) => [t.name, t]));
}

function checkPair(report: DiffReport, expected: Record<string, GoldenPair>, label: string): void {
  const tensors = byName(report);
  assert.equal(report.tensors.length, Object.keys(expected).length, `${label}: tensors compared`);
  for (const [name, g] of Object.entries(expected)) {
    const t = tensors.get(name);
    assert.ok(t, `${label}: ${name} missing from the report`);
    assert.equal(t.numel, g.numel, `${label} ${name} numel`);
    close(t.l2_diff, g.l2_diff, `${label} ${name} l2_diff`);
    close(t.rel_l2, g.rel_l2, `${label} ${name} rel_l2`);
    close(t.cosine, g.cosine, `${label} ${name} cosine`);
    close(t.max_abs_diff, g.max_abs_diff, `${label} ${name} max_abs_diff`);
    close(t.frac_changed, g.frac_changed, `${label} ${name} frac_changed`);
  }
}

test('metrics equal the golden figures: base vs math, base vs code (sharded), base vs v2', async () => {
  const base = await openCheckpoint(models('tiny-llama-base'));
  const math = await openCheckpoint(models('tiny-llama-math'));
  const code = await openCheckpoint(models('tiny-llama-code'));
  const v2 = await openCheckpoint(models('tiny-llama-base-v2'));
  assert.equal(code.format, 'safetensors-sharded');

  for (const [other, expected, label] of [[math, golden.base_vs_math, 'base vs math'], [code, golden.base_vs_code, 'base vs code'], [v2, golden.base_vs_v2, 'base vs v2']] as const) {
    const report = await diffCheckpoints(inline, base, other);
    checkPair(report, expected, label);
    assert.deepEqual([report.only_in_a, report.only_in_b, report.shape_mismatch], [[], [], []]);
    assert.equal(report.summary.mode, 'exact');
    assert.equal(report.summary.tensors, 57);
    assert.ok(report.tensors.every((t) => t.sampled === undefined && t.compared === t.numel && t.nonfinite === 0));
  }
});

test('task vectors of math and code over base on a real worker pool equal the golden figures', async () => {
  const pool = new WorkerPool<DiffTasks>({ workerScript, size: 2 });
  try {
    const [base, math, code] = await Promise.all(['tiny-llama-base', 'tiny-llama-math', 'tiny-llama-code'].map((m) => openCheckpoint(models(m))));
    // Small tasks so tensors are split across both workers and merged back.
    for (const taskElements of [undefined, 5000]) {
      const report = await diffCheckpoints(pool, math, code, { base, taskElements, chunkElements: 1024 });
      const tensors = byName(report);
      for (const [name, g] of Object.entries(golden.taskvec_math_vs_code)) {
        const t = tensors.get(name)!;
        close(t.cosine_tv, g.cosine_tv, `${name} cosine_tv`);
        if (g.sign_agreement === null) assert.equal(t.sign_agreement, null, `${name}: no position where both changed`);
        else close(t.sign_agreement, g.sign_agreement, `${name} sign_agreement`);
      }
      assert.equal(report.base, base.path);
      assert.deepEqual(report.base_mismatch, []);
      const s = report.summary;
      assert.ok(s.cosine_tv !== undefined && s.conflict !== undefined && typeof s.sign_agreement === 'number');
      assert.ok(s.rel_norm_a! > 0 && s.rel_norm_b! > 0);
    }
  } finally {
    await pool.dispose();
  }
});

test('how the work is cut (tasks, sub-chunks) does not change the figures', async () => {
  const [base, math, code] = await Promise.all(['tiny-llama-base', 'tiny-llama-math', 'tiny-llama-code'].map((m) => openCheckpoint(models(m))));
  const whole = await diffCheckpoints(inline, math, code, { base });
  const cut = await diffCheckpoints(inline, math, code, { base, taskElements: 3000, chunkElements: 777 });
  const reference = byName(whole);
  for (const t of cut.tensors) {
    const r = reference.get(t.name)!;
    for (const key of ['l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'mean_diff', 'std_diff', 'cosine_tv', 'conflict', 'rel_norm_a', 'rel_norm_b'] as const) {
      close(t[key] as number, r[key] as number, `${t.name} ${key}`, 1e-12);
    }
    assert.equal(t.sign_agreement, r.sign_agreement);
  }
  assert.deepEqual(cut.summary.tensors, whole.summary.tensors);
  close(cut.summary.rel_l2, whole.summary.rel_l2!, 'summary rel_l2', 1e-12);
});

test('the summary is the whole checkpoint as one vector', async () => {
  const [base, math] = await Promise.all(['tiny-llama-base', 'tiny-llama-math'].map((m) => openCheckpoint(models(m))));
  const report = await diffCheckpoints(inline, base, math);
  let diff2 = 0, normA2 = 0, changed = 0, numel = 0;
  for (const g of Object.values(golden.base_vs_math)) {
    diff2 += g.l2_diff ** 2;
    normA2 += (g.l2_diff / g.rel_l2) ** 2;
    changed += g.frac_changed * g.numel;
    numel += g.numel;
  }
  assert.equal(report.summary.numel, numel);
  close(report.summary.rel_l2, Math.sqrt(diff2 / normA2), 'summary rel_l2');
  close(report.summary.frac_changed, changed / numel, 'summary frac_changed');
  close(report.summary.max_abs_diff, Math.max(...Object.values(golden.base_vs_math).map((g) => g.max_abs_diff)), 'summary max');
});

test('summarizeLayers rolls tensors up into exact per-layer figures', async () => {
  const [base, math] = await Promise.all(['tiny-llama-base', 'tiny-llama-math'].map((m) => openCheckpoint(models(m))));
  const report = await diffCheckpoints(inline, base, math);
  const rows = summarizeLayers(report.tensors);
  assert.deepEqual(rows.map((r) => [r.group, r.layer]), [...[0, 1, 2, 3, 4, 5].map((l) => ['layers', l]), ['non-layer', null]]);
  assert.equal(rows.reduce((n, r) => n + r.numel, 0), report.summary.numel);
  for (const row of rows) {
    const members = Object.entries(golden.base_vs_math).filter(([name]) => (row.layer === null ? !name.includes('.layers.') : name.includes(`.layers.${row.layer}.`)));
    assert.equal(row.tensors, members.length);
    const diff2 = members.reduce((s, [, g]) => s + g.l2_diff ** 2, 0);
    const normA2 = members.reduce((s, [, g]) => s + (g.l2_diff / g.rel_l2) ** 2, 0);
    close(row.rel_l2, Math.sqrt(diff2 / normA2), `layer ${row.layer} rel_l2`);
    close(row.frac_changed, members.reduce((s, [, g]) => s + g.frac_changed * g.numel, 0) / row.numel, `layer ${row.layer} frac_changed`);
  }
});

test('quick mode samples each tensor and lands close to the exact figures', async () => {
  const [base, v2] = await Promise.all(['tiny-llama-base', 'tiny-llama-base-v2'].map((m) => openCheckpoint(models(m))));
  const exact = await diffCheckpoints(inline, base, v2);
  const quick = await diffCheckpoints(inline, base, v2, { mode: 'quick' });
  assert.equal(quick.summary.mode, 'quick');
  assert.equal(quick.tensors.length, exact.tensors.length);
  assert.ok(quick.tensors.every((t) => t.sampled === true && t.compared! <= 256 && t.compared! <= t.numel));
  const sampled = quick.tensors.filter((t) => t.compared! < t.numel);
  assert.ok(sampled.length > 40, 'the big tensors are sampled, not read whole');
  close(quick.summary.rel_l2, exact.summary.rel_l2!, 'quick summary rel_l2', 0.05);
  close(quick.summary.cosine, exact.summary.cosine, 'quick summary cosine', 0.005);
  close(quick.summary.frac_changed, exact.summary.frac_changed, 'quick summary frac_changed', 0.02);
  // Norms are scaled up to the whole tensor, so l2_diff estimates the exact one.
  const reference = byName(exact);
  for (const t of sampled) close(t.l2_diff, reference.get(t.name)!.l2_diff, `${t.name} quick l2_diff`, 0.35);
  // Tensors small enough to be taken whole give the exact figures.
  for (const t of quick.tensors.filter((t) => t.compared === t.numel)) close(t.rel_l2, reference.get(t.name)!.rel_l2!, `${t.name} whole`, 1e-12);
});

test('an abort stops the diff mid-way with CancelledError', async () => {
  const [base, v2] = await Promise.all(['tiny-llama-base', 'tiny-llama-base-v2'].map((m) => openCheckpoint(models(m))));
  const controller = new AbortController();
  let last = 0;
  await assert.rejects(
    diffCheckpoints(inline, base, v2, {
      signal: controller.signal,
      taskElements: 4096,
      chunkElements: 512,
      onProgress: (fraction) => {
        last = fraction;
        if (fraction > 0.3) controller.abort();
      },
    }),
    CancelledError,
  );
  assert.ok(last > 0.3 && last < 0.6, `stopped soon after the abort (progress ${last})`);
  await assert.rejects(diffCheckpoints(inline, base, v2, { signal: AbortSignal.abort() }), CancelledError);
});

test('a file that breaks mid-way fails the diff with its own error, not a cancellation', async () => {
  const dir = tempDir();
  try {
    for (const name of ['a', 'b']) fs.copyFileSync(path.join(models('tiny-llama-base'), 'model.safetensors'), path.join(dir, `${name}.safetensors`));
    const [a, b] = await Promise.all(['a', 'b'].map((n) => openCheckpoint(path.join(dir, `${n}.safetensors`))));
    // Truncated after opening: the header promised bytes the file no longer has.
    fs.truncateSync(path.join(dir, 'b.safetensors'), fs.statSync(path.join(dir, 'b.safetensors')).size - 100000);
    // The failing task cancels the queued and running ones; the diff rejects with the cause.
    const pool = new WorkerPool<DiffTasks>({ workerScript, size: 1 });
    try {
      await assert.rejects(diffCheckpoints(pool, a, b, { taskElements: 4096 }), (error: Error) => error.name === 'SafetensorError' && /b\.safetensors.*truncated/.test(error.message));
    } finally {
      await pool.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('an abort cancels the tasks running on the pool', async () => {
  const pool = new WorkerPool<DiffTasks>({ workerScript, size: 2 });
  try {
    const [base, v2] = await Promise.all(['tiny-llama-base', 'tiny-llama-base-v2'].map((m) => openCheckpoint(models(m))));
    const controller = new AbortController();
    const running = diffCheckpoints(pool, base, v2, { signal: controller.signal, taskElements: 2048, chunkElements: 64 });
    setImmediate(() => controller.abort());
    await assert.rejects(running, CancelledError);
    // The pool is still usable afterwards.
    const report = await diffCheckpoints(pool, base, v2);
    assert.equal(report.tensors.length, 57);
  } finally {
    await pool.dispose();
  }
});

interface Spec {
  name: string;
  dtype: DType;
  shape: number[];
  values: number[];
}

async function writeFile(file: string, specs: Spec[]): Promise<void> {
  await writeSafetensors(file, specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, data: encode(s.dtype, s.values) })));
}

function encode(dtype: DType, values: number[]): Uint8Array {
  if (dtype === 'F64') return new Uint8Array(new Float64Array(values).buffer);
  return encodeFromFloat32(dtype, new Float32Array(values));
}

/** A straightforward reference of the metrics over finite pairs, independent of the engine's code. */
function reference(a: number[], b: number[]) {
  const pairs = a.map((x, i) => [x, b[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const norm = (v: number[]) => Math.hypot(...v);
  const d = pairs.map(([x, y]) => y - x);
  const mean = d.reduce((s, v) => s + v, 0) / d.length;
  return {
    l2_diff: norm(d),
    rel_l2: norm(d) / norm(pairs.map(([x]) => x)),
    cosine: pairs.reduce((s, [x, y]) => s + x * y, 0) / norm(pairs.map(([x]) => x)) / norm(pairs.map(([, y]) => y)),
    max_abs_diff: Math.max(...d.map(Math.abs)),
    frac_changed: d.filter((v) => v !== 0).length / d.length,
    mean_diff: mean,
    std_diff: Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length),
    nonfinite: a.length - pairs.length,
  };
}

test('tensors only in a, only in b, and with other shapes are reported; overlaps are compared', async () => {
  const dir = tempDir();
  try {
    // Values exactly representable in float32, so the reference sees what the file holds.
    const vocabA = Array.from({ length: 5 * 3 }, (_, i) => Math.fround(Math.sin(i + 1)));
    const vocabB = [...vocabA.map((v, i) => (i % 4 === 0 ? Math.fround(v + 0.25) : v)), 9, 9, 9, 8, 8, 8];
    await writeFile(path.join(dir, 'a.safetensors'), [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [5, 3], values: vocabA },
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
      { name: 'only.in.a', dtype: 'F32', shape: [2], values: [1, 2] },
      { name: 'rank.changed', dtype: 'F32', shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
      { name: 'width.changed', dtype: 'F32', shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
    ]);
    await writeFile(path.join(dir, 'b.safetensors'), [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [7, 3], values: vocabB },
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 5] },
      { name: 'only.in.b', dtype: 'F32', shape: [1], values: [0] },
      { name: 'rank.changed', dtype: 'F32', shape: [6], values: [1, 2, 3, 4, 5, 6] },
      { name: 'width.changed', dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
    ]);
    const a = await openCheckpoint(path.join(dir, 'a.safetensors'));
    const b = await openCheckpoint(path.join(dir, 'b.safetensors'));
    for (const mode of ['exact', 'quick'] as const) {
      const report = await diffCheckpoints(inline, a, b, { mode });
      assert.deepEqual(report.only_in_a, ['only.in.a']);
      assert.deepEqual(report.only_in_b, ['only.in.b']);
      assert.deepEqual(report.tensors.map((t) => t.name), ['model.layers.0.mlp.up_proj.weight']);
      assert.deepEqual(report.shape_mismatch.map((m) => [m.name, m.shapeA, m.shapeB, m.overlapRows]), [
        ['model.embed_tokens.weight', [5, 3], [7, 3], 5],
        ['rank.changed', [2, 3], [6], undefined],
        ['width.changed', [2, 3], [2, 2], undefined],
      ]);
      const overlap = report.shape_mismatch[0].overlap!;
      assert.equal(overlap.numel, 15);
      assert.deepEqual([overlap.layer, overlap.module], [null, 'embed_tokens']);
      const expected = reference(vocabA, vocabB.slice(0, 15));
      for (const key of ['l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'mean_diff', 'std_diff'] as const) {
        close(overlap[key], expected[key], `overlap ${key}`, 1e-9);
      }
      assert.equal(report.shape_mismatch[1].overlap, undefined);
      // The summary covers the compared tensor and the overlap block.
      assert.equal(report.summary.tensors, 2);
      assert.equal(report.summary.numel, 4 + 15);
    }
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('edge cases: zero vectors, NaN and infinity, empty tensors, mixed dtypes', async () => {
  const dir = tempDir();
  try {
    const ramp = Array.from({ length: 40 }, (_, i) => (i - 20) / 8); // exact in bf16 and f16
    const shifted = ramp.map((v, i) => (i % 3 === 0 ? v + 0.5 : v));
    const withNaN = ramp.map((v, i) => (i === 4 ? NaN : i === 9 ? Infinity : v));
    await writeFile(path.join(dir, 'a.safetensors'), [
      { name: 'zeros.both', dtype: 'F32', shape: [4], values: [0, 0, 0, 0] },
      { name: 'zeros.a', dtype: 'F32', shape: [4], values: [0, 0, 0, 0] },
      { name: 'zeros.b', dtype: 'F32', shape: [4], values: [1, 2, 3, 4] },
      { name: 'nan', dtype: 'F32', shape: [40], values: withNaN },
      { name: 'empty', dtype: 'F32', shape: [0, 4], values: [] },
      { name: 'bf16.vs.f32', dtype: 'BF16', shape: [40], values: ramp },
      { name: 'f16.vs.f64', dtype: 'F16', shape: [5, 8], values: ramp },
      { name: 'bf16.nan', dtype: 'BF16', shape: [40], values: withNaN },
      { name: 'f16.vs.bf16', dtype: 'F16', shape: [40], values: ramp },
    ]);
    await writeFile(path.join(dir, 'b.safetensors'), [
      { name: 'zeros.both', dtype: 'F32', shape: [4], values: [0, 0, 0, 0] },
      { name: 'zeros.a', dtype: 'F32', shape: [4], values: [0, 1, 0, 0] },
      { name: 'zeros.b', dtype: 'F32', shape: [4], values: [0, 0, 0, 0] },
      { name: 'nan', dtype: 'F32', shape: [40], values: shifted },
      { name: 'empty', dtype: 'F32', shape: [0, 4], values: [] },
      { name: 'bf16.vs.f32', dtype: 'F32', shape: [40], values: ramp },
      { name: 'f16.vs.f64', dtype: 'F64', shape: [5, 8], values: shifted },
      { name: 'bf16.nan', dtype: 'BF16', shape: [40], values: shifted },
      { name: 'f16.vs.bf16', dtype: 'BF16', shape: [40], values: shifted },
    ]);
    const report = await diffCheckpoints(inline, await openCheckpoint(path.join(dir, 'a.safetensors')), await openCheckpoint(path.join(dir, 'b.safetensors')), { chunkElements: 7 });
    const t = byName(report);

    assert.deepEqual(pick(t.get('zeros.both')!), { l2_diff: 0, rel_l2: 0, cosine: 1, frac_changed: 0 });
    assert.deepEqual(pick(t.get('zeros.a')!), { l2_diff: 1, rel_l2: null, cosine: 0, frac_changed: 0.25 });
    assert.deepEqual(pick(t.get('zeros.b')!), { l2_diff: Math.sqrt(30), rel_l2: 1, cosine: 0, frac_changed: 1 });
    assert.match(JSON.stringify(t.get('zeros.a')), /"rel_l2":null/);

    const nan = t.get('nan')!;
    const expected = reference(withNaN, shifted);
    assert.equal(nan.nonfinite, 2);
    assert.equal(expected.nonfinite, 2);
    // 16-bit inputs take the lookup loops, which find the NaN from the sums and redo the range.
    const bf16Nan = t.get('bf16.nan')!;
    assert.equal(bf16Nan.nonfinite, 2);
    for (const key of ['l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'mean_diff', 'std_diff'] as const) {
      close(nan[key], expected[key], `nan ${key}`, 1e-9);
      close(bf16Nan[key], expected[key], `bf16 nan ${key}`, 1e-9);
    }
    assert.equal(report.summary.nonfinite, 4);
    const halfMix = t.get('f16.vs.bf16')!;
    const halfExpected = reference(ramp, shifted);
    for (const key of ['l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'mean_diff', 'std_diff'] as const) close(halfMix[key], halfExpected[key], `f16 vs bf16 ${key}`, 1e-12);

    assert.deepEqual(pick(t.get('empty')!), { l2_diff: 0, rel_l2: 0, cosine: 1, frac_changed: 0 });
    assert.equal(t.get('empty')!.numel, 0);

    assert.deepEqual(pick(t.get('bf16.vs.f32')!), { l2_diff: 0, rel_l2: 0, cosine: 1, frac_changed: 0 });
    const mixed = t.get('f16.vs.f64')!;
    const mixedExpected = reference(ramp, shifted);
    for (const key of ['l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'std_diff'] as const) close(mixed[key], mixedExpected[key], `mixed ${key}`, 1e-12);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

function pick(t: TensorDiff) {
  return { l2_diff: t.l2_diff, rel_l2: t.rel_l2, cosine: t.cosine, frac_changed: t.frac_changed };
}

test('with a base: conflict and sign agreement by hand, tensors the base lacks listed', async () => {
  const dir = tempDir();
  try {
    const c = [1, 1, 1, 1, 1, 1, 1, 1];
    const a = [2, 0, 1, 3, 1, 0.5, 1, 1]; // da: +1 -1  0 +2  0 -0.5  0  0
    const b = [3, 2, 1, 0, 1, 0.0, 1, 2]; // db: +2 +1  0 -1  0 -1    0 +1
    await writeFile(path.join(dir, 'c.safetensors'), [{ name: 'w', dtype: 'F32', shape: [8], values: c }]);
    await writeFile(path.join(dir, 'a.safetensors'), [{ name: 'w', dtype: 'F32', shape: [8], values: a }, { name: 'extra', dtype: 'F32', shape: [2], values: [1, 2] }]);
    await writeFile(path.join(dir, 'b.safetensors'), [{ name: 'w', dtype: 'F32', shape: [8], values: b }, { name: 'extra', dtype: 'F32', shape: [2], values: [1, 3] }]);
    const [la, lb, lc] = await Promise.all(['a', 'b', 'c'].map((n) => openCheckpoint(path.join(dir, `${n}.safetensors`))));
    const report = await diffCheckpoints(inline, la, lb, { base: lc });
    const w = byName(report).get('w')!;
    // Both non-zero at 0, 1, 3, 5: equal signs at 0 and 5, opposite at 1 and 3.
    assert.equal(w.sign_agreement, 0.5);
    assert.equal(w.conflict, 2 / 8);
    const da = a.map((x, i) => x - c[i]);
    const db = b.map((x, i) => x - c[i]);
    close(w.cosine_tv, da.reduce((s, x, i) => s + x * db[i], 0) / Math.hypot(...da) / Math.hypot(...db), 'cosine_tv', 1e-12);
    close(w.rel_norm_a, Math.hypot(...da) / Math.hypot(...c), 'rel_norm_a', 1e-12);
    close(w.rel_norm_b, Math.hypot(...db) / Math.hypot(...c), 'rel_norm_b', 1e-12);
    assert.deepEqual(report.base_mismatch, ['extra']);
    const extra = byName(report).get('extra')!;
    assert.equal(extra.cosine_tv, undefined);
    close(extra.l2_diff, 1, 'extra l2', 0);
    // The summary's task-vector figures are over the tensors that had a base.
    assert.equal(report.summary.conflict, 2 / 8);
    assert.equal(report.summary.sign_agreement, 0.5);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('partial reports and progress arrive while the diff runs', async () => {
  const [base, v2] = await Promise.all(['tiny-llama-base', 'tiny-llama-base-v2'].map((m) => openCheckpoint(models(m))));
  const fractions: number[] = [];
  const partials: DiffReport[] = [];
  const slow: TaskRunner<DiffTasks> = {
    concurrency: 1,
    async run<K extends keyof DiffTasks & string>(kind: K, input: TaskInput<DiffTasks, K>, options?: RunOptions): Promise<TaskOutput<DiffTasks, K>> {
      await new Promise((resolve) => setTimeout(resolve, 60));
      return inline.run(kind, input, options);
    },
  };
  const report = await diffCheckpoints(slow, base, v2, { taskElements: 20000, onProgress: (f) => fractions.push(f), onPartial: (r) => partials.push(r) });
  assert.ok(fractions.length > 5);
  assert.ok(fractions.every((f, i) => f >= 0 && f <= 1 && (i === 0 || f >= fractions[i - 1])), 'progress only grows');
  assert.equal(fractions[fractions.length - 1], 1);
  assert.ok(partials.length >= 1, 'at least one partial report');
  assert.ok(partials.every((p) => p.tensors.length < report.tensors.length && p.summary.tensors === p.tensors.length));
});

test('diffCacheKey changes when a weight file changes, not otherwise', async () => {
  const dir = tempDir();
  try {
    for (const name of ['a', 'b']) fs.copyFileSync(path.join(models('tiny-llama-base'), 'model.safetensors'), path.join(dir, `${name}.safetensors`));
    const open = () => Promise.all(['a', 'b'].map((n) => openCheckpoint(path.join(dir, `${n}.safetensors`))));
    const [a, b] = await open();
    const code = await openCheckpoint(models('tiny-llama-code'));
    const key = await diffCacheKey(a, b);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(await diffCacheKey(a, b), key);
    assert.notEqual(await diffCacheKey(b, a), key, 'order matters: a and b are not symmetric');
    assert.notEqual(await diffCacheKey(a, b, code), key);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, 'b.safetensors'), later, later);
    const [a2, b2] = await open();
    assert.notEqual(await diffCacheKey(a2, b2), key);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('the 16-bit lookup kernels count changes, agreements and conflicts exactly as the checked loops do', () => {
  // Patterns from a small pool, so equal values, +0 against -0, zero task vectors and ties with
  // the base are common; every pattern is finite in its format.
  const formats = [
    { name: 'BF16', table: bf16ToF32Table(), pool: [0x0000, 0x8000, 0x0001, 0x8001, 0x3f80, 0xbf80, 0x3f81, 0x4000, 0xc000, 0x7f7f, 0xff7f, 0x0080, 0x3c00, 0x3c01] },
    { name: 'F16', table: f16ToF32Table(), pool: [0x0000, 0x8000, 0x0001, 0x8001, 0x3c00, 0xbc00, 0x3c01, 0x4000, 0xc000, 0x7bff, 0xfbff, 0x0400, 0x3f80, 0x3f81] },
  ];
  let seed = 12345;
  const pick = (pool: number[]) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return pool[(seed >>> 16) % pool.length];
  };
  for (const { name, table, pool } of formats) {
    const n = 20_000;
    const [a, b, c] = [0, 1, 2].map(() => Uint16Array.from({ length: n }, () => pick(pool)));
    const [va, vb, vc] = [a, b, c].map((bits) => Float32Array.from(bits, (x) => table[x]));
    for (const withBase of [false, true]) {
      const fast = emptyPartial();
      const checked = emptyPartial();
      if (withBase) {
        accumulateWithBaseBits(fast, a, table, b, table, c, table, n);
        accumulateWithBase(checked, va, vb, vc, n);
      } else {
        accumulatePairBits(fast, a, table, b, table, n);
        accumulatePair(checked, va, vb, n);
      }
      assert.ok(checked.changed > 0 && checked.changed < n, `${name}: the pool should give both changed and unchanged positions`);
      if (withBase) assert.ok(checked.signAgree > 0 && checked.signConflict > 0, `${name}: the pool should give agreements and conflicts`);
      assert.deepEqual(fast, checked, `${name}${withBase ? ' with a base' : ''}`);
    }
  }
});
