// The diff accumulations on the WebAssembly kernels; the JavaScript reference is
// accumulatePair / accumulateWithBase in src/core/diff/metrics.ts. Per element the same float64
// operations, so counts and the maximum are identical and the sums differ only by the order of
// the additions (see test/unit/kernels.test.ts for the bound).
import { emptyPartial, mergePartial, type DiffPartial } from '../diff/metrics';
import { KIND_CODES, type Kernels, type Placed } from './index';

const PAIR_FIELDS = ['count', 'nonfinite', 'sumA2', 'sumB2', 'sumAB', 'sumD', 'sumD2', 'maxAbs', 'changed'] as const;
const BASE_FIELDS = [...PAIR_FIELDS, 'sumC2', 'sumDa2', 'sumDb2', 'sumDaDb', 'signAgree', 'signConflict'] as const;

/** Adds `count` positions of a and b (and the task vectors over c when given) into `into`. */
export function accumulatePlaced(kernels: Kernels, into: DiffPartial, a: Placed, b: Placed, c: Placed | undefined, count: number): void {
  const k = kernels.exports;
  if (c) k.diffWithBase(KIND_CODES[a.kind], a.region.offset, KIND_CODES[b.kind], b.region.offset, KIND_CODES[c.kind], c.region.offset, count);
  else k.diffPair(KIND_CODES[a.kind], a.region.offset, KIND_CODES[b.kind], b.region.offset, count);
  const fields = c ? BASE_FIELDS : PAIR_FIELDS;
  const values = kernels.results(fields.length);
  const sums = emptyPartial();
  fields.forEach((field, i) => (sums[field] = values[i]));
  mergePartial(into, sums);
}
