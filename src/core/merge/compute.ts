// Evaluating jobs on element ranges, on a worker thread: reading operands (file tensors, LoRA-patched
// tensors, earlier stages' jobs computed on the fly), running a stage's reduce or the method's
// apply, and rounding to the output dtype exactly as torch casts.
import type { KernelRegion, Kernels } from '../kernels';
import { decodePlaced } from '../kernels/codec';
import { decodesToFloat64, decodeToFloat, encodeFromFloat32 } from '../safetensors/dtypes';
import type { DType, TensorRef } from '../safetensors/types';
import { ChunkReader, readIntoBytes } from '../tensors/chunkReader';
import type { FileHandles } from '../tensors/stream';
import type { AdapterPatch } from './lora';
import { operandsOf, type Operand, type TensorJob } from './jobs';
import { findMethod } from './methods/registry';
import type { ChunkData, Found, MergeMethod, Stage } from './methods/types';
import { projectForChunk } from './select';

/** Stage results of every job of a tree, by job id. */
export type Founds = Record<string, Found>;

export function methodOf(job: TensorJob): MergeMethod {
  const method = findMethod(job.method);
  if (!method) throw new Error(`Unknown merge method "${job.method}".`);
  return method;
}

/** The stage with this id, as the method's kernel derives it from what was found so far. */
export function stageOf(job: TensorJob, found: Found, stageId: string): Stage {
  const stage = methodOf(job).kernel.nextStage?.(job.view, { ...found });
  if (!stage || stage.id !== stageId) throw new Error(`Merge of "${job.name}": stage "${stageId}" is not the next one (${stage?.id ?? 'none'}); the plan and the worker disagree.`);
  return stage;
}

/**
 * Regions of the WebAssembly kernels' memory that file operands are read into, two per operand
 * (the bytes as stored, and their float32 values when they need decoding), handed to operands
 * in the order they are first read.
 */
export interface OperandPlacement {
  kernels: Kernels;
  regions: KernelRegion[];
}

/** A BF16 operand read into the kernels' memory and not decoded yet. */
interface Bf16Read {
  bits: Uint16Array;
  decode(): Float32Array;
}

/** Buffers and handles one task reuses across its sub-chunks. */
export class OperandReader {
  private readonly readers = new Map<string, ChunkReader>();
  private readonly whole = new Map<string, Float32Array>();
  private readonly placed = new Map<string, { raw: KernelRegion; values: KernelRegion }>();

  constructor(
    private readonly handles: FileHandles,
    private readonly placement?: OperandPlacement,
  ) {}

  dispose(): void {
    for (const r of this.readers.values()) r.dispose();
    this.readers.clear();
    this.whole.clear();
  }

  /**
   * Float32 values of elements [start, start + count) of a file tensor, in the reader kept for
   * `key`: valid until this OperandReader reads `key` again (its next sub-chunk), so no copy.
   */
  async fileValues(ref: TensorRef, start: number, count: number, key: string): Promise<Float32Array> {
    const read = await this.fileRead(ref, start, count, key, false);
    return read instanceof Float32Array ? read : read.decode();
  }

  /**
   * fileValues(), or with `keepBf16` and a BF16 tensor read into the kernels' memory, its bits
   * there with the decode left to do (Bf16Read.decode()).
   */
  private async fileRead(ref: TensorRef, start: number, count: number, key: string, keepBf16: boolean): Promise<Float32Array | Bf16Read> {
    let reader = this.readers.get(key);
    if (!reader) {
      reader = new ChunkReader();
      this.readers.set(key, reader);
    }
    const place = this.placeFor(key, ref, count);
    if (place) {
      // Straight into the kernels' memory, decoded there when stored as BF16/F16.
      const kind = await reader.readInto(ref, await this.handles.get(ref.file), start, count, place.raw.bytes());
      if (kind === 'f32') return place.raw.floats(count);
      const decode = () => {
        decodePlaced(this.placement!.kernels, { kind: kind!, region: place.raw }, place.values, count);
        return place.values.floats(count);
      };
      if (keepBf16 && kind === 'bf16') return { bits: new Uint16Array(place.raw.bytes().buffer, place.raw.offset, count), decode };
      return decode();
    }
    const values = await reader.readValues(ref, await this.handles.get(ref.file), start, count);
    return values instanceof Float32Array ? values : Float32Array.from(values);
  }

  /** The regions operand `key` is read into, when there is a placement with room and the dtype decodes to float32. */
  private placeFor(key: string, ref: TensorRef, count: number): { raw: KernelRegion; values: KernelRegion } | undefined {
    if (!this.placement || decodesToFloat64(ref.dtype)) return undefined;
    let place = this.placed.get(key);
    if (!place) {
      const next = 2 * this.placed.size;
      const [raw, values] = this.placement.regions.slice(next, next + 2);
      if (!values) return undefined;
      place = { raw, values };
      this.placed.set(key, place);
    }
    return place.raw.byteLength >= readIntoBytes(count) && place.values.byteLength >= readIntoBytes(count) ? place : undefined;
  }

  /** A whole (small) tensor, read once per task: LoRA factors. */
  async wholeTensor(ref: TensorRef): Promise<Float32Array> {
    const key = `${ref.file}\u0000${ref.name}`;
    let values = this.whole.get(key);
    if (!values) {
      values = (await this.fileValues(ref, 0, ref.numel, `whole:${key}`)).slice();
      this.whole.set(key, values);
    }
    return values;
  }

  async operand(op: Operand, start: number, count: number, founds: Founds, key: string): Promise<Float32Array> {
    if (op.kind === 'file') return this.fileValues(op.ref, start, count, key);
    if (op.kind === 'lora') {
      const base = await this.operand(op.base, start, count, founds, `${key}/base`);
      return this.patched(base, op.patch, start, count, key);
    }
    const data = await this.chunk(op.job, start, count, founds, key);
    const out = new Float32Array(count);
    methodOf(op.job).kernel.apply(op.job.view, projectForChunk(founds[op.job.id] ?? {}, start), data, out);
    return roundTo(op.job.dtype, out);
  }

  /** Every input of `job` over [start, start + count). */
  async chunk(job: TensorJob, start: number, count: number, founds: Founds, key = job.id): Promise<ChunkData> {
    const keepBf16 = methodOf(job).kernel.readsBf16 === true;
    const read = (op: Operand, at: string) => (keepBf16 && op.kind === 'file' ? this.fileRead(op.ref, start, count, at, true) : this.operand(op, start, count, founds, at));
    const [base, target, ...models] = await Promise.all([
      job.base ? read(job.base, `${key}/b`) : undefined,
      job.target ? this.operand(job.target, start, count, founds, `${key}/t`) : undefined,
      ...job.models.map((m, i) => read(m, `${key}/m${i}`)),
    ]);
    if (!(base instanceof Float32Array || base === undefined) || !models.every((m) => m instanceof Float32Array)) {
      // Some operands are still bf16 bits: decoded when their float32 values are first read.
      let decodedModels: Float32Array[] | undefined;
      let decodedBase: Float32Array | undefined;
      return {
        start, count, target,
        bf16Models: models.map((m) => (m instanceof Float32Array ? undefined : m.bits)),
        bf16Base: base instanceof Float32Array ? undefined : base?.bits,
        get models() {
          return (decodedModels ??= models.map((m) => (m instanceof Float32Array ? m : m.decode())));
        },
        get base() {
          return base instanceof Float32Array || base === undefined ? base : (decodedBase ??= base.decode());
        },
      };
    }
    return { start, count, base, target, models: models as Float32Array[] };
  }

  /** W + s B A over a range of W (and DoRA's row rescaling), in peft's float32 order. */
  private async patched(w: Float32Array, patch: AdapterPatch, start: number, count: number, key: string): Promise<Float32Array> {
    if (patch.kind === 'replace') return this.fileValues(patch.tensor, start, count, `${key}/replace`);
    const a = await this.wholeTensor(patch.a);
    const b = await this.wholeTensor(patch.b);
    const rank = patch.a.shape[0];
    // W is [rows, cols]; untransposed delta(i, j) = sum_k B[i, k] A[k, j]; transposed: B[j, k] A[k, i].
    const cols = patch.transposed ? patch.b.shape[0] : patch.a.shape[1];
    const aCols = patch.a.shape[1];
    const scale = Math.fround(patch.scale);
    const out = new Float32Array(count);
    for (let e = 0; e < count; e++) {
      const flat = start + e;
      const i = Math.floor(flat / cols);
      const j = flat - i * cols;
      let s = 0;
      if (patch.transposed) for (let k = 0; k < rank; k++) s = Math.fround(s + b[j * rank + k] * a[k * aCols + i]);
      else for (let k = 0; k < rank; k++) s = Math.fround(s + b[i * rank + k] * a[k * aCols + j]);
      out[e] = Math.fround(w[e] + Math.fround(Math.fround(s) * scale));
    }
    if (patch.magnitude) {
      const magnitude = await this.wholeTensor(patch.magnitude);
      if (start % cols !== 0 || count % cols !== 0) throw new Error('DoRA merge needs whole rows (internal error: chunk not row-aligned).');
      for (let r0 = 0; r0 < count; r0 += cols) {
        let sq = 0;
        for (let j = 0; j < cols; j++) sq += out[r0 + j] * out[r0 + j];
        const row = (start + r0) / cols;
        const factor = Math.fround(magnitude[row] / Math.fround(Math.sqrt(sq)));
        for (let j = 0; j < cols; j++) out[r0 + j] = Math.fround(factor * out[r0 + j]);
      }
    }
    return out;
  }
}

/** Values rounded to `dtype` as a cast would (float32 values are already exact). */
export function roundTo(dtype: DType, values: Float32Array): Float32Array {
  if (dtype === 'F32') return values;
  const decoded = decodeToFloat(dtype, encodeFromFloat32(dtype, values));
  return decoded instanceof Float32Array ? decoded : Float32Array.from(decoded);
}

export { operandsOf };
