// The streaming loop shared by stats, diff and merge: units of work are read one ahead of the one
// being processed, through two alternating slots (each with its own reused buffers), so the memory
// held is two units' worth whatever the tensor or model size. On a main thread the read overlaps
// compute; worker threads read blocking (IO_BLOCKS_THREAD), and the other workers fill the cores.
import { IO_BLOCKS_THREAD, type ReadHandle } from '../files';
import { openReadHandle } from '../safetensors/reader';

/** Cancellation as the loop sees it: the TaskContext of a worker kernel fits. */
export interface StreamControl {
  throwIfCancelled(): void;
}

/** How long a loop of blocking reads may go without an event-loop turn (where cancels arrive). */
const EVENT_TURN_MS = 20;

/**
 * Runs `process` over `units` in order. `read(unit, slot)` fills slot 0 or 1 (alternating), and the
 * next unit's read is started before the current one is processed. A read still in flight when the
 * loop ends early (cancel, error) is settled before this returns, so callers may close handles.
 */
export async function streamUnits<U, D>(
  units: readonly U[],
  read: (unit: U, slot: 0 | 1) => Promise<D>,
  process: (data: D, unit: U, index: number) => void | Promise<void>,
  control?: StreamControl,
): Promise<void> {
  let pending: Promise<D> | undefined = units.length > 0 ? read(units[0], 0) : undefined;
  let lastTurn = Date.now();
  try {
    for (let i = 0; i < units.length; i++) {
      const data = await pending!;
      // Blocking reads never return to the event loop on their own: let a cancel message in.
      if (IO_BLOCKS_THREAD && Date.now() - lastTurn > EVENT_TURN_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastTurn = Date.now();
      }
      control?.throwIfCancelled();
      pending = i + 1 < units.length ? read(units[i + 1], ((i + 1) % 2) as 0 | 1) : undefined;
      await process(data, units[i], i);
    }
  } finally {
    await pending?.catch(() => undefined);
  }
}

/** Element ranges [start, start + count) covering `count` elements from `start`, `size` at a time. */
export function elementRanges(start: number, count: number, size: number): { start: number; count: number }[] {
  const step = Math.max(1, Math.floor(size));
  const out: { start: number; count: number }[] = [];
  for (let offset = 0; offset < count; offset += step) out.push({ start: start + offset, count: Math.min(step, count - offset) });
  return out;
}

/** Work below this many elements is not worth splitting further to feed another thread. */
export const MIN_SPLIT_ELEMENTS = 1 << 20;

/**
 * The task size for `total` elements on `lanes` threads: at most `maxSize`, and small enough that
 * the tasks come in a multiple of `lanes` of equal size (but not below MIN_SPLIT_ELEMENTS), so
 * one large tensor keeps every thread busy to the end instead of leaving one finishing a tail.
 */
export function balancedTaskSize(total: number, maxSize: number, lanes: number): number {
  const max = Math.max(1, Math.floor(maxSize));
  if (total <= 0 || lanes <= 1) return max;
  let tasks = Math.ceil(total / max);
  tasks = Math.ceil(tasks / lanes) * lanes;
  return Math.min(max, Math.max(Math.min(max, MIN_SPLIT_ELEMENTS), Math.ceil(total / tasks)));
}

/** Read handles opened once per file for the length of a task, closed together. */
export class FileHandles {
  private readonly handles = new Map<string, Promise<ReadHandle>>();

  get(file: string): Promise<ReadHandle> {
    let handle = this.handles.get(file);
    if (!handle) {
      handle = openReadHandle(file);
      this.handles.set(file, handle);
    }
    return handle;
  }

  async closeAll(): Promise<void> {
    const opened = await Promise.allSettled(this.handles.values());
    this.handles.clear();
    await Promise.all(opened.map((h) => (h.status === 'fulfilled' ? h.value.close().catch(() => undefined) : undefined)));
  }
}
