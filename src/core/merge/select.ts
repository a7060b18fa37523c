// Exact rank cuts over a whole tensor without holding it: "the first R elements" in magnitude order
// (top-k for TIES, the bands of breadcrumbs), found by radix selection over streamed chunks. Keys
// are float32 bit patterns of non-negative values, whose unsigned order is their numeric order.
// Ties are broken by flat index, the lower index first, in both orders, so the cut is unique:
//   pass hi: a histogram of the top 16 key bits  -> the bucket holding the R-th element;
//   pass lo: a histogram of the low 16 bits in that bucket -> the threshold key T and how many
//            elements equal to T belong to the cut (`need`);
//   pass eq: only when some but not all elements equal to T belong: how many equal T in each
//            block, so a chunk knows how many came before it. The lo pass lists the bucket's
//            members of every chunk when they are few, which gives these counts without this pass.
import { loadedKernels } from '../kernels';
import { clearSignsResident, countEqualResident, deltaBucketMembersResident, deltaBucketTallyResident, MEMBER_SLACK, nonEmptyBinsResident, type KernelWork, deltaCountEqualResident, deltaHistogramResident, histogramResident, keepInCutResident } from '../kernels/merge';
import { SUM_BLOCK } from './exact';
import type { ChunkData, Found, Stage, TensorView } from './methods/types';

export type CutOrder = 'asc' | 'desc';

/**
 * What keysOf computes, when the kernels know it too: with 'delta-magnitudes' (key i is the bits
 * of |models[i] - base|), they compute the keys in registers instead of reading keysOf's arrays.
 * keysOf stays the reference either way.
 */
export type KeyForm = 'any' | 'delta-magnitudes';

export interface CutRequest {
  /** Which key array (from keysOf) the cut ranks. */
  key: number;
  /** How many elements the cut holds. */
  rank: number;
  /** desc: the largest first (top-k); asc: the smallest first. */
  order: CutOrder;
}

export interface RankCut {
  kind: 'rank-cut';
  order: CutOrder;
  /** Every element is in the cut, or none is. */
  all?: boolean;
  none?: boolean;
  threshold: number;
  /** How many elements equal to the threshold are in the cut (the lowest-indexed ones). */
  need: number;
  /** Elements equal to the threshold before each block, from block eqPrefixBlock on. */
  eqPrefix?: Float64Array;
  eqPrefixBlock: number;
  /** Elements equal to the threshold before the chunk being applied. */
  eqBefore: number;
}

const BUCKETS = 65536;

/**
 * A histogram as a task sends it back: its non-empty bins and their counts, ascending by bin. Of
 * 65536 bins a task's magnitudes fill a few thousand at most, so this is a fraction of the dense
 * array to copy across threads and add up.
 */
interface SparseCounts { bins: Uint32Array; counts: Uint32Array }
type Counts = Uint32Array | SparseCounts;

function sparseOf(h: Counts, work?: KernelWork): SparseCounts {
  if (!(h instanceof Uint32Array)) return h;
  const found = work && nonEmptyBinsResident(work, h);
  if (found) return found;
  let n = 0;
  for (let i = 0; i < h.length; i++) if (h[i] !== 0) n++;
  const bins = new Uint32Array(n);
  const counts = new Uint32Array(n);
  for (let i = 0, j = 0; i < h.length; i++) {
    if (h[i] === 0) continue;
    bins[j] = i;
    counts[j++] = h[i];
  }
  return { bins, counts };
}

/** `into` += `h`. */
function addCounts(into: Uint32Array, h: Counts): void {
  if (h instanceof Uint32Array) for (let j = 0; j < h.length; j++) into[j] += h[j];
  else for (let j = 0; j < h.bins.length; j++) into[h.bins[j]] += h.counts[j];
}

/** a + b over the union of their bins (both ascending). */
function addSparse(a: SparseCounts, b: SparseCounts): SparseCounts {
  const bins = new Uint32Array(a.bins.length + b.bins.length);
  const counts = new Uint32Array(bins.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < a.bins.length || j < b.bins.length) {
    const x = i < a.bins.length ? a.bins[i] : 0x7fffffff;
    const y = j < b.bins.length ? b.bins[j] : 0x7fffffff;
    bins[n] = Math.min(x, y);
    counts[n++] = (x <= y ? a.counts[i++] : 0) + (y <= x ? b.counts[j++] : 0);
  }
  return { bins: bins.subarray(0, n), counts: counts.subarray(0, n) };
}

/**
 * a + b for histograms of consecutive ranges: sparse ones (from tasks) stay sparse, so the main
 * thread never walks 65536 bins per partial; `a` may be added to in place (it is never used again
 * once merged).
 */
function mergeCounts(a: Counts[], b: Counts[]): Counts[] {
  return a.map((h, i) => {
    const other = b[i];
    // Counts the kernels accumulate across a task's chunks are one array throughout: already added.
    if (other === h) return h;
    if (!(h instanceof Uint32Array) && !(other instanceof Uint32Array)) return addSparse(h, other);
    const dense = h instanceof Uint32Array ? h : new Uint32Array(BUCKETS);
    if (dense !== h) addCounts(dense, h);
    addCounts(dense, other);
    return dense;
  });
}

/** The count of bin `index`. */
function countAt(h: Counts, index: number): number {
  if (h instanceof Uint32Array) return h[index];
  let lo = 0;
  let hi = h.bins.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (h.bins[mid] === index) return h.counts[mid];
    if (h.bins[mid] < index) lo = mid + 1;
    else hi = mid - 1;
  }
  return 0;
}

interface HiPartial { hist: Counts[] }
interface HiFound { bucket: number; before: number; all?: boolean; none?: boolean }
interface LoFound { threshold: number; need: number; eqTotal: number; all?: boolean; none?: boolean }
interface EqPartial { start: number; counts: Uint32Array[] }

/** Some but not all of the elements equal to the threshold are in the cut: which ones goes by index. */
function partialTie(lo: LoFound): boolean {
  return !lo.all && !lo.none && lo.need > 0 && lo.need < lo.eqTotal;
}

/**
 * Members of a cut's hi bucket in one chunk, in index order: the low 16 key bits of each, and how
 * many fall in each SUM_BLOCK of the chunk. Chunks list them when they are few (see MEMBER_SHARE).
 */
interface MemberList {
  blockCounts: Uint32Array;
  values: Uint16Array;
}

/**
 * The same members as counts: for each distinct low value, how many of the chunk's `blocks`
 * blocks' members have it (perBlock[j * blocks + block], for lows[j]). Much smaller than the list
 * when a few values repeat, as the deltas of 16-bit weights do (a few units of their rounding).
 */
interface MemberTally {
  blocks: number;
  lows: Uint16Array;
  perBlock: Uint16Array;
}

type BucketMembers = MemberList | MemberTally;

/** The lo pass's partial: histograms, and per cut the members of every chunk, or undefined once a chunk had too many. */
interface LoPartial {
  hist: Counts[];
  members: (BucketMembers[] | undefined)[];
}

/** A chunk lists its bucket's members when they are at most 1 / MEMBER_SHARE of its elements (2 bytes each). */
const MEMBER_SHARE = 8;

/** Most distinct low values the tally kernel counts a chunk's members by; with more, they are listed. */
const TALLY_LOWS = 16;

/** Prefix counts per block of members equal to `low`, over the chunks' member lists in order. */
function tiesPerBlock(listed: readonly BucketMembers[], low: number, blocks: number): Float64Array {
  const prefix = new Float64Array(blocks + 1);
  let block = 0;
  for (const members of listed) {
    if (!('values' in members)) {
      const j = members.lows.indexOf(low);
      for (let b = 0; b < members.blocks; b++, block++) prefix[block + 1] = prefix[block] + (j < 0 ? 0 : members.perBlock[j * members.blocks + b]);
      continue;
    }
    const { blockCounts, values } = members;
    let at = 0;
    for (let b = 0; b < blockCounts.length; b++, block++) {
      let equal = 0;
      for (const end = at + blockCounts[b]; at < end; at++) if (values[at] === low) equal++;
      prefix[block + 1] = prefix[block] + equal;
    }
  }
  if (block !== blocks) throw new Error(`rank cut: member lists cover ${block} of ${blocks} blocks (internal error).`);
  return prefix;
}

/** Walks bucket counts in the cut's order and finds the bucket holding the rank-th element. */
function locate(h: Counts, rank: number, order: CutOrder): { index: number; before: number } {
  const { bins, counts } = h instanceof Uint32Array ? { bins: undefined, counts: h } : h;
  let before = 0;
  for (let step = 0; step < counts.length; step++) {
    const at = order === 'desc' ? counts.length - 1 - step : step;
    const c = counts[at];
    if (before + c >= rank) return { index: bins ? bins[at] : at, before };
    before += c;
  }
  throw new Error('rank cut: the histogram holds fewer elements than the rank (internal error).');
}

/**
 * The stages of a set of rank cuts under `id`. `found[id]` ends as RankCut[] in request order.
 * Chunks passed to these stages and to apply must start at multiples of SUM_BLOCK.
 */
export function rankCutStages(
  id: string,
  keysOf: (t: TensorView, found: Found, chunk: ChunkData) => Uint32Array[],
  cutsOf: (t: TensorView, found: Found) => CutRequest[],
  form: KeyForm = 'any',
): (t: TensorView, found: Found) => Stage | null {
  const hiId = `${id}.hi`;
  const loId = `${id}.lo`;
  const eqId = `${id}.eq`;
  /** keysOf, computed when first needed (the fused kernels need no keys). */
  const lazyKeys = (t: TensorView, found: Found, chunk: ChunkData) => {
    let keys: Uint32Array[] | undefined;
    return () => (keys ??= keysOf(t, found, chunk));
  };
  /** The chunk's kernel memory when the kernels may compute the keys themselves from its inputs. */
  const fusedWork = (chunk: ChunkData) => (form === 'delta-magnitudes' && (chunk.bf16Base !== undefined || chunk.base !== undefined) ? chunk.work : undefined);
  /** The operands of key i for those kernels: bf16 bits while both are still stored so (no decode), else float32 values. */
  const deltaOperands = (chunk: ChunkData, i: number): [Float32Array | Uint16Array, Float32Array | Uint16Array] => {
    const bits = chunk.bf16Models?.[i];
    return bits && chunk.bf16Base ? [bits, chunk.bf16Base] : [chunk.models[i], chunk.base!];
  };

  const hiStage: Stage<HiPartial> = {
    id: hiId,
    map(t, found, chunk) {
      const keys = lazyKeys(t, found, chunk);
      const fused = fusedWork(chunk);
      const hist = Array.from({ length: fused ? (chunk.bf16Models ?? chunk.models).length : keys().length }, (_, i) => {
        // With kernel memory, one set of counters takes every chunk of the task.
        const counters = chunk.work?.counters(`${hiId}:${i}`, BUCKETS);
        const h = counters ?? new Uint32Array(BUCKETS);
        if (counters && fused && deltaHistogramResident(fused.kernels, ...deltaOperands(chunk, i), counters)) return h;
        if (counters && histogramResident(chunk.work!.kernels, keys()[i], counters)) return h;
        const k = keys()[i];
        for (let e = 0; e < k.length; e++) h[k[e] >>> 16]++;
        return h;
      });
      return { hist };
    },
    merge(a, b) {
      a.hist = mergeCounts(a.hist, b.hist);
      return a;
    },
    pack: (p, work) => ({ hist: p.hist.map((h) => sparseOf(h, work)) }),
    finalize(p, t, found): HiFound[] {
      return cutsOf(t, found).map((cut) => {
        if (cut.rank <= 0) return { bucket: 0, before: 0, none: true };
        if (cut.rank >= t.numel) return { bucket: 0, before: 0, all: true };
        const { index, before } = locate(p.hist[cut.key], cut.rank, cut.order);
        return { bucket: index, before };
      });
    },
  };

  const loStage: Stage<LoPartial> = {
    id: loId,
    map(t, found, chunk) {
      const keys = lazyKeys(t, found, chunk);
      const fused = fusedWork(chunk);
      const his = found[hiId] as HiFound[];
      const blocks = Math.ceil(chunk.count / SUM_BLOCK);
      const capacity = Math.floor(chunk.count / MEMBER_SHARE);
      const hist: Uint32Array[] = [];
      const members: (BucketMembers[] | undefined)[] = [];
      cutsOf(t, found).forEach((cut, c) => {
        if (his[c].all || his[c].none) {
          hist.push(new Uint32Array(BUCKETS));
          members.push([]);
          return;
        }
        const bucket = his[c].bucket;
        const counters = chunk.work?.counters(`${loId}:${c}`, BUCKETS);
        const h = counters ?? new Uint32Array(BUCKETS);
        hist.push(h);
        if (counters && fused) {
          // Few distinct low values (16-bit inputs): counted per block, no list; else listed.
          const tallied = kernelTally(chunk, blocks, (kernels, lows, tally) =>
            deltaBucketTallyResident(kernels, ...deltaOperands(chunk, cut.key), bucket, SUM_BLOCK, lows, tally));
          if (tallied) {
            for (let j = 0; j < tallied.lows.length; j++) {
              let total = 0;
              for (let b = 0; b < tallied.blocks; b++) total += tallied.perBlock[j * tallied.blocks + b];
              h[tallied.lows[j]] += total;
            }
            members.push([tallied]);
            return;
          }
          const listed = kernelMembers(chunk, blocks, capacity, (kernels, blockCounts, values) =>
            deltaBucketMembersResident(kernels, ...deltaOperands(chunk, cut.key), bucket, counters, SUM_BLOCK, blockCounts, values));
          if (listed !== undefined) {
            members.push(listed ?? undefined);
            return;
          }
        }
        if (counters && !fused && histogramResident(chunk.work!.kernels, keys()[cut.key], counters, bucket)) {
          members.push(undefined);
          return;
        }
        const k = keys()[cut.key];
        const blockCounts = new Uint32Array(blocks);
        const values = new Uint16Array(capacity);
        let n = 0;
        for (let i = 0; i < k.length; i++) {
          if (k[i] >>> 16 !== bucket) continue;
          h[k[i] & 0xffff]++;
          blockCounts[(i / SUM_BLOCK) | 0]++;
          if (n < capacity) values[n] = k[i] & 0xffff;
          n++;
        }
        members.push(n > capacity ? undefined : [{ blockCounts, values: values.slice(0, n) }]);
      });
      return { hist, members };
    },
    merge(a, b) {
      a.hist = mergeCounts(a.hist, b.hist);
      a.members.forEach((listed, c) => {
        const more = b.members[c];
        if (listed && more) listed.push(...more);
        else a.members[c] = undefined;
      });
      return a;
    },
    pack: (p, work) => ({ ...p, hist: p.hist.map((h) => sparseOf(h, work)) }),
    finalize(p, t, found): LoFound[] {
      const his = found[hiId] as HiFound[];
      const los = cutsOf(t, found).map((cut, c): LoFound => {
        const hi = his[c];
        if (hi.all || hi.none) return { threshold: 0, need: 0, eqTotal: 0, all: hi.all, none: hi.none };
        const { index, before } = locate(p.hist[c], cut.rank - hi.before, cut.order);
        const need = cut.rank - hi.before - before;
        return { threshold: ((hi.bucket << 16) | index) >>> 0, need, eqTotal: countAt(p.hist[c], index) };
      });
      // The members listed in this pass give the threshold ties per block: no eq pass over the inputs.
      const tied = los.map(partialTie);
      if (tied.some(Boolean) && tied.every((tie, c) => !tie || p.members[c])) {
        const blocks = Math.ceil(t.numel / SUM_BLOCK);
        found[eqId] = los.map((lo, c) => (tied[c] ? tiesPerBlock(p.members[c]!, lo.threshold & 0xffff, blocks) : new Float64Array(blocks + 1)));
      }
      return los;
    },
  };

  const eqStage: Stage<EqPartial> = {
    id: eqId,
    map(t, found, chunk) {
      const keys = lazyKeys(t, found, chunk);
      const fused = fusedWork(chunk);
      const los = found[loId] as LoFound[];
      const blocks = Math.ceil(chunk.count / SUM_BLOCK);
      const counts = cutsOf(t, found).map((cut, c) => {
        if (!partialTie(los[c])) return new Uint32Array(blocks);
        const threshold = los[c].threshold;
        const counted = kernelCounts(chunk, blocks, (kernels, counts) =>
          fused ? deltaCountEqualResident(kernels, chunk.models[cut.key], chunk.base!, threshold, SUM_BLOCK, counts) : countEqualResident(kernels, keys()[cut.key], threshold, SUM_BLOCK, counts));
        if (counted) return counted;
        const k = keys()[cut.key];
        const out = new Uint32Array(blocks);
        for (let i = 0; i < k.length; i++) if (k[i] === threshold) out[(i / SUM_BLOCK) | 0]++;
        return out;
      });
      return { start: chunk.start, counts };
    },
    merge(a, b) {
      return {
        start: a.start,
        counts: a.counts.map((x, i) => {
          const joined = new Uint32Array(x.length + b.counts[i].length);
          joined.set(x);
          joined.set(b.counts[i], x.length);
          return joined;
        }),
      };
    },
    finalize(p) {
      return p.counts.map((counts) => {
        const prefix = new Float64Array(counts.length + 1);
        for (let i = 0; i < counts.length; i++) prefix[i + 1] = prefix[i] + counts[i];
        return prefix;
      });
    },
  };

  return (t, found) => {
    if (found[id]) return null;
    if (!found[hiId]) return hiStage as Stage;
    if (!found[loId]) return loStage as Stage;
    const los = found[loId] as LoFound[];
    if (!found[eqId] && los.some(partialTie)) return eqStage as Stage;
    const prefixes = found[eqId] as Float64Array[] | undefined;
    const orders = cutsOf(t, found).map((c) => c.order);
    found[id] = los.map((lo, c): RankCut => ({
      kind: 'rank-cut',
      order: orders[c],
      all: lo.all,
      none: lo.none,
      threshold: lo.threshold,
      need: lo.need,
      eqPrefix: partialTie(lo) ? prefixes![c] : undefined,
      eqPrefixBlock: 0,
      eqBefore: 0,
    }));
    return null;
  };
}

/**
 * A kernel's member list of a chunk, made in the chunk's temporaries and copied out: the list, null
 * when the chunk has more members than `capacity`, or undefined when the kernel could not run
 * (no kernel memory left, or an operand elsewhere).
 */
function kernelMembers(
  chunk: ChunkData, blocks: number, capacity: number,
  list: (kernels: NonNullable<ChunkData['work']>['kernels'], blockCounts: Uint32Array, values: Uint16Array) => number | undefined,
): BucketMembers[] | null | undefined {
  const work = chunk.work;
  const countMemory = work?.floats(blocks);
  const valueMemory = work?.floats(Math.ceil((capacity + MEMBER_SLACK) / 2));
  if (!work || !countMemory || !valueMemory) return undefined;
  const blockCounts = new Uint32Array(countMemory.buffer, countMemory.byteOffset, blocks).fill(0);
  const values = new Uint16Array(valueMemory.buffer, valueMemory.byteOffset, capacity + MEMBER_SLACK);
  const n = list(work.kernels, blockCounts, values);
  if (n === undefined) return undefined;
  return n < 0 ? null : [{ blockCounts: blockCounts.slice(), values: values.slice(0, n) }];
}

/**
 * A kernel's tally of a chunk's bucket members (at most TALLY_LOWS distinct low values), made in
 * the chunk's temporaries and copied out low-major; undefined when there are more distinct lows,
 * or the kernel could not run.
 */
function kernelTally(
  chunk: ChunkData, blocks: number,
  count: (kernels: NonNullable<ChunkData['work']>['kernels'], lows: Uint16Array, tally: Uint16Array) => number | undefined,
): MemberTally | undefined {
  const work = chunk.work;
  const lowMemory = work?.floats(TALLY_LOWS / 2);
  const tallyMemory = work?.floats(blocks * 4 * (TALLY_LOWS / 2));
  if (!work || !lowMemory || !tallyMemory) return undefined;
  const lows = new Uint16Array(lowMemory.buffer, lowMemory.byteOffset, TALLY_LOWS);
  const tally = new Uint16Array(tallyMemory.buffer, tallyMemory.byteOffset, blocks * 4 * TALLY_LOWS).fill(0);
  const distinct = count(work.kernels, lows, tally);
  if (distinct === undefined || distinct < 0) return undefined;
  // The kernel's four lane rows per block, added.
  const perBlock = new Uint16Array(distinct * blocks);
  for (let b = 0; b < blocks; b++) {
    for (let lane = 0; lane < 4; lane++) {
      const row = (b * 4 + lane) * TALLY_LOWS;
      for (let j = 0; j < distinct; j++) perBlock[j * blocks + b] += tally[row + j];
    }
  }
  return { blocks, lows: lows.slice(0, distinct), perBlock };
}

/**
 * Counts made by a kernel into zeroed u32 `size` counters in the chunk's temporaries, copied out;
 * undefined when the chunk has no kernel memory or its keys are elsewhere.
 */
function kernelCounts(chunk: ChunkData, size: number, count: (kernels: NonNullable<ChunkData['work']>['kernels'], into: Uint32Array) => boolean): Uint32Array | undefined {
  const work = chunk.work;
  const memory = work?.floats(size);
  if (!work || !memory) return undefined;
  const into = new Uint32Array(memory.buffer, memory.byteOffset, size);
  into.fill(0);
  return count(work.kernels, into) ? into.slice() : undefined;
}

function isCutList(value: unknown): value is RankCut[] {
  return Array.isArray(value) && value.length > 0 && (value[0] as RankCut)?.kind === 'rank-cut';
}

/**
 * Stage results as a task over [start, start + count) needs them: the per-block table of each rank
 * cut shrinks to the blocks of that range, and the eq-pass partial table (folded into the cuts)
 * is left out.
 */
export function sliceForRange(found: Found, start: number, count: number): Found {
  const out: Found = {};
  const first = Math.floor(start / SUM_BLOCK);
  const last = Math.ceil((start + count) / SUM_BLOCK);
  for (const [key, value] of Object.entries(found)) {
    if (key.endsWith('.eq')) continue;
    out[key] = isCutList(value)
      ? value.map((cut) => (cut.eqPrefix ? { ...cut, eqPrefix: cut.eqPrefix.slice(first - cut.eqPrefixBlock, last - cut.eqPrefixBlock + 1), eqPrefixBlock: first } : cut))
      : value;
  }
  return out;
}

/** Stage results for the chunk starting at `start` (a multiple of SUM_BLOCK): each cut knows how many threshold-equal elements came before. */
export function projectForChunk(found: Found, start: number): Found {
  const out: Found = {};
  const block = start / SUM_BLOCK;
  for (const [key, value] of Object.entries(found)) {
    out[key] = isCutList(value) ? value.map((cut) => ({ ...cut, eqBefore: cut.eqPrefix ? cut.eqPrefix[block - cut.eqPrefixBlock] : 0 })) : value;
  }
  return out;
}

/** Walks a chunk's elements in order and says which are in a cut. */
export class CutCursor {
  private eqSeen: number;

  constructor(private readonly cut: RankCut) {
    this.eqSeen = cut.eqBefore;
  }

  /** Call once per element, in index order. */
  takes(key: number): boolean {
    const cut = this.cut;
    if (cut.none) return false;
    if (cut.all) return true;
    if (key === cut.threshold) return this.eqSeen++ < cut.need;
    return cut.order === 'desc' ? key > cut.threshold : key < cut.threshold;
  }
}

/**
 * Zeroes, in place, the elements of `values` outside a magnitude cut (or, with `outside`, outside
 * the band between two ascending cuts: in `outside[1]` and not in `outside[0]`). The hot loop of
 * TIES and breadcrumbs, so the cursor logic is inlined.
 */
export function keepInCut(values: Float32Array, cut: RankCut): void {
  if (cut.all) return;
  if (cut.none) {
    values.fill(0);
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const threshold = cut.threshold;
  const need = cut.need;
  let eqSeen = cut.eqBefore;
  const desc = cut.order === 'desc';
  const kernels = loadedKernels();
  if (kernels && keepInCutResident(kernels, values, threshold, need, eqSeen, desc) !== undefined) return;
  for (let e = 0; e < bits.length; e++) {
    const key = bits[e] & 0x7fffffff;
    let keep: boolean;
    if (key === threshold) keep = eqSeen++ < need;
    else keep = desc ? key > threshold : key < threshold;
    if (!keep) values[e] = 0;
  }
}

const keyScratch = new Float32Array(1);
const keyBits = new Uint32Array(keyScratch.buffer);

/** |values| as float32 bit patterns (sign cleared), the keys of magnitude cuts: overwrites `values`. */
export function magnitudeKeys(values: Float32Array): Uint32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const kernels = loadedKernels();
  if (kernels && clearSignsResident(kernels, bits)) return bits;
  for (let i = 0; i < bits.length; i++) bits[i] &= 0x7fffffff;
  return bits;
}

/** The key of one non-negative float32 value. */
export function keyOf(value: number): number {
  keyScratch[0] = value;
  return keyBits[0] & 0x7fffffff;
}
