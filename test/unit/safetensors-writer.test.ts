// Writing: torch-exact float32 -> bf16/f16, byte-identical layout to files written by the
// reference, round trips of every dtype, the atomic file writer and sharded sets.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import {
  DTYPES,
  dtypeBits,
  encodeFromFloat32,
  f32BitsToBf16,
  f32BitsToF16,
  openCheckpoint,
  planSafetensors,
  planShards,
  readElements,
  readHeader,
  readTensorBytes,
  SafetensorsError,
  SafetensorsFileWriter,
  writeSafetensors,
  writeShardedSafetensors,
  type DType,
  type TensorData,
  type TensorRef,
} from '../../src/core/safetensors';
import { fixture, tempDir } from './helpers';

async function tensorsOf(file: string): Promise<TensorData[]> {
  const header = await readHeader(file);
  return Promise.all(header.tensors.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorBytes({ ...t, file }) })));
}

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = tempDir();
    try {
      await fn(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('float32 -> bf16 and f16 are bit-identical to torch (rounding.safetensors)', async () => {
  const file = fixture('formats', 'rounding.safetensors');
  const byName = new Map((await tensorsOf(file)).map((t) => [t.name, t]));
  const src = new Float32Array(byName.get('src_f32')!.data.slice().buffer);
  assert.ok(src.length > 4000);
  assert.ok(src.some(Number.isNaN) && src.some((v) => v === Infinity) && src.some((v) => v !== 0 && Math.abs(v) < 6e-8), 'covers NaN, inf, f16 subnormals');
  for (const [dtype, name] of [['BF16', 'to_bf16'], ['F16', 'to_f16']] as const) {
    const expected = new Uint16Array(byName.get(name)!.data.slice().buffer);
    const actual = new Uint16Array(encodeFromFloat32(dtype, src).buffer);
    const mismatches = [...expected.keys()].filter((i) => expected[i] !== actual[i]);
    assert.deepEqual(mismatches.slice(0, 5).map((i) => [src[i], expected[i].toString(16), actual[i].toString(16)]), [], `${dtype} mismatches: ${mismatches.length}`);
  }
});

test('bf16/f16 encoders: ties to even, overflow to inf, NaN', () => {
  assert.equal(f32BitsToBf16(0x3f808000), 0x3f80); // tie, even stays
  assert.equal(f32BitsToBf16(0x3f818000), 0x3f82); // tie, odd rounds up
  assert.equal(f32BitsToBf16(0x7f7fffff), 0x7f80); // max f32 rounds to inf
  assert.equal(f32BitsToBf16(0xffc00001), 0xffff);
  assert.equal(f32BitsToF16(0x477ff000), 0x7c00); // 65520 rounds to inf
  assert.equal(f32BitsToF16(0x477fe000), 0x7bff); // 65504 is the largest finite
  assert.equal(f32BitsToF16(0x33800000), 0x0001); // 2^-24, smallest subnormal
  assert.equal(f32BitsToF16(0x33000000), 0x0000); // 2^-25 ties to even (zero)
  assert.equal(f32BitsToF16(0xff800000), 0xfc00);
  assert.equal(f32BitsToF16(0xffc00000), 0xfe00);
  assert.throws(() => encodeFromFloat32('I8', new Float32Array(1)), (e: SafetensorsError) => e.rule === 'unsupported-dtype');
});

test('planSafetensors reproduces files written by the reference byte for byte', async () => {
  for (const name of ['one_matrix_bf16', 'all_dtypes', 'rounding', 'empty', 'one_scalar_f32', 'one_empty_f32', 'one_bool', 'one_u64', 'one_f8_e8m0']) {
    const file = fixture('formats', `${name}.safetensors`);
    const original = fs.readFileSync(file);
    const header = await readHeader(file);
    const tensors = await tensorsOf(file);
    // Shuffle the input order: the layout must not depend on it.
    const plan = planSafetensors([...tensors].reverse(), header.metadata);
    assert.equal(plan.fileSize, original.length, name);
    assert.deepEqual(Buffer.from(plan.headerBytes), original.subarray(0, plan.headerBytes.length), `${name}: header bytes`);
    const rebuilt = new Uint8Array(plan.fileSize);
    rebuilt.set(plan.headerBytes);
    for (const t of tensors) rebuilt.set(t.data, plan.tensors.get(t.name)!.begin);
    assert.ok(Buffer.from(rebuilt).equals(original), `${name}: whole file`);
  }
});

function sampleBytes(dtype: DType, numel: number, seed: number): Uint8Array {
  const bytes = new Uint8Array((numel * dtypeBits(dtype)) / 8);
  let x = seed;
  for (let i = 0; i < bytes.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

test('every dtype round-trips through the writer and the reader', withTempDir(async (dir) => {
  const tensors: TensorData[] = DTYPES.map((dtype, i) => {
    // Sub-byte dtypes need element counts that fill whole bytes; every fifth tensor is empty.
    const shape = dtype.startsWith('F6') ? [2, 4] : dtype === 'F4' ? [3, 2] : i % 5 === 0 ? [0, 3] : [3, 1 + (i % 4)];
    const numel = shape.reduce((a, b) => a * b, 1);
    return { name: `t.${dtype.toLowerCase()}`, dtype, shape, data: sampleBytes(dtype, numel, i + 1) };
  });
  tensors.push({ name: 'scalar', dtype: 'F32', shape: [], data: new Uint8Array(new Float32Array([Math.PI]).buffer) });
  tensors.push({ name: 'ünïcode "name"\n', dtype: 'BF16', shape: [2], data: encodeFromFloat32('BF16', new Float32Array([1, -2])) });
  const file = path.join(dir, 'all.safetensors');
  await writeSafetensors(file, tensors, { format: 'pt', note: 'a "quoted" value' });
  const header = await readHeader(file);
  assert.deepEqual(header.metadata, { format: 'pt', note: 'a "quoted" value' });
  assert.equal(header.tensors.length, tensors.length);
  for (const t of tensors) {
    const info = header.tensors.find((x) => x.name === t.name)!;
    assert.ok(info, t.name);
    assert.equal(info.dtype, t.dtype);
    assert.deepEqual(info.shape, t.shape);
    const ref: TensorRef = { ...info, file };
    assert.deepEqual(await readTensorBytes(ref), t.data, `${t.name} bytes`);
  }
  const scalar = header.tensors.find((x) => x.name === 'scalar')!;
  assert.equal((await readElements({ ...scalar, file }, 0, 1))[0], Math.fround(Math.PI));
}));

test('SafetensorsFileWriter: pieces in any order and concurrently, then an atomic commit', withTempDir(async (dir) => {
  const target = path.join(dir, 'model.safetensors');
  const values = Float32Array.from({ length: 10_000 }, (_, i) => Math.sin(i));
  const bytes = new Uint8Array(values.buffer);
  const writer = await SafetensorsFileWriter.create(target, [
    { name: 'w', dtype: 'F32', shape: [100, 100] },
    { name: 'b', dtype: 'F32', shape: [100] },
  ], { format: 'pt' });
  assert.ok(fs.existsSync(writer.partialPath));
  assert.ok(!fs.existsSync(target), 'nothing at the target before commit');
  const pieces = Array.from({ length: 10 }, (_, i) => i).reverse();
  await Promise.all(pieces.map((i) => writer.writeTensor('w', bytes.subarray(i * 4000, (i + 1) * 4000), i * 4000)));
  await writer.writeTensor('b', bytes.subarray(0, 400));
  await writer.commit();
  assert.ok(!fs.existsSync(writer.partialPath));
  const header = await readHeader(target);
  const w = header.tensors.find((t) => t.name === 'w')!;
  assert.deepEqual(await readElements({ ...w, file: target }, 0, 10_000), values);
}));

test('SafetensorsFileWriter refuses incomplete commits, bad ranges, and existing targets', withTempDir(async (dir) => {
  const target = path.join(dir, 'x.safetensors');
  const specs = [{ name: 'a', dtype: 'F32' as const, shape: [4] }];
  const writer = await SafetensorsFileWriter.create(target, specs);
  await writer.writeTensor('a', new Uint8Array(8), 0);
  await assert.rejects(writer.commit(), (e: SafetensorsError) => e.rule === 'incomplete-write' && /byte 8 of 16 is missing/.test(e.message));
  await assert.rejects(writer.writeTensor('a', new Uint8Array(8), 12), (e: SafetensorsError) => e.rule === 'invalid-spec');
  await assert.rejects(writer.writeTensor('zz', new Uint8Array(1)), (e: SafetensorsError) => e.rule === 'invalid-spec');
  await writer.abort();
  assert.ok(!fs.existsSync(writer.partialPath), 'abort removes the partial file');
  assert.ok(!fs.existsSync(target));

  fs.writeFileSync(target, 'precious');
  await assert.rejects(SafetensorsFileWriter.create(target, specs), (e: SafetensorsError) => e.rule === 'target-exists');
  await assert.rejects(writeSafetensors(target, [{ ...specs[0], data: new Uint8Array(16) }]), (e: SafetensorsError) => e.rule === 'target-exists');
  assert.equal(fs.readFileSync(target, 'utf8'), 'precious', 'the existing file is untouched');
  await writeSafetensors(target, [{ ...specs[0], data: new Uint8Array(16) }], null, { overwrite: true });
  assert.equal((await readHeader(target)).tensors[0].name, 'a');

  // The target appearing between create() and commit() is not clobbered either.
  const late = path.join(dir, 'late.safetensors');
  const racing = await SafetensorsFileWriter.create(late, specs);
  await racing.writeTensor('a', new Uint8Array(16));
  fs.writeFileSync(late, 'arrived meanwhile');
  await assert.rejects(racing.commit(), (e: SafetensorsError) => e.rule === 'target-exists');
  assert.equal(fs.readFileSync(late, 'utf8'), 'arrived meanwhile');
  assert.ok(!fs.existsSync(racing.partialPath));
}));

test('planSafetensors validates specs', () => {
  const bad = (specs: Parameters<typeof planSafetensors>[0], pattern: RegExp) =>
    assert.throws(() => planSafetensors(specs), (e: SafetensorsError) => e.rule === 'invalid-spec' && pattern.test(e.message));
  bad([{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F32', shape: [1] }], /twice/);
  bad([{ name: '__metadata__', dtype: 'F32', shape: [1] }], /__metadata__/);
  bad([{ name: 'a', dtype: 'F32', shape: [-1] }], /non-negative/);
  bad([{ name: 'a', dtype: 'F32', shape: [1.5] }], /non-negative/);
  bad([{ name: 'a', dtype: 'F4', shape: [3] }], /whole bytes/);
  bad([{ name: 'a', dtype: 'F17' as DType, shape: [1] }], /unknown dtype/);
  bad([{ name: '\ud800', dtype: 'F32', shape: [1] }], /not a valid string/);
});

test('sharded writes split like transformers and open back as one checkpoint', withTempDir(async (dir) => {
  const tensors: TensorData[] = Array.from({ length: 7 }, (_, i) => ({
    name: `layer.${i}.weight`,
    dtype: 'BF16' as const,
    shape: [10, 10 * (i + 1)],
    data: sampleBytes('BF16', 100 * (i + 1), i),
  }));
  const { files, indexFile } = await writeShardedSafetensors(dir, tensors, { maxShardBytes: 1000, metadata: { format: 'pt' } });
  // Sizes 200, 400, ..., 1400: greedy in order, oversized tensors alone.
  assert.deepEqual(files.map((f) => path.basename(f)), [1, 2, 3, 4, 5, 6].map((i) => `model-0000${i}-of-00006.safetensors`));
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  assert.equal(index.metadata.total_size, tensors.reduce((n, t) => n + t.data.length, 0));
  assert.equal(index.metadata.total_parameters, 2800);
  assert.deepEqual(Object.keys(index.weight_map), tensors.map((t) => t.name).sort());
  assert.equal(index.weight_map['layer.0.weight'], 'model-00001-of-00006.safetensors');
  assert.equal(index.weight_map['layer.1.weight'], 'model-00001-of-00006.safetensors');
  assert.equal(index.weight_map['layer.2.weight'], 'model-00002-of-00006.safetensors');

  const layout = await openCheckpoint(dir);
  assert.equal(layout.format, 'safetensors-sharded');
  assert.equal(layout.indexFile, indexFile);
  assert.equal(layout.tensors.length, 7);
  assert.equal(layout.warnings, undefined);
  for (const t of tensors) {
    const ref = layout.tensors.find((x) => x.name === t.name)!;
    assert.deepEqual(await readTensorBytes(ref), t.data);
  }
  await assert.rejects(writeShardedSafetensors(dir, tensors, { maxShardBytes: 1000 }), (e: SafetensorsError) => e.rule === 'target-exists');
}));

test('planShards splits from specs alone, as the in-memory sharded writer does', () => {
  const specs = [
    { name: 'a', dtype: 'F32' as const, shape: [100] },
    { name: 'b', dtype: 'BF16' as const, shape: [300] },
    { name: 'huge', dtype: 'F32' as const, shape: [1000] },
    { name: 'c', dtype: 'F16' as const, shape: [10] },
  ];
  const plan = planShards(specs, 1000, 'model');
  // a and b fill the 1000-byte limit exactly; the oversized tensor gets a shard of its own.
  assert.deepEqual(plan.shards.map((s) => [s.file, s.specs.map((t) => t.name), s.bytes]), [
    ['model-00001-of-00003.safetensors', ['a', 'b'], 1000],
    ['model-00002-of-00003.safetensors', ['huge'], 4000],
    ['model-00003-of-00003.safetensors', ['c'], 20],
  ]);
  const index = JSON.parse(plan.indexJson);
  assert.equal(index.metadata.total_size, 5020);
  assert.equal(index.metadata.total_parameters, 1410);
  assert.deepEqual(Object.keys(index.weight_map), ['a', 'b', 'c', 'huge']);
  assert.throws(() => planShards(specs, 0), /maxShardBytes must be a positive/);
});
