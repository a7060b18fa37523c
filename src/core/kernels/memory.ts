// Regions of the kernel module's memory that operands are read into (positional reads straight
// into a view of it) and results are left in. The memory only grows while no region is handed
// out: growing detaches the old ArrayBuffer, which a read in flight may still be writing to. A
// request that would need growth while regions are out waits until they are given back (only
// several tasks on one thread, as the inline runner does, ever wait).
import type { StreamControl } from '../tensors/stream';
import type { KernelExports, WasmMemory } from './module';

const PAGE = 65536;
const ALIGN = 64;

export class KernelRegion {
  constructor(
    private readonly memory: WasmMemory,
    /** Byte offset in the module's memory: the pointer the kernels take. */
    readonly offset: number,
    readonly byteLength: number,
  ) {}

  /** The first `byteLength` bytes as a fresh view (views from before a growth are detached). */
  bytes(byteLength = this.byteLength): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.offset, byteLength);
  }

  floats(count: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.offset, count);
  }

  words(count: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, this.offset, count);
  }
}

interface Span {
  offset: number;
  size: number;
}

export class KernelMemory {
  private readonly free: Span[] = [];
  private top: number;
  private out = 0;
  private waiting: (() => void)[] = [];

  constructor(private readonly exports: KernelExports) {
    this.top = roundUp(exports.heapStart(), ALIGN);
  }

  /**
   * Regions of the given sizes, taken together (so two callers cannot each hold half of what they
   * need). A caller that waits is woken by every give(); a cancelled one then throws instead of
   * taking. Every region taken must be given back, on every path, or waiters wait for ever.
   */
  async take(sizes: readonly number[], control?: StreamControl): Promise<KernelRegion[]> {
    for (;;) {
      control?.throwIfCancelled();
      const regions = this.tryTake(sizes);
      if (regions) return regions;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /** take() without waiting: undefined when the regions are not free now. */
  takeNow(sizes: readonly number[]): KernelRegion[] | undefined {
    return this.tryTake(sizes);
  }

  /** Regions handed out and not given back yet. */
  get regionsOut(): number {
    return this.out;
  }

  /** Callers of take() waiting for regions to be given back. */
  get waiters(): number {
    return this.waiting.length;
  }

  give(regions: readonly KernelRegion[]): void {
    for (const region of regions) {
      this.free.push({ offset: region.offset, size: roundUp(region.byteLength, ALIGN) });
      this.out--;
    }
    this.coalesce();
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }

  private tryTake(sizes: readonly number[]): KernelRegion[] | undefined {
    const spans: Span[] = [];
    const undo = () => {
      for (const span of spans) this.free.push(span);
      this.coalesce();
    };
    for (const size of sizes.map((s) => roundUp(Math.max(1, s), ALIGN))) {
      const span = this.fromFree(size) ?? this.fromTop(size);
      if (!span) {
        undo();
        return undefined;
      }
      spans.push(span);
    }
    this.out += spans.length;
    return spans.map((span, i) => new KernelRegion(this.exports.memory, span.offset, sizes[i]));
  }

  private fromFree(size: number): Span | undefined {
    const i = this.free.findIndex((s) => s.size >= size);
    if (i < 0) return undefined;
    const span = this.free[i];
    if (span.size === size) this.free.splice(i, 1);
    else this.free[i] = { offset: span.offset + size, size: span.size - size };
    return { offset: span.offset, size };
  }

  /** New memory above everything handed out so far; grows the memory only when nothing is out. */
  private fromTop(size: number): Span | undefined {
    const memory = this.exports.memory;
    const end = this.top + size;
    if (end > memory.buffer.byteLength) {
      if (this.out > 0) return undefined;
      memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE));
    }
    const span = { offset: this.top, size };
    this.top = end;
    return span;
  }

  /** Merges adjacent free spans, and gives the topmost back to the bump pointer. */
  private coalesce(): void {
    this.free.sort((a, b) => a.offset - b.offset);
    for (let i = this.free.length - 1; i > 0; i--) {
      const before = this.free[i - 1];
      if (before.offset + before.size === this.free[i].offset) {
        before.size += this.free[i].size;
        this.free.splice(i, 1);
      }
    }
    const last = this.free[this.free.length - 1];
    if (last && last.offset + last.size === this.top) {
      this.top = last.offset;
      this.free.pop();
    }
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
