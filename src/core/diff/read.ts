// Ranged reads of tensor elements into buffers reused across sub-chunks, for the diff kernel's hot
// path. BF16 and F16 (what most checkpoints hold) stay raw bits plus a lookup table, F32 is read
// straight into a float view; every other dtype goes through the safetensors module's readElements.
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import { readElements, SafetensorsError } from '../safetensors';
import { f16ToF32Table } from '../safetensors/dtypes';
import { readExactly } from '../safetensors/reader';
import type { TensorRef } from '../safetensors/types';
import type { FloatArray } from './metrics';

/** Elements as read: 16-bit patterns with the table giving their values, or decoded floats. */
export type Operand = { bits: Uint16Array; table: Float32Array } | { values: FloatArray };

/** Typed-array views read the host's byte order; safetensors is little-endian. */
const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

let bf16Table: Float32Array | undefined;

/** bf16 is the top half of an f32: each pattern shifted into place through a uint32 view. */
export function bf16ToF32Table(): Float32Array {
  if (!bf16Table) {
    bf16Table = new Float32Array(65536);
    const words = new Uint32Array(bf16Table.buffer);
    for (let bits = 0; bits < 65536; bits++) words[bits] = bits << 16;
  }
  return bf16Table;
}

/** One operand's scratch space: raw bytes and decoded floats, grown on demand, never shrunk. */
export class RangeReader {
  private bytes = new ArrayBuffer(0);
  private decoded = new Float32Array(0);

  /** Elements [start, start + count) of `ref`. Valid until this reader's next read. */
  async read(ref: TensorRef, handle: FileHandle, start: number, count: number): Promise<Operand> {
    if (start < 0 || count < 0 || start + count > ref.numel) {
      throw new SafetensorsError(`Elements [${start}, ${start + count}) are outside tensor "${ref.name}" (${ref.numel} elements).`, { rule: 'out-of-range', tensor: ref.name, file: ref.file });
    }
    if (LITTLE_ENDIAN_HOST) {
      if (ref.dtype === 'F32') {
        const values = this.floats(count);
        await readExactly(handle, new Uint8Array(values.buffer, 0, count * 4), ref.begin + start * 4, ref.file);
        return { values };
      }
      if (ref.dtype === 'BF16' || ref.dtype === 'F16') {
        if (this.bytes.byteLength < count * 2) this.bytes = new ArrayBuffer(count * 2);
        await readExactly(handle, new Uint8Array(this.bytes, 0, count * 2), ref.begin + start * 2, ref.file);
        return { bits: new Uint16Array(this.bytes, 0, count), table: ref.dtype === 'BF16' ? bf16ToF32Table() : f16ToF32Table() };
      }
    }
    return { values: await readElements(ref, start, count, handle) };
  }

  /** The operand's values as floats (16-bit patterns are looked up into this reader's scratch). */
  valuesOf(operand: Operand): FloatArray {
    if ('values' in operand) return operand.values;
    const { bits, table } = operand;
    const out = this.floats(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
    return out;
  }

  private floats(count: number): Float32Array {
    if (this.decoded.length < count) this.decoded = new Float32Array(count);
    return count === this.decoded.length ? this.decoded : this.decoded.subarray(0, count);
  }
}
