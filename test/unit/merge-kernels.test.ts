// Differential tests of the merge kernels (kernels/merge.ts) against the JavaScript loops they
// port, which stay the reference: each method's stages and apply run over the same tensor split
// into the same chunks, once on JavaScript arrays and once with the chunk placed in the kernels'
// memory, on random inputs with NaN, infinities, subnormals, -0 and many equal magnitudes (so rank
// cuts split ties across chunks). Element outputs must be bit-identical; the one latitude is the
// payload of a NaN, which neither JavaScript nor WebAssembly specifies (NaN stays NaN).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { InlineRunner } from '../../src/core/engine/pool';
import { selectKernels, type KernelRegion, type Kernels } from '../../src/core/kernels';
import {
  clearSignsResident, countEqualResident, deltaBucketMembersResident, deltaBucketTallyResident, MEMBER_SLACK, deltaCountEqualResident, deltaHistogramResident, encodeResident, histogramResident, keepInCutResident, KernelWork, nonEmptyBinsResident, scaleResident, subtractResident, taskCombineResident, weightedSumBf16Resident, weightedSumResident,
} from '../../src/core/kernels/merge';
import { executeMerge, findMethod, mergeTasks, parseRecipe, planMerge } from '../../src/core/merge';
import type { ChunkData, Found, ParamValues, TensorView } from '../../src/core/merge/methods/types';
import { keepInCut, projectForChunk, type RankCut } from '../../src/core/merge/select';
import { encodeFromFloat32 } from '../../src/core/safetensors';
import { writeTinyFamily } from '../support/tinyModels';
import { random32, webAssemblyKernels } from '../support/kernels';
import { tempDir } from './helpers';

const kernels = webAssemblyKernels;

const random = random32;

const SPECIALS = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x00000001, 0x807fffff, 0x00400000, 0x7f7fffff, 0xff7fffff];

/** Base-like values, specials mixed in every `specialEvery` elements (0: none). */
function baseValues(n: number, seed: number, specialEvery: number): Float32Array {
  const next = random(seed);
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    if (specialEvery && next() % specialEvery === 0) bits[i] = SPECIALS[next() % SPECIALS.length];
    else out[i] = ((next() / 2 ** 32) - 0.5) * 0.1;
  }
  return out;
}

/** base + deltas on a coarse grid (so many magnitudes are equal), with specials mixed in. */
function tunedValues(base: Float32Array, seed: number, specialEvery: number): Float32Array {
  const next = random(seed);
  const out = new Float32Array(base.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < base.length; i++) {
    if (specialEvery && next() % specialEvery === 0) bits[i] = SPECIALS[next() % SPECIALS.length];
    else out[i] = base[i] + ((next() % 17) - 8) * 2 ** -10;
  }
  return out;
}

/** Bit-identical, but for NaN payloads. */
function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] === e[i] || (Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) continue;
    assert.fail(`${what}: element ${i} is ${actual[i]} (0x${a[i].toString(16)}) on the kernels, ${expected[i]} (0x${e[i].toString(16)}) in JavaScript`);
  }
}

interface Inputs {
  base?: Float32Array;
  models: Float32Array[];
}

/** Memory for one chunk in the kernels' memory: a region per operand and the work region. */
async function chunkMemory(k: Kernels, operands: number, chunk: number): Promise<{ regions: KernelRegion[]; work: KernelWork }> {
  const regions = await k.memory.take([...new Array<number>(operands).fill(chunk * 4), 4 * ((3 * operands + 4) * chunk + 2 * 2 * 65536 * operands) + 4096]);
  return { regions, work: new KernelWork(k, regions[regions.length - 1]) };
}

/**
 * Runs `name`'s stages and apply over `inputs` in chunks of `chunk` elements (a multiple of 1024),
 * on JavaScript arrays or, with `k`, placed in the kernels' memory.
 */
async function runMethod(name: string, inputs: Inputs, globals: ParamValues, perModel: ParamValues[], chunk: number, k?: Kernels, shape?: number[]): Promise<Float32Array> {
  const method = findMethod(name)!;
  const numel = inputs.models[0].length;
  const g: ParamValues = {};
  for (const p of method.parameters) if (p.default !== undefined) g[p.name] = p.default;
  Object.assign(g, globals);
  const pm = inputs.models.map((_, i) => {
    const values: ParamValues = {};
    for (const p of method.tensorParameters) if (p.default !== undefined) values[p.name] = p.default;
    return Object.assign(values, perModel[i]);
  });
  const dims = shape ?? [numel];
  const view: TensorView = {
    name: 'model.layers.0.mlp.down_proj.weight', shape: dims, numel, rowLength: dims[dims.length - 1], models: inputs.models.length, hasBase: !!inputs.base,
    globals: g, perModel: pm, seed: 7, streams: inputs.models.map((_, i) => 100 + i),
  };
  const operands = [...(inputs.base ? [inputs.base] : []), ...inputs.models];
  const memory = k ? await chunkMemory(k, operands.length, chunk) : undefined;
  const chunkAt = (start: number, count: number): ChunkData => {
    const parts = operands.map((o, i) => {
      const part = o.subarray(start, start + count);
      if (!memory) return part;
      const placed = memory.regions[i].floats(count);
      placed.set(part);
      return placed;
    });
    memory?.work.reset();
    return { start, count, base: inputs.base ? parts[0] : undefined, models: inputs.base ? parts.slice(1) : parts, work: memory?.work };
  };
  const starts: number[] = [];
  for (let s = 0; s < numel; s += chunk) starts.push(s);
  try {
    const found: Found = {};
    for (let stage = method.kernel.nextStage?.(view, found); stage; stage = method.kernel.nextStage?.(view, found)) {
      let partial: unknown;
      starts.forEach((start, i) => {
        const p = stage!.map(view, projectForChunk(found, start), chunkAt(start, Math.min(chunk, numel - start)));
        partial = i === 0 ? p : stage!.merge(partial, p);
      });
      found[stage.id] = stage.finalize(partial, view, found);
    }
    const out = new Float32Array(numel);
    for (const start of starts) {
      const count = Math.min(chunk, numel - start);
      const data = chunkAt(start, count);
      const values = data.work?.floats(count) ?? new Float32Array(count);
      method.kernel.apply(view, projectForChunk(found, start), data, values);
      out.set(values, start);
    }
    return out;
  } finally {
    if (memory) k!.memory.give(memory.regions);
  }
}

const N = 3 * 4096 + 1023; // several chunks and an odd tail
const CHUNK = 4096;

function family(seed: number, models: number, specialEvery: number): Inputs {
  const base = baseValues(N, seed, specialEvery);
  return { base, models: Array.from({ length: models }, (_, i) => tunedValues(base, seed * 31 + i, specialEvery)) };
}

const CASES: { name: string; globals?: ParamValues; perModel: ParamValues[]; noBase?: boolean; shape?: number[]; chunk?: number }[] = [
  { name: 'linear', perModel: [{ weight: 0.5 }, { weight: 0.3 }, { weight: 0.2 }], noBase: true },
  { name: 'linear', globals: { normalize: false }, perModel: [{ weight: 1.5 }, { weight: -0.7 }, { weight: 1e-3 }], noBase: true },
  { name: 'task_arithmetic', perModel: [{ weight: 0.6 }, { weight: -0.4 }, { weight: 1 }] },
  { name: 'task_arithmetic', globals: { normalize: true }, perModel: [{ weight: 0.6 }, { weight: 0.4 }, { weight: 1 }] },
  { name: 'ties', globals: { density: 0.5 }, perModel: [{ weight: 0.6 }, { weight: 0.4 }, { weight: 0.5 }] },
  { name: 'ties', perModel: [{ weight: 0.6, density: 0.3 }, { weight: -0.4, density: 1 }, { weight: 0.5, density: 0.71 }] },
  { name: 'ties', globals: { normalize: false, rescale: true }, perModel: [{ weight: 0.6, density: 0.2 }, { weight: 0.4, density: 0.5 }, { weight: 1, density: 0.9 }] },
  { name: 'ties', globals: { semantics: 'peft', majority_sign_method: 'frequency' }, perModel: [{ weight: 0.6, density: 0.5 }, { weight: 0.4, density: 0.5 }, { weight: 1, density: 0.5 }] },
  { name: 'magnitude_prune', perModel: [{ weight: 0.6, density: 0.4 }, { weight: 0.4, density: 0.6 }, { weight: 1, density: 0.5 }] },
  { name: 'breadcrumbs', perModel: [{ weight: 0.6, density: 0.5, gamma: 0.05 }, { weight: 0.4, density: 0.7, gamma: 0.1 }, { weight: 1, density: 0.3, gamma: 0.01 }] },
  { name: 'breadcrumbs_ties', perModel: [{ weight: 0.6, density: 0.5, gamma: 0.05 }, { weight: 0.4, density: 0.7, gamma: 0.1 }, { weight: 1, density: 0.3, gamma: 0.01 }] },
  { name: 'dare_ties', perModel: [{ weight: 0.6, density: 0.5 }, { weight: 0.4, density: 0.5 }, { weight: 1, density: 0.8 }] },
  { name: 'della', perModel: [{ weight: 0.6, density: 0.5, epsilon: 0.1 }, { weight: 0.4, density: 0.5, epsilon: 0.1 }, { weight: 1, density: 0.6, epsilon: 0.2 }], shape: [9, N / 9], chunk: 3 * (N / 9) },
  { name: 'sce', globals: { select_topk: 0.5 }, perModel: [{ weight: 1 }, { weight: 1 }, { weight: 1 }] },
];

test('merge methods give bit-identical outputs on the kernels and in JavaScript, on random and edge inputs', async () => {
  const k = kernels();
  for (const specialEvery of [0, 13]) {
    for (const [index, c] of CASES.entries()) {
      assert.ok(findMethod(c.name), `${c.name} is registered`);
      const inputs = family(11 + index, 3, specialEvery);
      if (c.noBase) inputs.models[0] = inputs.base!;
      const given = c.noBase ? { models: inputs.models } : inputs;
      const what = `${c.name} ${JSON.stringify(c.globals ?? {})} ${specialEvery ? 'with' : 'without'} specials`;
      const outcome = (run: Promise<Float32Array>) => run.then((values) => ({ values }), (error: Error) => ({ error: error.message }));
      const reference = await outcome(runMethod(c.name, given, c.globals ?? {}, c.perModel, c.chunk ?? CHUNK, undefined, c.shape));
      const onKernels = await outcome(runMethod(c.name, given, c.globals ?? {}, c.perModel, c.chunk ?? CHUNK, k, c.shape));
      // Exact sums (the L1 rescale, Gram matrices) refuse non-finite inputs: the same way on both paths.
      if ('error' in reference || 'error' in onKernels) {
        assert.deepEqual(onKernels, reference, what);
        continue;
      }
      assertSameBits(onKernels.values, reference.values, what);
    }
  }
});

test('merge kernels: each loop equals its JavaScript reference on edge inputs, and refuses arrays outside its memory', async () => {
  const k = kernels();
  const n = 4099;
  const [ra, rb, rc, rd] = await k.memory.take([n * 4, n * 4, n * 4, 65536 * 4]);
  try {
    const a = ra.floats(n);
    const b = rb.floats(n);
    const out = rc.floats(n);
    a.set(baseValues(n, 1, 5));
    b.set(tunedValues(a.slice(), 2, 5));

    assert.equal(subtractResident(k, a, b, new Float32Array(n)), false, 'a JavaScript array is refused');
    assert.ok(subtractResident(k, a, b, out));
    const diff = new Float32Array(n);
    for (let i = 0; i < n; i++) diff[i] = a[i] - b[i];
    assertSameBits(out, diff, 'subtract');

    // The fused rank-cut passes compute the keys |a - b| themselves.
    const deltaKeys = Uint32Array.from(diff, (_, i) => new Uint32Array(Float32Array.of(a[i] - b[i]).buffer)[0] & 0x7fffffff);
    const fusedHist = rd.words(65536).fill(0);
    assert.ok(deltaHistogramResident(k, a, b, fusedHist));
    const fusedExpected = new Uint32Array(65536);
    for (const key of deltaKeys) fusedExpected[key >>> 16]++;
    assert.deepEqual(Array.from(fusedHist), Array.from(fusedExpected));
    const fusedBucket = deltaKeys[3] >>> 16;
    fusedHist.fill(0);
    fusedExpected.fill(0);
    assert.ok(deltaHistogramResident(k, a, b, fusedHist, fusedBucket));
    for (const key of deltaKeys) if (key >>> 16 === fusedBucket) fusedExpected[key & 0xffff]++;
    assert.deepEqual(Array.from(fusedHist), Array.from(fusedExpected));
    const fusedCounts = rd.words(5).fill(0);
    assert.ok(deltaCountEqualResident(k, a, b, deltaKeys[3], 1024, fusedCounts));
    const fusedEq = new Uint32Array(5);
    deltaKeys.forEach((key, i) => key === deltaKeys[3] && fusedEq[(i / 1024) | 0]++);
    assert.deepEqual(Array.from(fusedCounts), Array.from(fusedEq));
    // The lo pass with the bucket's members listed: the same histogram, and the members in order.
    fusedHist.fill(0);
    const [rm] = await k.memory.take([4 * n]);
    try {
      const memberCounts = rm.words(5).fill(0);
      const memberValues = new Uint16Array(rm.bytes().buffer, rm.offset + 64, n + MEMBER_SLACK);
      assert.equal(deltaBucketMembersResident(k, a, b, fusedBucket, fusedHist, 1024, memberCounts, memberValues.subarray(0, 2 + MEMBER_SLACK)), -1, 'more members than room');
      fusedHist.fill(0);
      memberCounts.fill(0);
      const listed = deltaBucketMembersResident(k, a, b, fusedBucket, fusedHist, 1024, memberCounts, memberValues);
      assert.deepEqual(Array.from(fusedHist), Array.from(fusedExpected));
      const expectedMembers = deltaKeys.filter((key) => key >>> 16 === fusedBucket).map((key) => key & 0xffff);
      assert.equal(listed, expectedMembers.length);
      assert.deepEqual(Array.from(memberValues.subarray(0, listed)), Array.from(expectedMembers));
      const perBlock = new Uint32Array(5);
      deltaKeys.forEach((key, i) => key >>> 16 === fusedBucket && perBlock[(i / 1024) | 0]++);
      assert.deepEqual(Array.from(memberCounts), Array.from(perBlock));
      assert.equal(deltaBucketMembersResident(k, a, b, fusedBucket, fusedHist, 1024, memberCounts, new Uint16Array(n)), undefined, 'a JavaScript array is refused');

      // Members in most groups, as with 16-bit inputs whose deltas are a few units of rounding:
      // the lists at, just under and well over the room they need.
      // Against a zero base the keys are the magnitudes: three of five choices fall in the bucket.
      const high = 0x3c23;
      const choices = [high << 16, (high << 16) | 0x1234, (high << 16) | 0x8000, (high + 1) << 16, ((high - 3) << 16) | 5];
      let seed = 7;
      const tiedBits = Uint32Array.from({ length: n }, () => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return (choices[(seed >>> 8) % choices.length] | (seed & 0x80000000)) >>> 0;
      });
      a.set(new Float32Array(tiedBits.buffer));
      b.fill(0);
      const tiedKeys = Array.from(a, (x, i) => new Uint32Array(Float32Array.of(x - b[i]).buffer)[0] & 0x7fffffff);
      const tiedBucket = tiedKeys[0] >>> 16;
      const members = tiedKeys.filter((key) => key >>> 16 === tiedBucket).map((key) => key & 0xffff);
      assert.ok(members.length > n / 4 && new Set(members).size > 1, 'most groups hold members, with more than one low value');
      const tiedPerBlock = new Uint32Array(5);
      tiedKeys.forEach((key, i) => key >>> 16 === tiedBucket && tiedPerBlock[(i / 1024) | 0]++);
      const tiedHist = new Uint32Array(65536);
      for (const low of members) tiedHist[low]++;
      for (const room of [members.length, members.length - 1, 3]) {
        fusedHist.fill(0);
        memberCounts.fill(0);
        const got = deltaBucketMembersResident(k, a, b, tiedBucket, fusedHist, 1024, memberCounts, memberValues.subarray(0, room + MEMBER_SLACK));
        assert.equal(got, room >= members.length ? members.length : -1, `room for ${room} of ${members.length}`);
        if (got !== -1) assert.deepEqual(Array.from(memberValues.subarray(0, members.length)), members);
        assert.deepEqual(Array.from(fusedHist), Array.from(tiedHist), 'the histogram is whole whatever the room');
        assert.deepEqual(Array.from(memberCounts), Array.from(tiedPerBlock));
      }
      // The same members as a tally per block of each distinct low value, in order of appearance.
      const distinctLows = [...new Set(members)];
      const expectedTally = distinctLows.map((low) => {
        const perBlock = new Array<number>(5).fill(0);
        tiedKeys.forEach((key, i) => key >>> 16 === tiedBucket && (key & 0xffff) === low && perBlock[(i / 1024) | 0]++);
        return perBlock;
      });
      const [rt] = await k.memory.take([64 + 2 * 5 * 4 * 16]);
      try {
        for (const room of [16, distinctLows.length, distinctLows.length - 1, 16]) {
          const lows = new Uint16Array(rt.bytes().buffer, rt.offset, room);
          const tally = new Uint16Array(rt.bytes().buffer, rt.offset + 64, 5 * 4 * room).fill(0);
          const got = deltaBucketTallyResident(k, a, b, tiedBucket, 1024, lows, tally);
          if (room < distinctLows.length) {
            assert.equal(got, -1, `more distinct lows than room for ${room}`);
            continue;
          }
          assert.equal(got, distinctLows.length);
          assert.deepEqual(Array.from(lows.subarray(0, got!)), distinctLows);
          const byLow = distinctLows.map((_, j) => Array.from({ length: 5 }, (__, block) => [0, 1, 2, 3].reduce((sum, lane) => sum + tally[(block * 4 + lane) * room + j], 0)));
          assert.deepEqual(byLow, expectedTally, `tally with room for ${room} (after a refused one, the same)`);
        }
      } finally {
        k.memory.give([rt]);
      }
    } finally {
      k.memory.give([rm]);
    }

    // The same passes over operands still stored as bf16 bits give the keys of their decoded values.
    const [rx16, rb16, rx32, rb32, rcounts] = await k.memory.take([2 * n, 2 * n, 4 * n, 4 * n, 4 * (65536 + 8)]);
    try {
      const x16 = new Uint16Array(rx16.bytes().buffer, rx16.offset, n);
      const b16 = new Uint16Array(rb16.bytes().buffer, rb16.offset, n);
      x16.set(new Uint16Array(encodeFromFloat32('BF16', tunedValues(baseValues(n, 8, 0), 9, 0)).buffer));
      b16.set(new Uint16Array(encodeFromFloat32('BF16', baseValues(n, 8, 0)).buffer));
      x16.set([0x7fc0, 0xff80, 0x8000, 0x0001], 20);
      const x32 = rx32.floats(n);
      const b32 = rb32.floats(n);
      x32.set(new Float32Array(Uint32Array.from(x16, (v) => v << 16).buffer));
      b32.set(new Float32Array(Uint32Array.from(b16, (v) => v << 16).buffer));
      const histBits = rcounts.words(65536);
      const histFloats = new Uint32Array(65536);
      histBits.fill(0);
      assert.ok(deltaHistogramResident(k, x16, b16, histBits));
      const histFloatsResident = rd.words(65536).fill(0);
      assert.ok(deltaHistogramResident(k, x32, b32, histFloatsResident));
      histFloats.set(histFloatsResident);
      assert.deepEqual(Array.from(histBits), Array.from(histFloats), 'hi pass: bf16 bits and decoded values agree');
      assert.equal(deltaHistogramResident(k, x16, b32, histBits), false, 'a mix of bits and values is refused');
      let cum = 0;
      let bucket16 = 65535;
      while (cum + histFloats[bucket16] < n / 2) cum += histFloats[bucket16--];
      const lists = [];
      for (const [x, base] of [[x16, b16], [x32, b32]] as const) {
        const hist = rd.words(65536).fill(0);
        const blockCounts = rcounts.words(8).fill(0);
        const values = new Uint16Array(rcounts.bytes().buffer, rcounts.offset + 64, n + MEMBER_SLACK);
        const listed = deltaBucketMembersResident(k, x, base, bucket16, hist, 1024, blockCounts, values);
        lists.push({ listed, hist: Array.from(hist), blockCounts: Array.from(blockCounts), values: Array.from(values.subarray(0, listed ?? 0)) });
      }
      assert.ok((lists[0].listed ?? 0) > 0);
      assert.deepEqual(lists[0], lists[1], 'lo pass with members: bf16 bits and decoded values agree');
    } finally {
      k.memory.give([rx16, rb16, rx32, rb32, rcounts]);
    }

    const scaled = out.slice();
    for (let i = 0; i < n; i++) scaled[i] = scaled[i] * Math.fround(1.37);
    assert.ok(scaleResident(k, out, Math.fround(1.37)));
    assertSameBits(out, scaled, 'scale');

    const keys = new Uint32Array(out.buffer, out.byteOffset, n);
    const expectedKeys = Uint32Array.from(keys, (x) => x & 0x7fffffff);
    assert.ok(clearSignsResident(k, keys));
    assert.deepEqual(keys, expectedKeys);

    const hist = rd.words(65536).fill(0);
    assert.ok(histogramResident(k, keys, hist));
    const hi = new Uint32Array(65536);
    for (const key of expectedKeys) hi[key >>> 16]++;
    assert.deepEqual(Array.from(hist), Array.from(hi));
    // The non-empty bins, as tasks send a histogram back.
    const [rw] = await k.memory.take([4 * 65536 * 3]);
    try {
      const work = new KernelWork(k, rw);
      const sparse = nonEmptyBinsResident(work, hist);
      const nonEmpty = [...hi.keys()].filter((bin) => hi[bin] !== 0);
      assert.deepEqual(Array.from(sparse!.bins), nonEmpty);
      assert.deepEqual(Array.from(sparse!.counts), nonEmpty.map((bin) => hi[bin]));
      assert.equal(nonEmptyBinsResident(work, new Uint32Array(65536)), undefined, 'a JavaScript array is refused');
    } finally {
      k.memory.give([rw]);
    }
    const bucket = expectedKeys[17] >>> 16;
    hist.fill(0);
    assert.ok(histogramResident(k, keys, hist, bucket));
    const lo = new Uint32Array(65536);
    for (const key of expectedKeys) if (key >>> 16 === bucket) lo[key & 0xffff]++;
    assert.deepEqual(Array.from(hist), Array.from(lo));
    const counts = hist.subarray(0, 5).fill(0);
    assert.ok(countEqualResident(k, keys, expectedKeys[17], 1024, counts));
    const eq = new Uint32Array(5);
    expectedKeys.forEach((key, i) => key === expectedKeys[17] && eq[(i / 1024) | 0]++);
    assert.deepEqual(Array.from(counts), Array.from(eq));

    // Rank cuts, both orders, with threshold ties taken part way (need) after some seen before (eqBefore).
    // Also with ties everywhere (values from a handful, as 16-bit deltas are): the cut then ends
    // inside a group, after whole groups of ties taken and before whole groups left.
    const handful = [0.5, -0.5, 0.25, 0.75, -0.125];
    const tiedValues = Float32Array.from({ length: n }, (_, i) => handful[(i * 7 + ((i * i) % 11)) % handful.length]);
    for (const order of ['desc', 'asc'] as const) {
      for (const [inputs, need, eqBefore] of [['random', 0, 0], ['random', 3, 1], ['random', 1e9, 0], ['tied', 0, 0], ['tied', 1, 0], ['tied', 555, 2], ['tied', 1638, 1637], ['tied', 1e9, 5]] as const) {
        a.set(inputs === 'tied' ? tiedValues : tunedValues(new Float32Array(n), 3, 0));
        const threshold = new Uint32Array(a.buffer, a.byteOffset, n)[5] & 0x7fffffff;
        const cut: RankCut = { kind: 'rank-cut', order, threshold, need, eqPrefixBlock: 0, eqBefore };
        const ties = new Uint32Array(a.slice().buffer).filter((key) => (key & 0x7fffffff) === threshold).length;
        const js = a.slice();
        keepInCut(js, cut); // a JavaScript array: the reference loop
        const seen = keepInCutResident(k, a, threshold, need, eqBefore, order === 'desc');
        assert.equal(seen, eqBefore + ties, `keepInCut ${order} ${inputs} need ${need}: ties seen`);
        assertSameBits(a, js, `keepInCut ${order} ${inputs} need ${need}`);
      }
    }

    // Weighted sums and the task-vector combination, through their wrappers.
    const models = [ra.floats(n), rb.floats(n)];
    models[0].set(baseValues(n, 4, 7));
    models[1].set(baseValues(n, 5, 7));
    const weights = [Math.fround(0.3), Math.fround(-1.25)];
    assert.ok(weightedSumResident(k, models, weights, true, Math.fround(weights[0] + weights[1]), out));
    const sum = new Float32Array(n);
    for (let e = 0; e < n; e++) {
      let s = 0;
      for (let i = 0; i < 2; i++) s = Math.fround(s + Math.fround(weights[i] * models[i][e]));
      sum[e] = Math.fround(s / Math.fround(weights[0] + weights[1]));
    }
    assertSameBits(out, sum, 'weightedSum');
    // The same from the models' bf16 bits (n is not a multiple of 8: the tail too), edge values included.
    const asBf16 = models.map((m) => new Uint16Array(encodeFromFloat32('BF16', m).buffer));
    asBf16[1].set([0x7fc0, 0xff80, 0x8000, 0x0001, 0x7f7f], 11);
    const bitsIn = [ra, rb].map((r, i) => {
      const view = new Uint16Array(r.bytes().buffer, r.offset, n);
      view.set(asBf16[i]);
      return view;
    });
    const decodedModels = asBf16.map((b) => new Float32Array(Uint32Array.from(b, (x) => x << 16).buffer));
    const fromBits = new Float32Array(n);
    for (const normalize of [true, false]) {
      for (let e = 0; e < n; e++) {
        let s = 0;
        for (let i = 0; i < 2; i++) s = Math.fround(s + Math.fround(weights[i] * decodedModels[i][e]));
        fromBits[e] = normalize ? Math.fround(s / Math.fround(weights[0] + weights[1])) : s;
      }
      assert.ok(weightedSumBf16Resident(k, bitsIn, weights, normalize, Math.fround(weights[0] + weights[1]), out));
      assertSameBits(out, fromBits, `weightedSumBf16, normalize ${normalize}`);
    }
    assert.equal(weightedSumBf16Resident(k, bitsIn.map((b) => b.subarray(0, 8)), weights, true, 1, out), false, 'models shorter than the output are refused');
    assert.equal(taskCombineResident(k, models, weights, new Float32Array(n), true, true, 1, out), false, 'a JavaScript base is refused');

    // Encoding the output: the kernels' BF16/F16 equal the JavaScript encoders.
    const bytes = rd.floats(Math.ceil(n / 2));
    for (const dtype of ['BF16', 'F16'] as const) {
      const encoded = encodeResident(k, dtype, models[0], bytes);
      assert.ok(encoded);
      assert.deepEqual(Buffer.from(encoded), Buffer.from(encodeFromFloat32(dtype, models[0].slice())));
    }
  } finally {
    k.memory.give([ra, rb, rc, rd]);
  }
});

test('whole merges write the same bytes with the WebAssembly and the JavaScript kernels', async () => {
  const dir = tempDir();
  try {
    const { base, finetunes } = await writeTinyFamily(path.join(dir, 'family'));
    const recipes = [
      `merge_method: linear\nmodels:\n  - model: ${base}\n    parameters: {weight: 0.5}\n${finetunes.map((f) => `  - model: ${f}\n    parameters: {weight: 0.25}\n`).join('')}`,
      `merge_method: ties\nbase_model: ${base}\nparameters: {density: 0.5}\nmodels:\n${finetunes.map((f, i) => `  - model: ${f}\n    parameters: {weight: ${0.2 + 0.2 * i}}\n`).join('')}`,
      `merge_method: task_arithmetic\nbase_model: ${base}\nout_dtype: float16\nmodels:\n${finetunes.map((f) => `  - model: ${f}\n    parameters: {weight: 0.3}\n`).join('')}`,
      `merge_method: breadcrumbs_ties\nbase_model: ${base}\nparameters: {density: 0.6, gamma: 0.02, weight: 0.5}\ndtype: float32\nmodels: [${finetunes.join(', ')}]\n`,
    ];
    for (const [i, text] of recipes.entries()) {
      const outputs: Buffer[] = [];
      for (const choice of ['javascript', 'webassembly'] as const) {
        selectKernels(choice);
        const file = path.join(dir, `recipe-${i}.yml`);
        fs.writeFileSync(file, text);
        const out = path.join(dir, `out-${i}-${choice}`);
        const plan = await planMerge(parseRecipe(text, file), { out });
        // Small chunks: many tasks and sub-chunks, so rank-cut ties straddle them.
        await executeMerge(plan, { runner: new InlineRunner(mergeTasks), out, graftVersion: 'test', chunkElements: 1024 });
        outputs.push(fs.readFileSync(path.join(out, 'model.safetensors')));
      }
      assert.ok(outputs[0].equals(outputs[1]), `recipe ${i} gives the same bytes on both kernels`);
    }
  } finally {
    selectKernels('webassembly');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
