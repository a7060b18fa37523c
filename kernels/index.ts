// The WebAssembly kernel module: built by scripts/build.mjs into dist/graft-kernels.wasm, loaded
// by src/core/kernels/. Every export works on pointers into this module's memory.
export { args, heapStart, results } from './memory';
export { decode, decodeBf16, decodeF16, encodeBf16, encodeF16 } from './codec';
export { diffPair, diffWithBase } from './diff';
export { statsSums, statsM2, histogram } from './stats';
export {
  clearSigns, countEqual, deltaBucketTally, deltaCountEqual, deltaHistogramHigh, deltaHistogramLow, deltaHistogramLowMembers, histogramHigh, histogramLow, keepInCut, nonEmptyBins, scaleInPlace, subtract, taskCombine, weightedSum, weightedSumBf16,
} from './merge';
