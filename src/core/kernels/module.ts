// Loading the WebAssembly kernel module (kernels/*.ts, compiled by scripts/build.mjs into
// dist/graft-kernels.wasm): one instance per thread, with its own memory, made on first use.
// Compiling synchronously is fine off the browser main thread, and the module is a few KB.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const KERNEL_FILE = 'graft-kernels.wasm';

// The part of the WebAssembly API used here: the compiler's libs (ES2022 and Node's types) do not declare it.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};

/** A module's linear memory: `buffer` is replaced (the old one detached) when it grows. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** The module's exports; pointers are byte offsets into `memory`, counts are elements. */
export interface KernelExports {
  memory: WasmMemory;
  heapStart(): number;
  results(): number;
  decode(kind: number, src: number, dst: number, n: number): void;
  encodeBf16(src: number, dst: number, n: number): void;
  encodeF16(src: number, dst: number, n: number): void;
  diffPair(kindA: number, a: number, kindB: number, b: number, n: number): void;
  diffWithBase(kindA: number, a: number, kindB: number, b: number, kindC: number, c: number, n: number): void;
  statsSums(kind: number, src: number, n: number): void;
  statsM2(kind: number, src: number, n: number, mean: number): void;
  histogram(kind: number, src: number, n: number, lo: number, hi: number, scale: number, bins: number, counts: number): void;
  args(): number;
  subtract(a: number, b: number, out: number, n: number): void;
  clearSigns(values: number, n: number): void;
  scaleInPlace(values: number, n: number, r: number): void;
  histogramHigh(keys: number, n: number, hist: number): void;
  histogramLow(keys: number, n: number, bucket: number, hist: number): void;
  countEqual(keys: number, n: number, threshold: number, block: number, counts: number): void;
  deltaHistogramHigh(x: number, base: number, n: number, hist: number, bf16: number): void;
  deltaHistogramLow(x: number, base: number, n: number, bucket: number, hist: number): void;
  deltaCountEqual(x: number, base: number, n: number, threshold: number, block: number, counts: number): void;
  deltaHistogramLowMembers(x: number, base: number, n: number, bucket: number, hist: number, block: number, blockCounts: number, values: number, capacity: number, bf16: number): number;
  keepInCut(values: number, n: number, threshold: number, need: number, eqBefore: number, descending: number): number;
  weightedSum(models: number, n: number, normalize: number, divisor: number, out: number): void;
  weightedSumBf16(models: number, n: number, normalize: number, divisor: number, out: number): void;
  nonEmptyBins(hist: number, n: number, bins: number, counts: number): number;
  deltaBucketTally(x: number, base: number, n: number, bucket: number, block: number, lows: number, tally: number, maxLows: number, bf16: number): number;
  taskCombine(models: number, base: number, n: number, consensus: number, normalize: number, divisor: number, out: number): void;
}

/**
 * Where the module is: beside the bundle running this code (dist/ in the extension and the CLI),
 * or, run from the tsc output (out/src/core/kernels, the unit tests), in dist/ of the repository.
 */
export function kernelFile(): string {
  const beside = path.join(__dirname, KERNEL_FILE);
  if (fs.existsSync(beside)) return beside;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const built = path.join(dir, 'dist', KERNEL_FILE);
    if (fs.existsSync(built)) return built;
    if (path.dirname(dir) === dir) return beside;
  }
}

let instance: KernelExports | undefined;

/** This thread's instance of the kernel module. Throws with what to do when it cannot load. */
export function kernelExports(): KernelExports {
  if (instance) return instance;
  const file = kernelFile();
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    throw new Error(`The WebAssembly kernels (${KERNEL_FILE}) are missing beside ${__dirname}: rebuild Graft (npm run build), or select the JavaScript kernels (setting graft.engine.kernels, or GRAFT_KERNELS=javascript for the CLI).`);
  }
  try {
    instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as KernelExports;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`The WebAssembly kernels could not be loaded (${reason}); this runtime may lack WebAssembly SIMD. Select the JavaScript kernels (setting graft.engine.kernels, or GRAFT_KERNELS=javascript for the CLI).`);
  }
  return instance;
}
