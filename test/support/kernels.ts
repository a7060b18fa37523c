// What the kernel tests share: the WebAssembly kernels (selected for the calling thread) and
// repeatable 32-bit random numbers for inputs.
import { selectKernels, wasmKernels, type Kernels } from '../../src/core/kernels';
import { prng } from '../../src/core/sampling';

/** The WebAssembly kernels, selected for this thread (they are built by `npm run build`). */
export function webAssemblyKernels(): Kernels {
  selectKernels('webassembly');
  return wasmKernels()!;
}

/** Deterministic 32-bit random numbers: the sampler's mulberry32, scaled back to integers. */
export function random32(seed: number): () => number {
  const next = prng(seed);
  return () => next() * 4294967296;
}
