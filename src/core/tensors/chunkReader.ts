// Ranged reads of tensor elements into buffers a reader keeps across reads: the one chunk reader
// used by stats, diff and merge. BF16 and F16 (what most checkpoints hold) can stay raw bits plus
// a lookup table (the diff kernels work on bits), F32/F64 are read straight into a float view on
// little-endian hosts, every other dtype is decoded into the reader's float buffer. readInto()
// reads into memory the caller owns instead (a view of the WebAssembly kernels' memory).
import type { ReadHandle } from '../files';
import { bf16ToF32Table, f16ToF32Table, LITTLE_ENDIAN, decodeInto, decodesToFloat64, dtypeBits } from '../safetensors/dtypes';
import { byteRange, checkDecodable, checkRange, readExactly } from '../safetensors/reader';
import type { TensorRef } from '../safetensors/types';

export type FloatArray = Float32Array | Float64Array;

/** Elements as read: 16-bit patterns with the table giving their values, or decoded floats. */
export type Operand = { bits: Uint16Array; table: Float32Array } | { values: FloatArray };

/** How readInto() left elements in the caller's memory: raw F32, raw BF16/F16 bits, or decoded to f32. */
export type RawKind = 'f32' | 'bf16' | 'f16';


/** Bytes readInto() needs for `count` elements: 4 per element covers every case. */
export function readIntoBytes(count: number): number {
  return count * 4;
}

/**
 * Buffers given back by disposed readers, taken by the next ones on the same thread: a worker
 * running task after task keeps a few sub-chunk buffers instead of leaving garbage buffers for the
 * collector (which frees external memory late).
 */
const spareBuffers: ArrayBuffer[] = [];
const MAX_SPARE_BUFFERS = 6;

function takeBuffer(bytes: number): ArrayBuffer {
  // Reuse only buffers that are not much larger than needed, so small reads do not pin big ones.
  const i = spareBuffers.findIndex((b) => b.byteLength >= bytes && b.byteLength <= 2 * bytes);
  return i >= 0 ? spareBuffers.splice(i, 1)[0] : new ArrayBuffer(bytes);
}

function giveBack(buffer: ArrayBuffer): void {
  if (buffer.byteLength > 0 && spareBuffers.length < MAX_SPARE_BUFFERS) spareBuffers.push(buffer);
}

/**
 * Reads element ranges of tensors into scratch memory it holds, grown on demand: no allocation per
 * read once warm, so memory stays flat however many chunks are read. What read() returns is valid
 * until the next read() on the same reader. dispose() hands the buffers to the next reader.
 */
export class ChunkReader {
  private raw = new ArrayBuffer(0);
  private f32 = new Float32Array(0);
  private f64 = new Float64Array(0);

  /** Elements [start, start + count) of `ref`, as 16-bit patterns for BF16/F16, else as floats. */
  async read(ref: TensorRef, handle: ReadHandle, start: number, count: number): Promise<Operand> {
    checkRange(ref, start, count);
    checkDecodable(ref);
    if (LITTLE_ENDIAN && (ref.dtype === 'BF16' || ref.dtype === 'F16')) {
      const bytes = this.rawBytes(count * 2);
      await readExactly(handle, bytes, ref.begin + start * 2, ref.file);
      return { bits: new Uint16Array(bytes.buffer, 0, count), table: ref.dtype === 'BF16' ? bf16ToF32Table() : f16ToF32Table() };
    }
    return { values: await this.readValues(ref, handle, start, count) };
  }

  /** Elements [start, start + count) of `ref` decoded to floats (float64 for wide dtypes). */
  async readValues(ref: TensorRef, handle: ReadHandle, start: number, count: number): Promise<FloatArray> {
    checkRange(ref, start, count);
    checkDecodable(ref);
    const wide = decodesToFloat64(ref.dtype);
    if (LITTLE_ENDIAN && (ref.dtype === 'F32' || ref.dtype === 'F64')) {
      const values = wide ? this.doubles(count) : this.floats(count);
      await readExactly(handle, new Uint8Array(values.buffer, 0, values.byteLength), ref.begin + start * values.BYTES_PER_ELEMENT, ref.file);
      return values;
    }
    const [firstByte, lastByte] = byteRange(ref, start, count);
    const bytes = this.rawBytes(lastByte - firstByte);
    await readExactly(handle, bytes, ref.begin + firstByte, ref.file);
    // One slot more: an F4 range starting mid-byte decodes the extra leading element.
    const decodedCount = Math.round(((lastByte - firstByte) * 8) / dtypeBits(ref.dtype));
    const out = wide ? this.doubles(decodedCount) : this.floats(decodedCount);
    const values = decodeInto(ref.dtype, bytes, out);
    const skip = ref.dtype === 'F4' ? start % 2 : 0;
    return values.subarray(skip, skip + count);
  }

  /**
   * Elements [start, start + count) of `ref` into `target` (at least readIntoBytes(count) bytes):
   * F32, BF16 and F16 with one positional read straight into it and no copy, other dtypes that
   * decode to float32 decoded into it. Undefined, with nothing read, for dtypes that decode to
   * float64 (wider than float32: the caller takes readValues() instead).
   */
  async readInto(ref: TensorRef, handle: ReadHandle, start: number, count: number, target: Uint8Array): Promise<RawKind | undefined> {
    checkRange(ref, start, count);
    checkDecodable(ref);
    if (decodesToFloat64(ref.dtype)) return undefined;
    if (target.byteLength < readIntoBytes(count)) throw new RangeError(`readInto: ${count} elements need ${readIntoBytes(count)} bytes, the target has ${target.byteLength}.`);
    if (LITTLE_ENDIAN && (ref.dtype === 'F32' || ref.dtype === 'BF16' || ref.dtype === 'F16')) {
      const size = ref.dtype === 'F32' ? 4 : 2;
      await readExactly(handle, target.subarray(0, count * size), ref.begin + start * size, ref.file);
      return ref.dtype === 'F32' ? 'f32' : ref.dtype === 'BF16' ? 'bf16' : 'f16';
    }
    const values = await this.readValues(ref, handle, start, count);
    new Float32Array(target.buffer, target.byteOffset, count).set(values);
    return 'f32';
  }

  /** The operand's values as floats (16-bit patterns are looked up into this reader's scratch). */
  valuesOf(operand: Operand): FloatArray {
    if ('values' in operand) return operand.values;
    const { bits, table } = operand;
    const out = this.floats(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
    return out;
  }

  /** Releases the scratch buffers for reuse; call once no read is pending and results are unused. */
  dispose(): void {
    giveBack(this.raw);
    giveBack(this.f32.buffer as ArrayBuffer);
    giveBack(this.f64.buffer as ArrayBuffer);
    this.raw = new ArrayBuffer(0);
    this.f32 = new Float32Array(0);
    this.f64 = new Float64Array(0);
  }

  private rawBytes(byteCount: number): Uint8Array {
    if (this.raw.byteLength < byteCount) {
      giveBack(this.raw);
      this.raw = takeBuffer(byteCount);
    }
    return new Uint8Array(this.raw, 0, byteCount);
  }

  private floats(count: number): Float32Array {
    if (this.f32.length < count) {
      giveBack(this.f32.buffer as ArrayBuffer);
      this.f32 = new Float32Array(takeBuffer(count * 4), 0, count);
    }
    return count === this.f32.length ? this.f32 : this.f32.subarray(0, count);
  }

  private doubles(count: number): Float64Array {
    if (this.f64.length < count) {
      giveBack(this.f64.buffer as ArrayBuffer);
      this.f64 = new Float64Array(takeBuffer(count * 8), 0, count);
    }
    return count === this.f64.length ? this.f64 : this.f64.subarray(0, count);
  }
}
