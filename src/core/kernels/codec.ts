// Element decoding and encoding on the WebAssembly kernels, in place in the module's memory: what
// the merge writer uses between computing in float32 and writing BF16/F16. The JavaScript
// reference is decodeInto and f32BitsToBf16 / f32BitsToF16 in src/core/safetensors/dtypes.ts;
// outputs are bit-identical.
import { KIND_CODES, type Kernels, type KernelRegion, type Placed } from './index';

/** Decodes `count` placed elements into f32 in `out`. */
export function decodePlaced(kernels: Kernels, values: Placed, out: KernelRegion, count: number): void {
  kernels.exports.decode(KIND_CODES[values.kind], values.region.offset, out.offset, count);
}

/** Encodes `count` f32 values in `values` as BF16 or F16 bits into `out` (torch's rounding). */
export function encodePlaced(kernels: Kernels, dtype: 'BF16' | 'F16', values: KernelRegion, out: KernelRegion, count: number): void {
  if (dtype === 'BF16') kernels.exports.encodeBf16(values.offset, out.offset, count);
  else kernels.exports.encodeF16(values.offset, out.offset, count);
}
