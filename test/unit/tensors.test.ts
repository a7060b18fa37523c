// The shared tensor layer: one chunk reader and one read-ahead loop for stats, diff and merge.
import assert from 'node:assert/strict';
import test from 'node:test';
import { combineTaskMaps } from '../../src/core/engine/pool';
import { openCheckpoint, openForRead, readElements } from '../../src/core/safetensors';
import { ChunkReader } from '../../src/core/tensors/chunkReader';
import { elementRanges, streamUnits } from '../../src/core/tensors/stream';
import { fixture } from './helpers';

test('ChunkReader reads every decodable dtype exactly as readElements does, at any offset', async () => {
  const layout = await openCheckpoint(fixture('formats', 'all_dtypes.safetensors'));
  const reader = new ChunkReader();
  let checked = 0;
  for (const ref of layout.tensors.values()) {
    if (ref.numel < 2) continue;
    const handle = await openForRead(ref.file);
    try {
      for (const [start, count] of [[0, ref.numel], [1, ref.numel - 1], [Math.floor(ref.numel / 2), 1]]) {
        const expected = await readElements(ref, start, count, handle);
        const operand = await reader.read(ref, handle, start, count);
        assert.deepEqual(Array.from(reader.valuesOf(operand)), Array.from(expected), `${ref.name} [${start}, +${count}) via read()`);
        const values = await reader.readValues(ref, handle, start, count);
        assert.deepEqual(Array.from(values), Array.from(expected), `${ref.name} [${start}, +${count}) via readValues()`);
        checked++;
      }
    } finally {
      await handle.close();
    }
  }
  assert.ok(checked >= 30, `checked ${checked} ranges`);
  reader.dispose();
});

test('streamUnits reads one unit ahead, in order, and settles the read in flight on an error', async () => {
  const log: string[] = [];
  await streamUnits([1, 2, 3], async (unit, slot) => {
    log.push(`read ${unit}@${slot}`);
    return unit * 10;
  }, (data, unit) => {
    log.push(`process ${unit}=${data}`);
  });
  assert.deepEqual(log, ['read 1@0', 'read 2@1', 'process 1=10', 'read 3@0', 'process 2=20', 'process 3=30']);

  let settled = false;
  await assert.rejects(streamUnits([1, 2], async (unit) => {
    if (unit === 2) await new Promise((resolve) => setTimeout(resolve, 20)).then(() => (settled = true));
    return unit;
  }, () => {
    throw new Error('boom');
  }), /boom/);
  assert.ok(settled, 'the read-ahead finished before streamUnits returned');
  assert.deepEqual(elementRanges(5, 10, 4), [{ start: 5, count: 4 }, { start: 9, count: 4 }, { start: 13, count: 2 }]);
});

test('combineTaskMaps refuses a kernel name registered twice', () => {
  const a = { one: async () => 1 };
  const b = { two: async () => 2 };
  const combined = combineTaskMaps(a, b);
  assert.deepEqual(Object.keys(combined), ['one', 'two']);
  assert.throws(() => combineTaskMaps(a, { one: async () => 3 }), /"one" is registered twice/);
});
