// The compute kernels' two paths: WebAssembly SIMD (kernels/*.ts, the default) and the JavaScript
// loops they were ported from, which stay as the reference (src/core/diff/metrics.ts,
// src/core/stats/accumulate.ts, src/core/safetensors/dtypes.ts) and are selected by the setting
// graft.engine.kernels, the CLI's GRAFT_KERNELS environment variable, or a pool's `kernels`.
// Wrappers per domain sit beside this file (diff.ts, stats.ts, codec.ts); adding a kernel is a
// function in kernels/, its export in module.ts and a wrapper here.
import { KernelMemory, KernelRegion } from './memory';
import { kernelExports, type KernelExports } from './module';

export { KernelMemory, KernelRegion } from './memory';
export { KERNEL_FILE, kernelFile } from './module';

export type KernelChoice = 'webassembly' | 'javascript';
export const KERNEL_CHOICES: readonly KernelChoice[] = ['webassembly', 'javascript'];

/** How an operand's elements sit in the module's memory (the codes kernels/codec.ts uses). */
export type ElementKind = 'f32' | 'bf16' | 'f16';
export const KIND_CODES: Record<ElementKind, number> = { f32: 0, bf16: 1, f16: 2 };

/** An operand placed in the module's memory. */
export interface Placed {
  kind: ElementKind;
  region: KernelRegion;
}

/** 'webassembly' or 'javascript' (also 'wasm' and 'js'); anything else is an error naming `source`. */
export function parseKernelChoice(value: string, source: string): KernelChoice {
  const v = value.trim().toLowerCase();
  if (v === 'webassembly' || v === 'wasm') return 'webassembly';
  if (v === 'javascript' || v === 'js') return 'javascript';
  throw new Error(`${source} is "${value}": use "webassembly" (the default) or "javascript".`);
}

let selected: KernelChoice | undefined;

/** Selects the kernels of this thread (worker threads get the pool's choice at start). */
export function selectKernels(choice: KernelChoice): void {
  selected = choice;
}

/** This thread's choice: as selected, else GRAFT_KERNELS, else WebAssembly. */
export function selectedKernels(): KernelChoice {
  if (!selected) {
    const fromEnvironment = process.env.GRAFT_KERNELS;
    selected = fromEnvironment ? parseKernelChoice(fromEnvironment, 'GRAFT_KERNELS') : 'webassembly';
  }
  return selected;
}

/** The module instance of this thread with its memory. */
export class Kernels {
  readonly memory: KernelMemory;

  constructor(readonly exports: KernelExports) {
    this.memory = new KernelMemory(exports);
  }

  /** The float64 results the last kernel call left (a fresh view: valid until the memory grows). */
  results(count: number): Float64Array {
    return new Float64Array(this.exports.memory.buffer, this.exports.results(), count);
  }
}

let kernels: Kernels | undefined;

/** This thread's kernels if they were made: arrays can live in their memory only then. */
export function loadedKernels(): Kernels | undefined {
  return kernels;
}

/** This thread's WebAssembly kernels, or undefined when the JavaScript path is selected. */
export function wasmKernels(): Kernels | undefined {
  if (selectedKernels() === 'javascript') return undefined;
  kernels ??= new Kernels(kernelExports());
  return kernels;
}
