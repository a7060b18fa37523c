// Differential tests of the WebAssembly kernels against the JavaScript reference loops, on random
// and edge inputs (NaN, +-inf, subnormals, -0, equal values, rounding ties, odd lengths):
// - decoded and encoded elements, counts, minima and maxima must be bit-identical;
// - float64 sums may differ only by the order of their additions. Each side's sum of n terms t_i
//   is within (n - 1) u sum|t_i| of the exact sum (u = 2^-53, first order), so the two sides are
//   within 2 (n - 1) u sum|t_i| of each other: that bound, computed from the terms, is what is
//   checked, with mean and m2 of the statistics bounded through it (see statsBound).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { accumulatePair, accumulateWithBase, emptyPartial, type DiffPartial } from '../../src/core/diff/metrics';
import { computeTensorStats, statsTasks, summarize, addToHistogram } from '../../src/core/stats';
import { InlineRunner } from '../../src/core/engine/pool';
import { selectKernels, selectedKernels, wasmKernels, parseKernelChoice, KernelMemory, type ElementKind, type Kernels, type KernelRegion, type Placed } from '../../src/core/kernels';
import { accumulatePlaced } from '../../src/core/kernels/diff';
import { decodePlaced, encodePlaced } from '../../src/core/kernels/codec';
import { histogramPlaced, summarizePlaced } from '../../src/core/kernels/stats';
import { kernelExports } from '../../src/core/kernels/module';
import { bf16ToF32Table, f16ToF32Table, f32BitsToBf16, f32BitsToF16, readHeader, writeSafetensors, encodeFromFloat32, openCheckpoint } from '../../src/core/safetensors';
import { ChunkReader } from '../../src/core/tensors/chunkReader';
import { random32, webAssemblyKernels } from '../support/kernels';
import { fixture, tempDir } from './helpers';

const U = 2 ** -53;
const kernels = webAssemblyKernels;

const random = random32;

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);
const bitsOf = (v: number) => ((f32[0] = v), f32Bits[0]);

/** float32 bit patterns: weights-like values, with specials and edge cases mixed in. */
function edgeF32Bits(n: number, seed: number, specialEvery = 7): Uint32Array {
  const next = random(seed);
  const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x00000001, 0x807fffff, 0x00400000, 0x7f7fffff, 0xff7fffff,
    0x3f808000, 0x3f818000, 0x33800000, 0x33000000, 0x477ff000, 0x477fe000, 0x387fc000, 0x38800000, 0x0b800000];
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    if (r % specialEvery === 0) out[i] = specials[next() % specials.length];
    else if (r % specialEvery === 1) out[i] = next(); // any pattern
    else out[i] = bitsOf(((next() / 2 ** 32) - 0.5) * 0.1);
  }
  return out;
}

/** n elements of `kind` as bytes: 16-bit kinds from random patterns (all of them possible), f32 from edgeF32Bits. */
function operandBytes(kind: ElementKind, n: number, seed: number, specials = true): Uint8Array {
  if (kind === 'f32') {
    const bits = edgeF32Bits(n, seed, specials ? 7 : 1 << 30);
    if (!specials) for (let i = 0; i < n; i++) if (!Number.isFinite(new Float32Array(bits.buffer)[i])) bits[i] = 0;
    return new Uint8Array(bits.buffer);
  }
  const next = random(seed);
  const table = kind === 'bf16' ? bf16ToF32Table() : f16ToF32Table();
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    // Mostly small weights, some any pattern (NaN, inf, subnormals, zeros).
    const r = next();
    let bits = specials && r % 5 === 0 ? next() & 0xffff : kind === 'bf16' ? f32BitsToBf16(bitsOf(((next() / 2 ** 32) - 0.5) * 0.1)) : f32BitsToF16(bitsOf(((next() / 2 ** 32) - 0.5) * 0.1));
    if (!specials && !Number.isFinite(table[bits])) bits = 0;
    out[i] = bits;
  }
  return new Uint8Array(out.buffer);
}

function valuesOf(kind: ElementKind, bytes: Uint8Array): Float32Array {
  if (kind === 'f32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const table = kind === 'bf16' ? bf16ToF32Table() : f16ToF32Table();
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return Float32Array.from(bits, (b) => table[b]);
}

/**
 * Operands copied into regions of the module's memory, plus `extra` empty regions: all taken in
 * one request, since a request that needs the memory to grow waits until no region is out.
 */
async function place(k: Kernels, operands: [ElementKind, Uint8Array][], extra: number[] = []): Promise<{ placed: Placed[]; extra: KernelRegion[]; all: KernelRegion[] }> {
  const all = await k.memory.take([...operands.map(([, bytes]) => Math.max(bytes.byteLength, 4)), ...extra]);
  const placed = operands.map(([kind, bytes], i) => {
    all[i].bytes(bytes.byteLength).set(bytes);
    return { kind, region: all[i] };
  });
  return { placed, extra: all.slice(operands.length), all };
}

/** sum|t_i| of each diff sum's terms, over the positions the reference counts. */
function diffTermBounds(a: Float32Array, b: Float32Array, c?: Float32Array): Partial<Record<keyof DiffPartial, number>> {
  const bound: Record<string, number> = { sumA2: 0, sumB2: 0, sumAB: 0, sumD: 0, sumD2: 0, sumC2: 0, sumDa2: 0, sumDb2: 0, sumDaDb: 0 };
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i], z = c ? c[i] : 0;
    const d = y - x, da = x - z, db = y - z;
    if (!(Number.isFinite(d) && (!c || Number.isFinite(da)))) continue;
    bound.sumA2 += x * x; bound.sumB2 += y * y; bound.sumAB += Math.abs(x * y); bound.sumD += Math.abs(d); bound.sumD2 += d * d;
    if (c) { bound.sumC2 += z * z; bound.sumDa2 += da * da; bound.sumDb2 += db * db; bound.sumDaDb += Math.abs(da * db); }
  }
  return bound;
}

function assertDiffAgrees(wasm: DiffPartial, js: DiffPartial, bounds: Partial<Record<keyof DiffPartial, number>>, n: number, label: string): void {
  for (const field of ['count', 'nonfinite', 'changed', 'maxAbs', 'signAgree', 'signConflict'] as const) {
    assert.ok(Object.is(wasm[field], js[field]), `${label}: ${field} ${wasm[field]} vs ${js[field]}`);
  }
  for (const [field, termSum] of Object.entries(bounds) as [keyof DiffPartial, number][]) {
    const allowed = 2 * Math.max(0, n - 1) * U * termSum;
    assert.ok(Math.abs(wasm[field] - js[field]) <= allowed, `${label}: ${field} ${wasm[field]} vs ${js[field]} (allowed ${allowed})`);
  }
}

const KINDS: ElementKind[] = ['f32', 'bf16', 'f16'];

test('decode: every BF16 and F16 pattern gives the lookup tables\' float32 bits', async () => {
  const k = kernels();
  const patterns = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (const [kind, table] of [['bf16', bf16ToF32Table()], ['f16', f16ToF32Table()]] as const) {
    // Odd offsets of the count exercise the scalar tail.
    for (const count of [65536, 65533]) {
      const { placed: [placed], extra: [out], all } = await place(k, [[kind, new Uint8Array(patterns.buffer, 0, count * 2)]], [count * 4]);
      decodePlaced(k, placed, out, count);
      const got = out.words(count);
      const want = new Uint32Array(table.buffer, 0, count);
      const bad = [...want.keys()].filter((i) => got[i] !== want[i]);
      assert.deepEqual(bad.slice(0, 5).map((i) => [i.toString(16), got[i].toString(16), want[i].toString(16)]), [], `${kind} ${count}: ${bad.length} differ`);
      k.memory.give(all);
    }
  }
});

test('encode: float32 -> BF16/F16 bit-identical to the JavaScript encoders and to torch (rounding.safetensors)', async () => {
  const k = kernels();
  const file = fixture('formats', 'rounding.safetensors');
  const header = await readHeader(file);
  const bytesOf = (name: string) => {
    const t = header.tensors.find((x) => x.name === name)!;
    return new Uint8Array(fs.readFileSync(file).subarray(t.begin, t.end));
  };
  const fromTorch = bytesOf('src_f32');
  const torchOut = { BF16: new Uint16Array(bytesOf('to_bf16').slice().buffer), F16: new Uint16Array(bytesOf('to_f16').slice().buffer) };
  const inputs = [new Uint32Array(fromTorch.slice().buffer), edgeF32Bits(100_003, 1, 3)];
  // Every exponent with mantissas near the f16 rounding points, subnormal range included.
  const sweep = new Uint32Array(2 * 256 * 64);
  for (let e = 0, i = 0; e < 256; e++) for (let m = 0; m < 64; m++) for (const s of [0, 0x80000000]) sweep[i++] = (s | (e << 23) | ((m * 0x1ff7) & 0x7fffff) | (m & 1 ? 0x1000 : 0)) >>> 0;
  inputs.push(sweep);
  for (const bits of inputs) {
    const n = bits.length;
    const [src, dst] = await k.memory.take([n * 4, n * 2]);
    src.words(n).set(bits);
    for (const [dtype, reference] of [['BF16', f32BitsToBf16], ['F16', f32BitsToF16]] as const) {
      encodePlaced(k, dtype, src, dst, n);
      const got = new Uint16Array(dst.bytes(n * 2).slice().buffer);
      const bad = [...bits.keys()].filter((i) => got[i] !== reference(bits[i]));
      assert.deepEqual(bad.slice(0, 5).map((i) => [bits[i].toString(16), got[i].toString(16), reference(bits[i]).toString(16)]), [], `${dtype}: ${bad.length} of ${n} differ`);
      if (bits === inputs[0]) assert.deepEqual([...got], [...torchOut[dtype]], `${dtype}: torch's output`);
    }
    k.memory.give([src, dst]);
  }
});

test('diff: pair and base accumulations agree with the JavaScript reference on every operand kind', async () => {
  const k = kernels();
  let seed = 10;
  for (const n of [1, 2, 3, 5, 8, 2047, 2048, 2049, 6151, 20_000]) {
    for (const ka of KINDS) for (const kb of KINDS) for (const kc of [undefined, ...KINDS] as (ElementKind | undefined)[]) {
      for (const specials of [true, false]) {
        const bytesA = operandBytes(ka, n, seed++, specials);
        // b shares a's values at about half the positions (unchanged elements) when of the same kind.
        const bytesB = operandBytes(kb, n, seed++, specials);
        if (ka === kb) for (let i = 0; i < bytesB.length; i += 8) bytesB.set(bytesA.subarray(i, i + 4), i);
        const bytesC = kc ? operandBytes(kc, n, seed++, specials) : undefined;
        const a = valuesOf(ka, bytesA), b = valuesOf(kb, bytesB), c = kc ? valuesOf(kc, bytesC!) : undefined;
        const js = emptyPartial();
        if (c) accumulateWithBase(js, a, b, c, n);
        else accumulatePair(js, a, b, n);
        const { placed: [pa, pb, pc], all } = await place(k, [[ka, bytesA], [kb, bytesB], ...(kc ? [[kc, bytesC!] as [ElementKind, Uint8Array]] : [])]);
        const wasm = emptyPartial();
        accumulatePlaced(k, wasm, pa, pb, pc, n);
        k.memory.give(all);
        assertDiffAgrees(wasm, js, diffTermBounds(a, b, c), n, `n=${n} ${ka}/${kb}/${kc ?? '-'} specials=${specials}`);
        if (!specials) assert.equal(wasm.nonfinite, 0);
      }
    }
  }
});

/**
 * Bounds for the statistics: the sums of the two sides differ by at most 2 (n - 1) u sum|v|, so the
 * means by that over the finite count (dMean); m2 = sum (v - mean)^2 then moves by at most
 * 2 |dMean| sum|v - mean| + n dMean^2 through the mean, plus its own reordering, 2 (n - 1) u m2.
 */
function statsBound(values: Float32Array, mean: number, m2: number) {
  let absSum = 0, absDev = 0, n = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    n++;
    absSum += Math.abs(v);
    absDev += Math.abs(v - mean);
  }
  const dMean = n > 0 ? (2 * n * U * absSum) / n + 4 * U * Math.abs(mean) : 0;
  return { mean: dMean, m2: 2 * dMean * absDev + n * dMean * dMean + 2 * n * U * m2 + 1e-300 };
}

test('stats: summarize and the histogram agree with the JavaScript reference on every kind', async () => {
  const k = kernels();
  let seed = 500;
  for (const n of [1, 2, 3, 7, 2048, 2049, 12_345]) {
    for (const kind of KINDS) {
      for (const specials of [true, false]) {
        const bytes = operandBytes(kind, n, seed++, specials);
        const values = valuesOf(kind, bytes);
        const js = summarize(values);
        const { placed: [placed], extra: [counts], all } = await place(k, [[kind, bytes]], [64 * 4]);
        const wasm = summarizePlaced(k, placed, n);
        const label = `n=${n} ${kind} specials=${specials}`;
        for (const field of ['count', 'finite', 'zeros', 'nan', 'inf'] as const) assert.equal(wasm[field], js[field], `${label}: ${field}`);
        // Extremes compare as numbers: which of +0 and -0 is met first depends on the order.
        assert.ok(wasm.min === js.min && wasm.max === js.max, `${label}: min/max ${wasm.min}/${wasm.max} vs ${js.min}/${js.max}`);
        const bound = statsBound(values, js.mean, js.m2);
        assert.ok(Math.abs(wasm.mean - js.mean) <= bound.mean, `${label}: mean ${wasm.mean} vs ${js.mean}`);
        assert.ok(Math.abs(wasm.m2 - js.m2) <= bound.m2, `${label}: m2 ${wasm.m2} vs ${js.m2} (allowed ${bound.m2})`);

        for (const bins of [1, 7, 64]) {
          const ranges: [number, number][] = js.finite > 0 ? [[js.min, js.max], [js.min, js.min], [-0.01, 0.02]] : [[0, 1]];
          for (const [lo, hi] of ranges) {
            const want = new Uint32Array(bins);
            addToHistogram(values, lo, hi, want);
            counts.words(bins).fill(0);
            histogramPlaced(k, placed, n, lo, hi, counts, bins);
            assert.deepEqual([...counts.words(bins)], [...want], `${label}: histogram of ${bins} bins over [${lo}, ${hi}]`);
          }
        }
        k.memory.give(all);
      }
    }
  }
});

test('computeTensorStats gives the same counts and extremes on both paths, and sums within the bound', async () => {
  const dir = tempDir();
  try {
    const values = new Float32Array(valuesOf('f32', operandBytes('f32', 50_001, 77)));
    const file = path.join(dir, 'w.safetensors');
    await writeSafetensors(file, [
      { name: 'w', dtype: 'F32', shape: [values.length], data: new Uint8Array(values.buffer) },
      { name: 'h', dtype: 'BF16', shape: [values.length], data: encodeFromFloat32('BF16', values) },
      { name: 'i', dtype: 'I8', shape: [values.length], data: Uint8Array.from(values, (_, i) => (i * 37) & 0xff) },
      { name: 'd', dtype: 'F64', shape: [4], data: new Uint8Array(Float64Array.of(1, -2, NaN, 4).buffer) },
    ]);
    for (const ref of (await openCheckpoint(file)).tensors) {
      const results = [];
      for (const choice of ['javascript', 'webassembly'] as const) {
        selectKernels(choice);
        results.push(await computeTensorStats(new InlineRunner(statsTasks), ref, { histogramBins: 16, chunkElements: 20_000 }));
      }
      const [js, wasm] = results;
      assert.deepEqual({ ...wasm, mean: 0, std: 0 }, { ...js, mean: 0, std: 0 }, ref.name);
      assert.ok(Math.abs(wasm.mean! - js.mean!) <= 1e-12 * Math.max(1e-3, Math.abs(js.mean!)), `${ref.name}: mean`);
      assert.ok(Math.abs(wasm.std! - js.std!) <= 1e-12 * js.std!, `${ref.name}: std`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ChunkReader.readInto: F32, BF16, F16 land raw in the target; other dtypes decoded to f32; wide ones refused', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'm.safetensors');
    const values = Float32Array.of(1.5, -2, 0.25, 3);
    await writeSafetensors(file, [
      { name: 'f32', dtype: 'F32', shape: [4], data: new Uint8Array(values.buffer) },
      { name: 'bf16', dtype: 'BF16', shape: [4], data: encodeFromFloat32('BF16', values) },
      { name: 'f16', dtype: 'F16', shape: [4], data: encodeFromFloat32('F16', values) },
      { name: 'i8', dtype: 'I8', shape: [4], data: Uint8Array.of(1, 255, 3, 128) },
      { name: 'f64', dtype: 'F64', shape: [4], data: new Uint8Array(new Float64Array(4).buffer) },
    ]);
    const tensors = (await openCheckpoint(file)).tensors;
    const handle = await fs.promises.open(file, 'r');
    const reader = new ChunkReader();
    try {
      const target = new Uint8Array(64).fill(0xee);
      const refOf = (name: string) => tensors.find((x) => x.name === name)!;
      assert.equal(await reader.readInto(refOf('f32'), handle, 1, 3, target), 'f32');
      assert.deepEqual([...new Float32Array(target.buffer, 0, 3)], [-2, 0.25, 3]);
      assert.equal(await reader.readInto(refOf('bf16'), handle, 0, 4, target), 'bf16');
      assert.deepEqual([...new Uint16Array(target.buffer, 0, 4)], [...new Uint16Array(encodeFromFloat32('BF16', values).buffer)]);
      assert.equal(await reader.readInto(refOf('f16'), handle, 2, 2, target), 'f16');
      assert.deepEqual([...new Uint16Array(target.buffer, 0, 2)], [...new Uint16Array(encodeFromFloat32('F16', values).buffer)].slice(2));
      assert.equal(await reader.readInto(refOf('i8'), handle, 0, 4, target), 'f32');
      assert.deepEqual([...new Float32Array(target.buffer, 0, 4)], [1, -1, 3, -128]);
      assert.equal(await reader.readInto(refOf('f64'), handle, 0, 4, target), undefined);
      await assert.rejects(reader.readInto(refOf('f32'), handle, 0, 4, new Uint8Array(8)), /need 16 bytes/);
    } finally {
      reader.dispose();
      await handle.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('kernel memory: regions do not overlap, are reused, and growth waits until no region is out', async () => {
  const memory = new KernelMemory(kernelExports());
  const [a, b] = await memory.take([100, 1 << 20]);
  assert.ok(a.offset % 64 === 0 && b.offset >= a.offset + 100);
  a.bytes().fill(1);
  b.bytes().fill(2);
  assert.ok(a.bytes().every((x) => x === 1));
  // More than the memory holds while a and b are out: waits for them.
  let got: KernelRegion[] | undefined;
  const pending = memory.take([64 << 20]).then((r) => (got = r));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(got, undefined);
  memory.give([a, b]);
  await pending;
  assert.equal(got![0].byteLength, 64 << 20);
  memory.give(got!);
  const [again] = await memory.take([100]);
  assert.equal(again.offset, a.offset, 'freed space is reused');
  memory.give([again]);
});

test('the kernel choice: names accepted, others refused with what to use', () => {
  assert.equal(parseKernelChoice('JS', 'x'), 'javascript');
  assert.equal(parseKernelChoice('wasm', 'x'), 'webassembly');
  assert.throws(() => parseKernelChoice('gpu', 'GRAFT_KERNELS'), /GRAFT_KERNELS is "gpu": use "webassembly" \(the default\) or "javascript"/);
  selectKernels('javascript');
  assert.equal(selectedKernels(), 'javascript');
  assert.equal(wasmKernels(), undefined);
  selectKernels('webassembly');
  assert.ok(wasmKernels());
});
