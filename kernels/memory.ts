// Static memory of the kernels: per-operand decode scratch and the result slots. Everything above
// __heap_base belongs to the JavaScript side (src/core/kernels/arena.ts), which places the
// operands there; the kernels allocate nothing.

/** Elements decoded per step: three operands' f32 scratch (24 KiB) stays in the L1 cache. */
export const BLOCK: i32 = 2048;
const SCRATCH = memory.data(3 * 2048 * 4, 16);
export const RESULTS = memory.data(32 * 8, 16);
/** Tables a kernel takes besides its scalar arguments (operand pointers, weights): 1024 words. */
export const ARGS = memory.data(1024 * 4, 16);
/** Per 16-bit value, a kernel's own index for it plus one (0: none); kernels leave it all 0. */
export const VALUE_INDEX = memory.data(65536 * 4, 16);

/** Decode scratch of operand `slot` (0..2). */
@inline export function scratch(slot: i32): usize {
  return SCRATCH + <usize>slot * <usize>BLOCK * 4;
}

/** Where a kernel leaves its float64 results. */
export function results(): usize {
  return RESULTS;
}

/** Where the JavaScript side writes a kernel's tables. */
export function args(): usize {
  return ARGS;
}

/** The first byte the JavaScript side may use. */
export function heapStart(): usize {
  return __heap_base;
}
