// Exact rank cuts (src/core/merge/select.ts) against a sort, with the partials of each task packed
// as workers send them (sparse histograms) and as they are. The kernels' member tallies are tested
// in merge-kernels.test.ts (the kernel, and whole merges against the JavaScript path).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChunkData, Found, Stage, TensorView } from '../../src/core/merge/methods/types';
import { rankCutStages, type RankCut } from '../../src/core/merge/select';
import { random32 } from '../support/kernels';

const BLOCK = 1024;

/**
 * Keys like the magnitudes of 16-bit deltas: a few values repeat very often, one of them at the
 * cut, and every other key is spread thin; `share` of them in the cut's bucket.
 */
function tiedKeys(numel: number, seed: number): Uint32Array {
  const next = random32(seed);
  const high = 0x3a80;
  const lows = [0x0000, 0x0400, 0x8000, 0xa000, 0xc000];
  return Uint32Array.from({ length: numel }, () => {
    const r = next() / 4294967296;
    if (r < 0.1) return ((high << 16) | lows[next() % lows.length]) >>> 0;
    if (r < 0.55) return (((high + 1 + (next() % 64)) << 16) | (next() & 0xffff)) >>> 0;
    return (((high - 1 - (next() % 64)) << 16) | (next() & 0xffff)) >>> 0;
  });
}

function view(numel: number): TensorView {
  return { name: 't', shape: [numel], numel, rowLength: numel, models: 1, hasBase: false, globals: {}, perModel: [{}], seed: 0, streams: [0] };
}

/** Runs the cut's stages over chunks of `chunk` elements, packing each chunk's partial or not. */
function cutOf(keys: Uint32Array, rank: number, order: 'asc' | 'desc', chunk: number, pack: boolean): RankCut {
  const next = rankCutStages('cut', (_t, _found, c) => [keys.subarray(c.start, c.start + c.count)], () => [{ key: 0, rank, order }]);
  const t = view(keys.length);
  const found: Found = {};
  for (let stage: Stage | null = next(t, found); stage; stage = next(t, found)) {
    let merged: unknown;
    for (let start = 0; start < keys.length; start += chunk) {
      const data: ChunkData = { start, count: Math.min(chunk, keys.length - start), models: [] };
      let partial = stage.map(t, found, data);
      if (pack && stage.pack) partial = stage.pack(partial);
      merged = start === 0 ? partial : stage.merge(merged, partial);
    }
    found[stage.id] = stage.finalize(merged, t, found);
  }
  return (found.cut as RankCut[])[0];
}

/** The same cut by sorting: threshold, how many of its ties are in, and the ties before each block. */
function sortedCut(keys: Uint32Array, rank: number, order: 'asc' | 'desc'): { threshold: number; need: number; eqBefore: number[] } {
  const sorted = Array.from(keys).sort((a, b) => (order === 'desc' ? b - a : a - b));
  const threshold = sorted[rank - 1];
  const need = sorted.slice(0, rank).filter((k) => k === threshold).length;
  const eqBefore: number[] = [];
  let ties = 0;
  for (let i = 0; i < keys.length; i++) {
    if (i % BLOCK === 0) eqBefore.push(ties);
    if (keys[i] === threshold) ties++;
  }
  return { threshold, need, eqBefore };
}

test('rank cuts equal a sort, ties by index, whether tasks send their partials packed or not, whatever the chunking', () => {
  const numel = 37 * BLOCK + 300;
  const keys = tiedKeys(numel, 5);
  // The cut's threshold is one of the repeated keys: rank ends inside its run of ties.
  const rank = keys.filter((k) => k >>> 16 > 0x3a80).length + 1234;
  for (const order of ['desc', 'asc'] as const) {
    const r = order === 'desc' ? rank : numel - rank + 1;
    const truth = sortedCut(keys, r, order);
    assert.ok(truth.need > 0 && truth.need < keys.filter((k) => k === truth.threshold).length, 'the cut takes some of its threshold ties');
    for (const chunk of [4 * BLOCK, 7 * BLOCK, numel]) {
      for (const pack of [false, true]) {
        const cut = cutOf(keys, r, order, chunk, pack);
        const what = `${order}, chunks of ${chunk}, ${pack ? 'packed' : 'as mapped'}`;
        assert.equal(cut.threshold, truth.threshold, what);
        assert.equal(cut.need, truth.need, what);
        assert.deepEqual(Array.from(cut.eqPrefix!.subarray(0, truth.eqBefore.length)), truth.eqBefore, what);
      }
    }
  }
});
