// Tensor statistics: exact merging across any split, NaN/inf/zero accounting, histograms, and
// the same answers inline and on real worker threads.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { CancelledError } from '../../src/core/engine/task';
import { InlineRunner, WorkerPool } from '../../src/core/engine/pool';
import { encodeFromFloat32, readElements, readHeader, SafetensorsError, safetensorsRuleOf, writeSafetensors, type TensorRef } from '../../src/core/safetensors';
import { computeTensorStats, emptyPartial, finalize, mergePartials, statsTasks, summarize, SUB_CHUNK_ELEMENTS } from '../../src/core/stats';
import { fixture, tempDir, workerScript } from './helpers';

const inline = new InlineRunner(statsTasks);

/** Reference statistics computed the obvious way, in float64, from all values at once. */
function naive(values: ArrayLike<number>) {
  let n = 0, sum = 0, min = Infinity, max = -Infinity, zeros = 0, nan = 0, inf = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
    else {
      n++;
      sum += v;
      min = Math.min(min, v);
      max = Math.max(max, v);
      if (v === 0) zeros++;
    }
  }
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) squares += (values[i] - mean) ** 2;
  const any = n > 0;
  return { count: values.length, min: any ? min : null, max: any ? max : null, mean: any ? mean : null, std: any ? Math.sqrt(squares / n) : null, zeros, nan, inf };
}

function assertClose(actual: number | null, expected: number | null, label: string, relative = 1e-12): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected, label);
    return;
  }
  assert.ok(Math.abs(actual - expected) <= relative * Math.max(1, Math.abs(expected)), `${label}: ${actual} vs ${expected}`);
}

function assertStats(actual: ReturnType<typeof naive>, expected: ReturnType<typeof naive>, label: string): void {
  assert.equal(actual.count, expected.count, `${label} count`);
  assert.equal(actual.min, expected.min, `${label} min`);
  assert.equal(actual.max, expected.max, `${label} max`);
  assertClose(actual.mean, expected.mean, `${label} mean`);
  assertClose(actual.std, expected.std, `${label} std`);
  assert.equal(actual.zeros, expected.zeros, `${label} zeros`);
  assert.equal(actual.nan, expected.nan, `${label} nan`);
  assert.equal(actual.inf, expected.inf, `${label} inf`);
}

test('merging partials of any split gives the statistics of the whole (Chan et al.)', () => {
  let seed = 7;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  // Large offset and small spread: where a naive sum of squares would lose precision.
  const values = Float64Array.from({ length: 5000 }, () => 1e6 + random() * 1e-2);
  values[10] = NaN;
  values[20] = -Infinity;
  values[30] = 0;
  const expected = naive(values);
  for (const pieces of [1, 2, 7, 64, 5000]) {
    let merged = emptyPartial();
    const size = Math.ceil(values.length / pieces);
    for (let i = 0; i < values.length; i += size) merged = mergePartials(merged, summarize(values.subarray(i, i + size)));
    assertStats(finalize(merged), expected, `${pieces} pieces`);
  }
  const nothing = finalize(summarize(new Float32Array([NaN, Infinity])));
  assert.deepEqual(nothing, { count: 2, min: null, max: null, mean: null, std: null, zeros: 0, nan: 1, inf: 1 });
});

async function refOf(file: string, name: string): Promise<TensorRef> {
  const header = await readHeader(file);
  return { ...header.tensors.find((t) => t.name === name)!, file };
}

test('computeTensorStats on every dtype of all_dtypes matches the values read directly', async () => {
  const file = fixture('formats', 'all_dtypes.safetensors');
  const header = await readHeader(file);
  for (const info of header.tensors) {
    const ref = { ...info, file };
    const values = await readElements(ref, 0, ref.numel);
    for (const chunkElements of [1, 3, 1 << 24]) {
      const stats = await computeTensorStats(inline, ref, { chunkElements });
      assertStats(stats, naive(values), `${ref.name} / chunks of ${chunkElements}`);
    }
  }
  // f32 holds -0, inf, -inf and NaN: counted apart, min/max over the finite rest.
  const f32 = await computeTensorStats(inline, await refOf(file, 'f32'));
  assert.deepEqual([f32.zeros, f32.nan, f32.inf, f32.min, f32.max], [1, 1, 2, Math.fround(-1.1754943508222875e-38), Math.fround(3.4e38)]);
  const empty = await computeTensorStats(inline, await refOf(file, 'empty_f32'));
  assert.deepEqual(empty, { count: 0, min: null, max: null, mean: null, std: null, zeros: 0, nan: 0, inf: 0 });
});

test('histogram: a second pass over [min, max], counts add up, max lands in the last bin', async () => {
  const ref = await refOf(fixture('formats', 'all_dtypes.safetensors'), 'matrix_bf16');
  const values = Array.from(await readElements(ref, 0, ref.numel));
  const fractions: number[] = [];
  const stats = await computeTensorStats(inline, ref, { histogramBins: 10, chunkElements: 100, onProgress: (f) => fractions.push(f) });
  const { lo, hi, counts } = stats.histogram!;
  assert.equal(lo, stats.min);
  assert.equal(hi, stats.max);
  assert.equal(counts.length, 10);
  assert.equal(counts.reduce((a, b) => a + b, 0), ref.numel);
  const expected = new Array(10).fill(0);
  for (const v of values) expected[Math.min(9, Math.floor(((v - lo) / (hi - lo)) * 10))]++;
  assert.deepEqual(counts, expected);
  assert.ok(counts[9] >= 1);
  assert.equal(fractions.at(-1), 1);
  assert.ok(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]), 'progress never goes back');
});

test('tensors larger than a sub-chunk are read in pieces with read-ahead, and the result is exact', async () => {
  const dir = tempDir();
  try {
    const numel = SUB_CHUNK_ELEMENTS * 2 + 12345;
    const values = Float32Array.from({ length: numel }, (_, i) => Math.sin(i * 0.001) * 3 + (i % 1000 === 0 ? 0 : 0.25));
    values[numel - 1] = NaN;
    const file = path.join(dir, 'big.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'F16', shape: [numel], data: encodeFromFloat32('F16', values) }]);
    const ref = await refOf(file, 'w');
    const decoded = await readElements(ref, 0, numel);
    const stats = await computeTensorStats(inline, ref, { chunkElements: SUB_CHUNK_ELEMENTS + 7 });
    assertStats(stats, naive(decoded), 'F16 big');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('on real worker threads the statistics equal the inline ones', async () => {
  assert.ok(fs.existsSync(workerScript), 'dist/worker.js is missing: run `node scripts/build.mjs` first');
  const dir = tempDir();
  const pool = new WorkerPool<typeof statsTasks>({ workerScript, size: 3 });
  try {
    const numel = 3_000_000;
    const values = Float32Array.from({ length: numel }, (_, i) => ((i * 7919) % 10007) / 100 - 50);
    const file = path.join(dir, 'w.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [1000, 3000], data: encodeFromFloat32('BF16', values) }]);
    const ref = await refOf(file, 'w');
    const onThreads = await computeTensorStats(pool, ref, { chunkElements: 400_000, histogramBins: 16 });
    const onCaller = await computeTensorStats(inline, ref, { chunkElements: 400_000, histogramBins: 16 });
    assert.deepEqual(onThreads, onCaller);
    assert.equal(onThreads.count, numel);
  } finally {
    await pool.dispose();
    fs.rmSync(dir, { recursive: true });
  }
});

test('cancelling stops the computation with CancelledError', async () => {
  const ref = await refOf(fixture('formats', 'all_dtypes.safetensors'), 'matrix_bf16');
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(computeTensorStats(inline, ref, { signal: controller.signal, chunkElements: 10 }), CancelledError);
  const midway = new AbortController();
  let calls = 0;
  await assert.rejects(
    computeTensorStats(inline, ref, { signal: midway.signal, chunkElements: 10, onProgress: () => ++calls === 3 && midway.abort() }),
    CancelledError,
  );
});

test('dtypes that cannot be decoded are refused up front', async () => {
  const ref: TensorRef = { name: 'c', dtype: 'C64', shape: [1], numel: 1, dataOffsets: [0, 8], begin: 100, end: 108, file: 'unused' };
  await assert.rejects(computeTensorStats(inline, ref), (e: SafetensorsError) => e.rule === 'unsupported-dtype' && /C64/.test(e.message) && e.tensor === 'c');
});

test('a SafetensorsError raised on a worker keeps its rule across the thread', async () => {
  const dir = tempDir();
  const pool = new WorkerPool<typeof statsTasks>({ workerScript, size: 1 });
  try {
    const file = path.join(dir, 'w.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [1000], data: new Uint8Array(4000) }]);
    const ref = await refOf(file, 'w');
    fs.truncateSync(file, ref.begin + 100); // the file shrinks after its header was read
    await assert.rejects(computeTensorStats(pool, ref), (e: Error) => e.name === 'SafetensorError' && safetensorsRuleOf(e) === 'io' && /truncated/.test(e.message));
  } finally {
    await pool.dispose();
    fs.rmSync(dir, { recursive: true });
  }
});
