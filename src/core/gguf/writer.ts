// A small GGUF writer (version 3): enough for tests and the demo workspace generator to produce
// valid files that llama.cpp's reader and ours accept. Tensor data is written as given (already
// encoded in the tensor's ggml type), each tensor padded to the alignment.

import * as fs from 'node:fs';
import {
  GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAX_DIMS, GgufError, GgufValueType,
  type GgufArrayValue, type GgufMetadataEntry, type GgufValue,
} from './types';

export interface GgufTensorToWrite {
  name: string;
  /** ne[] order: dims[0] is the row length (reverse of a torch shape). */
  dims: number[];
  /** ggml type id (0 = F32, 1 = F16, 30 = BF16, 8 = Q8_0, ...). */
  type: number;
  data: Uint8Array;
}

export interface GgufToWrite {
  metadata: GgufMetadataEntry[];
  tensors: GgufTensorToWrite[];
  /** Defaults to 3. */
  version?: 2 | 3;
}

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;

  push(buffer: Buffer): void {
    this.chunks.push(buffer);
    this.length += buffer.length;
  }

  u32(value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value, 0);
    this.push(b);
  }

  u64(value: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(value), 0);
    this.push(b);
  }

  string(value: string): void {
    const bytes = Buffer.from(value, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

function writeValue(out: ByteWriter, type: number, value: GgufValue, key: string): void {
  const fail = (): never => {
    throw new GgufError(`Metadata "${key}": value ${typeof value === 'object' ? 'array' : String(value)} does not fit type ${type}.`);
  };
  const b8 = Buffer.alloc(8);
  switch (type) {
    case GgufValueType.UINT8: if (typeof value !== 'number') fail(); b8.writeUInt8(value as number, 0); return out.push(b8.subarray(0, 1));
    case GgufValueType.INT8: if (typeof value !== 'number') fail(); b8.writeInt8(value as number, 0); return out.push(b8.subarray(0, 1));
    case GgufValueType.UINT16: if (typeof value !== 'number') fail(); b8.writeUInt16LE(value as number, 0); return out.push(b8.subarray(0, 2));
    case GgufValueType.INT16: if (typeof value !== 'number') fail(); b8.writeInt16LE(value as number, 0); return out.push(b8.subarray(0, 2));
    case GgufValueType.UINT32: if (typeof value !== 'number') fail(); b8.writeUInt32LE(value as number, 0); return out.push(b8.subarray(0, 4));
    case GgufValueType.INT32: if (typeof value !== 'number') fail(); b8.writeInt32LE(value as number, 0); return out.push(b8.subarray(0, 4));
    case GgufValueType.FLOAT32: if (typeof value !== 'number') fail(); b8.writeFloatLE(value as number, 0); return out.push(b8.subarray(0, 4));
    case GgufValueType.FLOAT64: if (typeof value !== 'number') fail(); b8.writeDoubleLE(value as number, 0); return out.push(b8);
    case GgufValueType.UINT64: if (typeof value !== 'number' && typeof value !== 'bigint') fail(); b8.writeBigUInt64LE(BigInt(value as number | bigint), 0); return out.push(b8);
    case GgufValueType.INT64: if (typeof value !== 'number' && typeof value !== 'bigint') fail(); b8.writeBigInt64LE(BigInt(value as number | bigint), 0); return out.push(b8);
    case GgufValueType.BOOL: if (typeof value !== 'boolean') fail(); return out.push(Buffer.from([value ? 1 : 0]));
    case GgufValueType.STRING: if (typeof value !== 'string') fail(); return out.string(value as string);
    case GgufValueType.ARRAY: {
      const array = value as GgufArrayValue;
      if (typeof value !== 'object' || !array.items) fail();
      out.u32(array.itemType);
      out.u64(array.items!.length);
      for (const item of array.items!) writeValue(out, array.itemType, item, key);
      return;
    }
    default: fail();
  }
}

function tensorBytes(tensor: GgufTensorToWrite): number {
  const info = GGML_TYPES.get(tensor.type);
  if (!info) throw new GgufError(`Tensor "${tensor.name}": unknown ggml type ${tensor.type}.`);
  if (tensor.dims.length > GGUF_MAX_DIMS) throw new GgufError(`Tensor "${tensor.name}": ${tensor.dims.length} dimensions, GGUF allows ${GGUF_MAX_DIMS}.`);
  if ((tensor.dims[0] ?? 1) % info.blockSize !== 0) throw new GgufError(`Tensor "${tensor.name}": row length ${tensor.dims[0]} is not a multiple of the ${info.name} block size ${info.blockSize}.`);
  const numel = tensor.dims.reduce((a, b) => a * b, 1);
  return (numel / info.blockSize) * info.typeSize;
}

/** Writes a GGUF file. general.alignment in `metadata` (a u32 power of two) sets the alignment, else 32. */
export async function writeGguf(filePath: string, file: GgufToWrite): Promise<void> {
  const alignmentEntry = file.metadata.find((m) => m.key === 'general.alignment');
  const alignment = alignmentEntry ? Number(alignmentEntry.value) : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new GgufError(`general.alignment must be a power of two, got ${String(alignmentEntry?.value)}.`);
  }

  const header = new ByteWriter();
  header.push(Buffer.from('GGUF', 'latin1'));
  header.u32(file.version ?? 3);
  header.u64(file.tensors.length);
  header.u64(file.metadata.length);
  for (const entry of file.metadata) {
    header.string(entry.key);
    header.u32(entry.type);
    writeValue(header, entry.type, entry.value, entry.key);
  }
  const padded = (n: number) => Math.ceil(n / alignment) * alignment;
  let offset = 0;
  for (const tensor of file.tensors) {
    const nbytes = tensorBytes(tensor);
    if (tensor.data.length !== nbytes) throw new GgufError(`Tensor "${tensor.name}": ${tensor.data.length} bytes of data given, its type and dims need ${nbytes}.`);
    header.string(tensor.name);
    header.u32(tensor.dims.length);
    for (const d of tensor.dims) header.u64(d);
    header.u32(tensor.type);
    header.u64(offset);
    offset += padded(nbytes);
  }

  const handle = await fs.promises.open(filePath, 'w');
  try {
    const headerBytes = header.toBuffer();
    let position = 0;
    const write = async (bytes: Uint8Array) => {
      await handle.write(bytes, 0, bytes.length, position);
      position += bytes.length;
    };
    await write(headerBytes);
    await write(Buffer.alloc(padded(headerBytes.length) - headerBytes.length));
    for (const tensor of file.tensors) {
      await write(tensor.data);
      await write(Buffer.alloc(padded(tensor.data.length) - tensor.data.length));
    }
  } finally {
    await handle.close();
  }
}
