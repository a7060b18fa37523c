// Graft's seeded random numbers for DARE and DELLA. A draw is a pure function of (seed, stream,
// element index), not of how many draws came before, so the same seed gives the same output on
// any number of workers and with any chunk size.

/** A 32-bit hash with good avalanche (the finaliser of a well-known integer hash family). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A stream identifier from a string (tensor name and model), stable across runs and platforms. */
export function streamId(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return mix32(h >>> 0);
}

/** Uniform in [0, 1) with 32 random bits, for element `index` (< 2^53) of `stream` under `seed`. */
export function uniformAt(seed: number, stream: number, index: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / 4294967296) >>> 0;
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  h = mix32(h ^ stream);
  h = mix32(h ^ hi);
  h = mix32(h ^ lo);
  return h / 4294967296;
}
