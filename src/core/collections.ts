// Loops over lists of any length. Spreading a list into one call's arguments (`Math.max(...xs)`,
// `push(...xs)`) throws "Maximum call stack size exceeded" past about 120,000 items, and real
// checkpoints (mixture-of-experts models) hold more tensors than that.

/** The largest of `values`, or `empty` when there are none. NaN is ignored. */
export function maxOf(values: Iterable<number>, empty = -Infinity): number {
  let best = -Infinity;
  let any = false;
  for (const v of values) {
    if (v > best) best = v;
    any = true;
  }
  return any ? best : empty;
}

/** The smallest of `values`, or `empty` when there are none. NaN is ignored. */
export function minOf(values: Iterable<number>, empty = Infinity): number {
  let best = Infinity;
  let any = false;
  for (const v of values) {
    if (v < best) best = v;
    any = true;
  }
  return any ? best : empty;
}

/** Appends every item of `items` to `target` (push(...items) without the argument limit). */
export function appendAll<T>(target: T[], items: Iterable<T>): T[] {
  for (const item of items) target.push(item);
  return target;
}
