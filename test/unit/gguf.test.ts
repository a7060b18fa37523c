import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import {
  GgufError, GgufValueType, ggufNumber, ggufString, ggufValue, readGgufHeader, writeGguf,
  type GgufMetadataEntry, type GgufTensorToWrite,
} from '../../src/core/gguf';
import { tempDir } from './helpers';

const metadata: GgufMetadataEntry[] = [
  { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
  { key: 'general.name', type: GgufValueType.STRING, value: 'Tiny Llama Q8 — ünïcode' },
  { key: 'general.alignment', type: GgufValueType.UINT32, value: 64 },
  { key: 'general.base_model.count', type: GgufValueType.UINT32, value: 1 },
  { key: 'general.base_model.0.name', type: GgufValueType.STRING, value: 'Tiny Llama Base' },
  { key: 'general.base_model.0.repo_url', type: GgufValueType.STRING, value: 'https://huggingface.co/acme/tiny-llama-base' },
  { key: 'test.u8', type: GgufValueType.UINT8, value: 255 },
  { key: 'test.i8', type: GgufValueType.INT8, value: -128 },
  { key: 'test.u16', type: GgufValueType.UINT16, value: 65535 },
  { key: 'test.i16', type: GgufValueType.INT16, value: -32768 },
  { key: 'test.u32', type: GgufValueType.UINT32, value: 4294967295 },
  { key: 'test.i32', type: GgufValueType.INT32, value: -2147483648 },
  { key: 'test.f32', type: GgufValueType.FLOAT32, value: 0.5 },
  { key: 'test.bool', type: GgufValueType.BOOL, value: true },
  { key: 'test.u64', type: GgufValueType.UINT64, value: 18446744073709551615n },
  { key: 'test.i64', type: GgufValueType.INT64, value: -9223372036854775808n },
  { key: 'test.f64', type: GgufValueType.FLOAT64, value: 1e-300 },
  { key: 'test.strings', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, length: 3, items: ['a', '', 'ç'] } },
  { key: 'test.nested', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.ARRAY, length: 2, items: [
    { itemType: GgufValueType.INT32, length: 2, items: [1, -2] },
    { itemType: GgufValueType.INT32, length: 0, items: [] },
  ] } },
  { key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, length: 100, items: Array.from({ length: 100 }, (_, i) => `tok${i}`) } },
];

function tensors(): GgufTensorToWrite[] {
  const f32 = new Float32Array([1, 2, 3, 4, 5, 6]);
  const q8 = new Uint8Array(34 * 2); // two Q8_0 blocks of 32 elements
  return [
    { name: 'token_embd.weight', dims: [3, 2], type: 0, data: new Uint8Array(f32.buffer) },
    { name: 'blk.0.attn_q.weight', dims: [64], type: 8, data: q8 },
    { name: 'output_norm.weight', dims: [4], type: 1, data: new Uint8Array(8) },
  ];
}

async function writeSample(dir: string, name = 'tiny.gguf'): Promise<string> {
  const file = path.join(dir, name);
  await writeGguf(file, { metadata, tensors: tensors() });
  return file;
}

test('a written GGUF file reads back with every value type, tensor infos and alignment', async () => {
  const dir = tempDir();
  try {
    const file = await writeSample(dir);
    const header = await readGgufHeader(file);
    assert.equal(header.version, 3);
    assert.equal(header.alignment, 64);
    assert.equal(header.dataStart % 64, 0);
    assert.deepEqual(header.metadata.map((m) => m.key), metadata.map((m) => m.key));
    for (const expected of metadata) {
      const actual = header.metadata.find((m) => m.key === expected.key)!;
      assert.equal(actual.type, expected.type, expected.key);
      if (expected.key === 'test.f32') assert.equal(actual.value, 0.5);
      else assert.deepEqual(actual.value, expected.value, expected.key);
    }
    assert.equal(ggufString(header, 'general.architecture'), 'llama');
    assert.equal(ggufNumber(header, 'test.u32'), 4294967295);
    assert.equal(ggufNumber(header, 'test.u64'), undefined, 'a u64 past 2^53 is not a safe number');
    assert.equal(ggufValue(header, 'missing'), undefined);

    assert.deepEqual(header.tensors.map((t) => [t.name, t.dims, t.typeName, t.numel]), [
      ['token_embd.weight', [3, 2], 'F32', 6],
      ['blk.0.attn_q.weight', [64], 'Q8_0', 64],
      ['output_norm.weight', [4], 'F16', 4],
    ]);
    const [embd, q, norm] = header.tensors;
    assert.equal(embd.offset, 0);
    assert.equal(q.offset, 64, 'each tensor starts on the alignment');
    assert.equal(norm.offset, 192, '68 bytes of Q8_0 are padded to 128');
    assert.equal(q.end - q.begin, 68);
    // The data really is where the header says.
    const bytes = fs.readFileSync(file);
    assert.deepEqual(new Float32Array(bytes.buffer.slice(bytes.byteOffset + embd.begin, bytes.byteOffset + embd.end)), new Float32Array([1, 2, 3, 4, 5, 6]));
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('long arrays can be skipped: their type and length are kept, their items are not', async () => {
  const dir = tempDir();
  try {
    const header = await readGgufHeader(await writeSample(dir), { maxArrayItems: 10 });
    assert.deepEqual(ggufValue(header, 'tokenizer.ggml.tokens'), { itemType: GgufValueType.STRING, length: 100 });
    assert.equal((ggufValue(header, 'test.strings') as { items?: unknown[] }).items?.length, 3);
    assert.equal(header.tensors.length, 3, 'skipping must land exactly on the next field');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('version 2 files read too; the writer refuses data that does not match the type', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'v2.gguf');
    await writeGguf(file, { metadata: [], tensors: tensors(), version: 2 });
    const header = await readGgufHeader(file);
    assert.equal(header.version, 2);
    assert.equal(header.alignment, 32);
    await assert.rejects(writeGguf(path.join(dir, 'bad.gguf'), { metadata: [], tensors: [{ name: 'x', dims: [4], type: 0, data: new Uint8Array(3) }] }), /3 bytes of data given.*need 16/);
    await assert.rejects(writeGguf(path.join(dir, 'bad.gguf'), { metadata: [], tensors: [{ name: 'x', dims: [31], type: 8, data: new Uint8Array(34) }] }), /not a multiple of the Q8_0 block size 32/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

/** Byte positions in the sample file, found by parsing it (so the corruptions below hit the right field). */
function layoutOf(bytes: Buffer) {
  let pos = 24;
  const readString = () => {
    const length = Number(bytes.readBigUInt64LE(pos));
    pos += 8 + length;
  };
  const sizes: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skipValue = (type: number): void => {
    if (type === 8) return readString();
    if (type === 9) {
      const itemType = bytes.readUInt32LE(pos);
      const length = Number(bytes.readBigUInt64LE(pos + 4));
      pos += 12;
      for (let i = 0; i < length; i++) skipValue(itemType);
      return;
    }
    pos += sizes[type];
  };
  const keys: Record<string, { keyAt: number; typeAt: number; valueAt: number }> = {};
  const kvCount = Number(bytes.readBigUInt64LE(16));
  for (let i = 0; i < kvCount; i++) {
    const keyAt = pos;
    const length = Number(bytes.readBigUInt64LE(pos));
    const key = bytes.subarray(pos + 8, pos + 8 + length).toString('utf8');
    pos += 8 + length;
    const typeAt = pos;
    const type = bytes.readUInt32LE(pos);
    pos += 4;
    keys[key] = { keyAt, typeAt, valueAt: pos };
    skipValue(type);
  }
  const tensorsAt = pos;
  // First tensor info: name, n_dims, dims..., type, offset.
  const nameLength = Number(bytes.readBigUInt64LE(pos));
  const nDimsAt = pos + 8 + nameLength;
  const nDims = bytes.readUInt32LE(nDimsAt);
  const typeAt = nDimsAt + 4 + 8 * nDims;
  return { keys, tensorsAt, firstTensor: { nDimsAt, dimsAt: nDimsAt + 4, typeAt, offsetAt: typeAt + 4 } };
}

test('corrupt GGUF headers fail with errors that say what is wrong, never by allocating the claimed sizes', async () => {
  const dir = tempDir();
  try {
    const original = fs.readFileSync(await writeSample(dir));
    const at = layoutOf(original);
    const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
      ['bad magic', (b) => (b.write('GGML', 0, 'latin1'), b), /not a GGUF file: it starts with "GGML"/],
      ['version 1', (b) => (b.writeUInt32LE(1, 4), b), /version 1.*not supported/],
      ['version 4', (b) => (b.writeUInt32LE(4, 4), b), /GGUF version 4; only versions 2 and 3/],
      ['big-endian', (b) => (b.writeUInt32BE(3, 4), b), /big-endian/],
      ['huge tensor count', (b) => (b.writeBigUInt64LE(1n << 40n, 8), b), /cannot fit in its \d+ bytes/],
      ['count past 2^53', (b) => (b.writeBigUInt64LE(1n << 62n, 16), b), /metadata count is \d+, which no real file can have/],
      ['huge string length', (b) => (b.writeBigUInt64LE(1n << 40n, at.keys['general.name'].keyAt), b), /is 1099511627776 bytes long, more than GGUF's 65535/],
      ['huge array length', (b) => (b.writeBigUInt64LE(1n << 40n, at.keys['tokenizer.ggml.tokens'].valueAt + 4), b), /declares 1099511627776 items of type string, more than the \d+ bytes left/],
      ['unknown value type', (b) => (b.writeUInt32LE(77, at.keys['test.u8'].typeAt), b), /unknown value type 77/],
      ['bool not 0/1', (b) => (b.writeUInt8(7, at.keys['test.bool'].valueAt), b), /bool stored as 7/],
      ['duplicate key', (b) => (b.write('test.u8', at.keys['test.i8'].keyAt + 8, 'latin1'), b), /metadata key "test.u8" twice/],
      ['alignment not a power of two', (b) => (b.writeUInt32LE(48, at.keys['general.alignment'].valueAt), b), /general.alignment 48.*power of two/],
      ['too many dims', (b) => (b.writeUInt32LE(9, at.firstTensor.nDimsAt), b), /9 dimensions; GGUF allows at most 4/],
      ['unknown ggml type', (b) => (b.writeUInt32LE(5, at.firstTensor.typeAt), b), /unknown ggml type 5/],
      ['misaligned offset', (b) => (b.writeBigUInt64LE(8n, at.firstTensor.offsetAt), b), /offset 8, not a multiple of the alignment 64/],
      ['tensor past the end', (b) => (b.writeBigUInt64LE(1n << 20n, at.firstTensor.offsetAt), b), /needs bytes \[1048576, 1048600\) of the data section but only \d+ exist/],
      ['overlapping tensors', (b) => (b.writeBigUInt64LE(64n, at.firstTensor.offsetAt), b), /"token_embd.weight" and "blk.0.attn_q.weight" overlap/],
      ['truncated in the metadata', (b) => b.subarray(0, at.keys['test.f64'].valueAt + 3), /needs 8 bytes at offset \d+ but the file ends/],
      ['truncated in the tensor data', (b) => b.subarray(0, b.length - 60), /only \d+ exist: the file is truncated/],
      ['too small', (b) => b.subarray(0, 10), /too small for a GGUF header/],
    ];
    for (const [name, corrupt, expected] of cases) {
      const file = path.join(dir, `corrupt-${name.replace(/\W+/g, '-')}.gguf`);
      fs.writeFileSync(file, corrupt(Buffer.from(original)));
      await assert.rejects(readGgufHeader(file), (error: Error) => {
        assert.ok(error instanceof GgufError, `${name}: ${error}`);
        assert.match(error.message, expected, name);
        return true;
      });
    }
    const dims = Buffer.from(original);
    dims.writeBigUInt64LE(1000n, at.firstTensor.dimsAt);
    fs.writeFileSync(path.join(dir, 'dims.gguf'), dims);
    await assert.rejects(readGgufHeader(path.join(dir, 'dims.gguf')), /"token_embd.weight" needs bytes \[0, 8000\)/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
