// Writing safetensors files. The whole header is planned first (layout identical to the
// reference's `prepare`: tensors sorted by descending dtype alignment then name, JSON padded with
// spaces to a multiple of 8), then tensor bytes are written at their planned offsets, in any order
// and concurrently, into `<path>.partial`, which is renamed into place only once every byte was
// written. An existing file is never replaced unless asked.

import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { dtypeBits } from './dtypes';
import { SafetensorsError } from './errors';
import { MAX_HEADER_SIZE } from './header';
import { ioError } from './reader';
import { DTYPES, type DType } from './types';

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface TensorData extends TensorSpec {
  /** Little-endian element bytes, numel x bits / 8 long. */
  data: Uint8Array;
}

export interface SafetensorsPlan {
  /** The 8-byte length prefix followed by the padded JSON header: the first bytes of the file. */
  headerBytes: Uint8Array;
  /** Absolute [begin, end) of every tensor's bytes in the file. */
  tensors: Map<string, { begin: number; end: number }>;
  /** Total file size. */
  fileSize: number;
}

export interface WriteOptions {
  /** Replace an existing file at the target path (default: refuse). */
  overwrite?: boolean;
}

/** Rust compares strings by UTF-8 bytes, which is code point order (not UTF-16 unit order). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

const DTYPE_RANK = new Map<DType, number>(DTYPES.map((d, i) => [d, i]));

function specError(message: string, tensor?: string): SafetensorsError {
  return new SafetensorsError(message, { rule: 'invalid-spec', tensor });
}

/** Rust strings are UTF-8: a lone UTF-16 surrogate cannot be written. */
function hasLoneSurrogate(s: string): boolean {
  return /\p{Cs}/u.test(s);
}

function byteLength(spec: TensorSpec): number {
  if (!DTYPE_RANK.has(spec.dtype)) throw specError(`Tensor "${spec.name}": unknown dtype "${spec.dtype}". Use one of ${DTYPES.join(', ')}.`, spec.name);
  let numel = 1;
  for (const dim of spec.shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw specError(`Tensor "${spec.name}": shape [${spec.shape.join(', ')}] must hold non-negative integers.`, spec.name);
    }
    numel *= dim;
  }
  const bits = numel * dtypeBits(spec.dtype);
  if (!Number.isSafeInteger(bits)) throw specError(`Tensor "${spec.name}" is too large to write.`, spec.name);
  if (bits % 8 !== 0) {
    throw specError(`Tensor "${spec.name}": ${numel} elements of ${spec.dtype} do not fill whole bytes; sub-byte tensors need an element count that packs into bytes.`, spec.name);
  }
  return bits / 8;
}

/**
 * Plans a file: header bytes, every tensor's absolute byte range and the file size, exactly as
 * safetensors would lay the same tensors out. `__metadata__` keys are written in sorted order.
 */
export function planSafetensors(specs: readonly TensorSpec[], metadata?: Record<string, string> | null): SafetensorsPlan {
  const names = new Set<string>();
  for (const spec of specs) {
    if (typeof spec.name !== 'string' || hasLoneSurrogate(spec.name)) throw specError(`Tensor name ${JSON.stringify(spec.name)} is not a valid string.`);
    if (spec.name === '__metadata__') throw specError('A tensor cannot be named "__metadata__": that key holds the file metadata.', spec.name);
    if (names.has(spec.name)) throw specError(`Tensor "${spec.name}" is listed twice; names must be unique.`, spec.name);
    names.add(spec.name);
  }
  const ordered = specs
    .map((spec) => ({ spec, size: byteLength(spec) }))
    .sort((a, b) => DTYPE_RANK.get(b.spec.dtype)! - DTYPE_RANK.get(a.spec.dtype)! || compareCodePoints(a.spec.name, b.spec.name));

  const parts: string[] = [];
  if (metadata) {
    const entries = Object.entries(metadata).sort(([a], [b]) => compareCodePoints(a, b));
    for (const [key, value] of entries) {
      if (typeof value !== 'string' || hasLoneSurrogate(key) || hasLoneSurrogate(value)) {
        throw specError(`Metadata "${key}" must be a string (safetensors metadata maps strings to strings).`);
      }
    }
    parts.push(`"__metadata__":{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  let offset = 0;
  const relative: { name: string; begin: number; end: number }[] = [];
  for (const { spec, size } of ordered) {
    // JSON.stringify escapes exactly what serde_json escapes (quote, backslash, control chars).
    parts.push(`${JSON.stringify(spec.name)}:{"dtype":"${spec.dtype}","shape":[${spec.shape.join(',')}],"data_offsets":[${offset},${offset + size}]}`);
    relative.push({ name: spec.name, begin: offset, end: offset + size });
    offset += size;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_SIZE) throw specError(`The header would take ${headerLength} bytes, more than the ${MAX_HEADER_SIZE} safetensors allows. Split the tensors over several files.`);
  const headerBytes = new Uint8Array(8 + headerLength).fill(0x20, 8 + json.length);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(headerLength), true);
  headerBytes.set(json, 8);
  const dataStart = headerBytes.length;
  const tensors = new Map(relative.map((t) => [t.name, { begin: dataStart + t.begin, end: dataStart + t.end }]));
  return { headerBytes, tensors, fileSize: dataStart + offset };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.lstat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw ioError(error, file, 'check');
  }
}

function targetExists(file: string): SafetensorsError {
  return new SafetensorsError(`"${file}" already exists. Choose another name, or allow overwriting it.`, { rule: 'target-exists', file });
}

/** Written ranges of one tensor, kept merged and sorted: [start, end) pairs. */
class Coverage {
  private ranges: [number, number][] = [];

  add(start: number, end: number): void {
    if (end <= start) return;
    const merged: [number, number][] = [];
    let [s, e] = [start, end];
    let placed = false;
    for (const [a, b] of this.ranges) {
      if (b < s) merged.push([a, b]);
      else if (a > e) {
        if (!placed) merged.push([s, e]);
        placed = true;
        merged.push([a, b]);
      } else {
        s = Math.min(s, a);
        e = Math.max(e, b);
      }
    }
    if (!placed) merged.push([s, e]);
    this.ranges = merged;
  }

  covers(size: number): boolean {
    return size === 0 || (this.ranges.length === 1 && this.ranges[0][0] === 0 && this.ranges[0][1] === size);
  }

  /** First byte not written, for error messages. */
  firstGap(): number {
    return this.ranges.length === 0 || this.ranges[0][0] > 0 ? 0 : this.ranges[0][1];
  }
}

/**
 * Writes one safetensors file whose layout is planned up front. Tensor bytes can arrive in any
 * order, in pieces, from concurrent callers; commit() checks every byte was written, syncs and
 * renames atomically.
 */
/** Output bytes between background flushes of a file being written (see flushBehind). */
const FLUSH_BEHIND_BYTES = 32 * 1024 * 1024;

export class SafetensorsFileWriter {
  readonly partialPath: string;
  private readonly coverage = new Map<string, Coverage>();
  private readonly pending = new Set<Promise<unknown>>();
  private state: 'open' | 'committed' | 'aborted' = 'open';
  /** Bytes recorded since the last flush-behind started, and that flush while it runs. */
  private unflushed = 0;
  private flushing?: Promise<void>;

  private constructor(
    readonly path: string,
    readonly plan: SafetensorsPlan,
    private readonly handle: FileHandle,
    private readonly overwrite: boolean,
  ) {
    this.partialPath = `${path}.partial`;
    for (const name of plan.tensors.keys()) this.coverage.set(name, new Coverage());
  }

  static async create(target: string, specs: readonly TensorSpec[], metadata?: Record<string, string> | null, options: WriteOptions = {}): Promise<SafetensorsFileWriter> {
    const plan = planSafetensors(specs, metadata);
    const file = path.resolve(target);
    if (!options.overwrite && (await exists(file))) throw targetExists(file);
    let handle: FileHandle;
    try {
      handle = await fsp.open(`${file}.partial`, 'w');
    } catch (error) {
      throw ioError(error, `${file}.partial`, 'create');
    }
    const writer = new SafetensorsFileWriter(file, plan, handle, options.overwrite ?? false);
    try {
      // Sizing the file first lets tensors be written in any order without holes to fill later.
      await handle.truncate(plan.fileSize);
      await writer.writeAt(plan.headerBytes, 0);
    } catch (error) {
      await writer.abort();
      throw ioError(error, writer.partialPath, 'write');
    }
    return writer;
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, position + done);
      done += bytesWritten;
    }
  }

  /** Writes `bytes` at `byteOffset` within tensor `name`'s planned range. */
  async writeTensor(name: string, bytes: Uint8Array, byteOffset = 0): Promise<void> {
    if (this.state !== 'open') throw new SafetensorsError(`Cannot write to "${this.path}": the writer was already ${this.state}.`, { rule: 'incomplete-write', file: this.path });
    const range = this.plan.tensors.get(name);
    if (!range) throw specError(`Tensor "${name}" is not part of the file being written to "${this.path}".`, name);
    const size = range.end - range.begin;
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + bytes.byteLength > size) {
      throw specError(`Bytes [${byteOffset}, ${byteOffset + bytes.byteLength}) do not fit tensor "${name}", which holds ${size} bytes.`, name);
    }
    const write = this.writeAt(bytes, range.begin + byteOffset);
    this.pending.add(write);
    try {
      await write;
    } catch (error) {
      throw ioError(error, this.partialPath, 'write');
    } finally {
      this.pending.delete(write);
    }
    this.coverage.get(name)!.add(byteOffset, byteOffset + bytes.byteLength);
    this.flushBehind(bytes.byteLength);
  }

  /**
   * The position in the partial file of tensor `name`'s bytes [byteOffset, byteOffset + length),
   * for a writer elsewhere (a worker thread with its own handle) that then reports them with
   * recordWritten() before commit().
   */
  positionOf(name: string, byteOffset: number, length: number): number {
    if (this.state !== 'open') throw new SafetensorsError(`Cannot write to "${this.path}": the writer was already ${this.state}.`, { rule: 'incomplete-write', file: this.path });
    const range = this.plan.tensors.get(name);
    if (!range) throw specError(`Tensor "${name}" is not part of the file being written to "${this.path}".`, name);
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + length > range.end - range.begin) {
      throw specError(`Bytes [${byteOffset}, ${byteOffset + length}) do not fit tensor "${name}", which holds ${range.end - range.begin} bytes.`, name);
    }
    return range.begin + byteOffset;
  }

  /** Records bytes of `name` written into the partial file through positionOf(). */
  recordWritten(name: string, byteOffset: number, length: number): void {
    this.positionOf(name, byteOffset, length);
    this.coverage.get(name)!.add(byteOffset, byteOffset + length);
    this.flushBehind(length);
  }

  /**
   * Starts writing the file's dirty pages to disk every FLUSH_BEHIND_BYTES, in the background, so
   * that the sync at commit() has little left to do: without it a large output's whole write-back
   * comes after the last byte is computed, with every thread idle. Its errors are left to
   * commit()'s own sync, which reports them.
   */
  private flushBehind(bytes: number): void {
    this.unflushed += bytes;
    if (this.unflushed < FLUSH_BEHIND_BYTES || this.flushing || this.state !== 'open') return;
    this.unflushed = 0;
    this.flushing = this.handle.datasync().then(
      () => { this.flushing = undefined; },
      () => { this.flushing = undefined; },
    );
  }

  /** Checks every tensor was fully written, syncs, and moves the file into place. */
  async commit(): Promise<void> {
    if (this.state !== 'open') throw new SafetensorsError(`Cannot commit "${this.path}": the writer was already ${this.state}.`, { rule: 'incomplete-write', file: this.path });
    await Promise.allSettled([...this.pending]);
    await this.flushing;
    for (const [name, range] of this.plan.tensors) {
      const coverage = this.coverage.get(name)!;
      if (!coverage.covers(range.end - range.begin)) {
        throw new SafetensorsError(
          `Tensor "${name}" of "${this.path}" was not fully written (byte ${coverage.firstGap()} of ${range.end - range.begin} is missing). Write all of it before committing, or abort.`,
          { rule: 'incomplete-write', tensor: name, file: this.path },
        );
      }
    }
    try {
      await this.handle.sync();
      await this.handle.close();
    } catch (error) {
      await this.abort();
      throw ioError(error, this.partialPath, 'write');
    }
    this.state = 'committed';
    try {
      await this.moveIntoPlace();
    } catch (error) {
      await fsp.rm(this.partialPath, { force: true });
      throw error;
    }
    await syncFolder(path.dirname(this.path));
  }

  private async moveIntoPlace(): Promise<void> {
    if (this.overwrite) {
      await fsp.rename(this.partialPath, this.path).catch((error) => {
        throw ioError(error, this.path, 'replace');
      });
      return;
    }
    // A hard link fails if the target appeared meanwhile: no window in which a file is replaced.
    try {
      await fsp.link(this.partialPath, this.path);
      await fsp.rm(this.partialPath, { force: true });
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw targetExists(this.path);
      // File systems without hard links: check, then rename.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV' && code !== 'ENOSYS') throw ioError(error, this.path, 'create');
    }
    if (await exists(this.path)) throw targetExists(this.path);
    await fsp.rename(this.partialPath, this.path).catch((error) => {
      throw ioError(error, this.path, 'create');
    });
  }

  /** Gives up: closes and deletes the partial file. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state === 'aborted' || this.state === 'committed') return;
    this.state = 'aborted';
    await Promise.allSettled([...this.pending]);
    await this.flushing;
    await this.handle.close().catch(() => undefined);
    await fsp.rm(this.partialPath, { force: true });
  }
}

/** fsync a folder so a rename survives a crash; not possible on every platform, hence best effort. */
async function syncFolder(folder: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(folder, 'r');
    await handle.sync();
  } catch {
    // Windows cannot open folders for sync; the rename is still atomic there.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function checkData(tensor: TensorData, plan: SafetensorsPlan): void {
  const range = plan.tensors.get(tensor.name)!;
  if (tensor.data.byteLength !== range.end - range.begin) {
    throw specError(
      `Tensor "${tensor.name}": ${tensor.data.byteLength} bytes given, but shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${range.end - range.begin}.`,
      tensor.name,
    );
  }
}

/** Writes tensors held in memory to one file (atomically). */
export async function writeSafetensors(target: string, tensors: readonly TensorData[], metadata?: Record<string, string> | null, options: WriteOptions = {}): Promise<void> {
  const plan = planSafetensors(tensors, metadata);
  for (const tensor of tensors) checkData(tensor, plan);
  const writer = await SafetensorsFileWriter.create(target, tensors, metadata, options);
  try {
    for (const tensor of tensors) await writer.writeTensor(tensor.name, tensor.data);
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

export interface ShardOptions extends WriteOptions {
  /** A shard grows until the next tensor would push it past this many bytes of tensor data. */
  maxShardBytes: number;
  /** File names are `<baseName>-0000i-of-0000n.safetensors` and `<baseName>.safetensors.index.json`. */
  baseName?: string;
  /** `__metadata__` of every shard. */
  metadata?: Record<string, string> | null;
}

export interface ShardPlan {
  /** Shard file names (no folder) with the tensors each holds, in order. */
  shards: { file: string; specs: TensorSpec[]; bytes: number }[];
  /** `<baseName>.safetensors.index.json`. */
  indexFile: string;
  /** The index file's text: `{metadata: {total_parameters, total_size}, weight_map}`. */
  indexJson: string;
}

/**
 * Splits tensors into shards the way transformers does (in the given order, a new shard when the
 * next tensor would not fit; a tensor larger than the limit gets a shard of its own), from specs
 * alone, so an output can be sharded before any of its tensors exists.
 */
export function planShards(specs: readonly TensorSpec[], maxShardBytes: number, baseName = 'model'): ShardPlan {
  if (!(maxShardBytes > 0)) throw specError(`maxShardBytes must be a positive number of bytes, not ${maxShardBytes}.`);
  const groups: { specs: TensorSpec[]; bytes: number }[] = [];
  let current: { specs: TensorSpec[]; bytes: number } = { specs: [], bytes: 0 };
  let totalParameters = 0;
  for (const spec of specs) {
    const size = byteLength(spec);
    if (current.specs.length > 0 && current.bytes + size > maxShardBytes) {
      groups.push(current);
      current = { specs: [], bytes: 0 };
    }
    current.specs.push(spec);
    current.bytes += size;
    totalParameters += spec.shape.reduce((a, b) => a * b, 1);
  }
  if (current.specs.length > 0 || groups.length === 0) groups.push(current);
  const pad = (n: number) => String(n).padStart(5, '0');
  const shards = groups.map((group, i) => ({ file: `${baseName}-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`, ...group }));
  const weightMap: Record<string, string> = {};
  for (const shard of shards) for (const spec of shard.specs) weightMap[spec.name] = shard.file;
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort(compareCodePoints).map((k) => [k, weightMap[k]]));
  const totalSize = shards.reduce((n, shard) => n + shard.bytes, 0);
  const index = { metadata: { total_parameters: totalParameters, total_size: totalSize }, weight_map: sortedMap };
  return { shards, indexFile: `${baseName}.safetensors.index.json`, indexJson: JSON.stringify(index, null, 2) + '\n' };
}

/**
 * Writes tensors held in memory as shards planned by planShards, then the index. Always writes an
 * index, even for a single shard, so callers get one layout.
 */
export async function writeShardedSafetensors(dir: string, tensors: readonly TensorData[], options: ShardOptions): Promise<{ files: string[]; indexFile: string }> {
  const { maxShardBytes, baseName = 'model', metadata } = options;
  const plan = planShards(tensors, maxShardBytes, baseName);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const folder = path.resolve(dir);
  await fsp.mkdir(folder, { recursive: true }).catch((error) => {
    throw ioError(error, folder, 'create');
  });
  const files = plan.shards.map((shard) => path.join(folder, shard.file));
  const indexFile = path.join(folder, plan.indexFile);
  if (!options.overwrite) {
    for (const file of [indexFile, ...files]) if (await exists(file)) throw targetExists(file);
  }
  const written: string[] = [];
  try {
    for (let i = 0; i < plan.shards.length; i++) {
      await writeSafetensors(files[i], plan.shards[i].specs.map((spec) => byName.get(spec.name)!), metadata, { overwrite: options.overwrite });
      written.push(files[i]);
    }
    await writeTextAtomically(indexFile, plan.indexJson, options.overwrite ?? false);
  } catch (error) {
    // A half-written set is useless: remove the shards this call wrote.
    await Promise.all(written.map((file) => fsp.rm(file, { force: true })));
    throw error;
  }
  return { files, indexFile };
}

/** Writes a small text file through a partial file and a rename, like the tensor files. */
export async function writeTextAtomically(file: string, text: string, overwrite: boolean): Promise<void> {
  if (!overwrite && (await exists(file))) throw targetExists(file);
  const partial = `${file}.partial`;
  try {
    await fsp.writeFile(partial, text);
    await fsp.rename(partial, file);
  } catch (error) {
    await fsp.rm(partial, { force: true });
    throw ioError(error, file, 'write');
  }
}
