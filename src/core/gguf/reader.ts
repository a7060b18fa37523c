// Reads only the header of a GGUF file (metadata and tensor infos), never the tensor data.
// Every count and length read from the file is checked against the bytes that remain before
// anything is allocated, so a corrupt or hostile file fails fast instead of exhausting memory.

import * as fs from 'node:fs';
import { openRegularFile } from '../files';
import {
  GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_DIMS, GGUF_VALUE_TYPE_NAMES, GgufError, GgufValueType,
  type GgufArrayValue, type GgufHeader, type GgufMetadataEntry, type GgufTensorInfo, type GgufValue,
} from './types';

export interface ReadGgufOptions {
  /** Arrays longer than this are skipped (length and type kept, items omitted): tokenizer vocabularies are huge. */
  maxArrayItems?: number;
  /** Longest string accepted, in bytes. */
  maxStringBytes?: number;
  /**
   * Metadata entries to keep (general.alignment always is); the others are stepped over without
   * decoding their values and counted in `skippedMetadata`. Default: keep all.
   */
  keepKey?: (key: string) => boolean;
  /** A header declaring more metadata entries is refused (default: no limit but the file size). */
  maxMetadataEntries?: number;
  /** A metadata section longer than this many bytes is refused (default: no limit but the file size). */
  maxMetadataBytes?: number;
  /** Kept values (strings and arrays) past this many bytes in all are skipped instead (default: no limit). */
  maxKeptBytes?: number;
}

/** The caps the catalog reads GGUF headers with: what a real file needs, many times over. */
export const GGUF_CATALOG_LIMITS = {
  maxArrayItems: 64,
  maxMetadataEntries: 65_536,
  maxMetadataBytes: 128 * 1024 * 1024,
  maxKeptBytes: 4 * 1024 * 1024,
  keepKey: (key: string) => key.startsWith('general.'),
} satisfies ReadGgufOptions;

/** GGUF keys are at most 65,535 bytes (llama.cpp's limit). */
const MAX_KEY_BYTES = 65_535;

const READ_CHUNK = 64 * 1024;
const DEFAULT_MAX_STRING_BYTES = 64 * 1024 * 1024;
const MAX_ARRAY_NESTING = 8;

/** Smallest encoding of one value of each type: used to bound counts by the bytes left. */
function minValueBytes(type: number): number {
  switch (type) {
    case GgufValueType.UINT8: case GgufValueType.INT8: case GgufValueType.BOOL: return 1;
    case GgufValueType.UINT16: case GgufValueType.INT16: return 2;
    case GgufValueType.UINT32: case GgufValueType.INT32: case GgufValueType.FLOAT32: return 4;
    case GgufValueType.UINT64: case GgufValueType.INT64: case GgufValueType.FLOAT64: case GgufValueType.STRING: return 8;
    case GgufValueType.ARRAY: return 12;
    default: return 1;
  }
}

/** Sequential reads over a file handle through a small window, with positions checked against the file size. */
class Cursor {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  pos = 0;

  constructor(private readonly handle: fs.promises.FileHandle, readonly fileSize: number) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Makes [pos, pos + n) available in the window, or explains what ran past the end of the file. */
  async need(n: number, what: string): Promise<Buffer> {
    if (n > this.remaining) {
      throw new GgufError(`${what} needs ${n} bytes at offset ${this.pos} but the file ends at ${this.fileSize}: the file is truncated or corrupt.`);
    }
    const from = this.pos - this.windowStart;
    if (from < 0 || from + n > this.window.length) {
      const length = Math.min(Math.max(n, READ_CHUNK), this.remaining);
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await this.handle.read(buffer, filled, length - filled, this.pos + filled);
        if (bytesRead === 0) throw new GgufError(`The file ended early at offset ${this.pos + filled} while reading ${what}: it changed while being read or is truncated.`);
        filled += bytesRead;
      }
      this.window = buffer;
      this.windowStart = this.pos;
    }
    const start = this.pos - this.windowStart;
    this.pos += n;
    return this.window.subarray(start, start + n);
  }

  /** A u64 length read without waiting when its bytes are already in the window; null when they are not. */
  lengthInWindow(): number | null {
    const from = this.pos - this.windowStart;
    if (from < 0 || from + 8 > this.window.length) return null;
    const value = this.window.readBigUInt64LE(from);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    this.pos += 8;
    return Number(value);
  }

  skip(n: number, what: string): void {
    if (n > this.remaining) throw new GgufError(`${what} (${n} bytes at offset ${this.pos}) runs past the end of the file at ${this.fileSize}: the file is truncated or corrupt.`);
    this.pos += n;
  }

  async u32(what: string): Promise<number> {
    return (await this.need(4, what)).readUInt32LE(0);
  }

  /** A u64 that must be a safe integer (a count, length or offset). */
  async u64(what: string): Promise<number> {
    const value = (await this.need(8, what)).readBigUInt64LE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${what} is ${value}, which no real file can have: the header is corrupt.`);
    return Number(value);
  }
}

export async function readGgufHeader(filePath: string, options: ReadGgufOptions = {}): Promise<GgufHeader> {
  const handle = await openRegularFile(filePath);
  try {
    const { size } = await handle.stat();
    return await parseHeader(new Cursor(handle, size), filePath, options);
  } finally {
    await handle.close();
  }
}

async function parseHeader(cursor: Cursor, filePath: string, options: ReadGgufOptions): Promise<GgufHeader> {
  const maxArrayItems = options.maxArrayItems ?? Number.POSITIVE_INFINITY;
  const maxStringBytes = options.maxStringBytes ?? DEFAULT_MAX_STRING_BYTES;
  if (cursor.fileSize < 24) throw new GgufError(`${filePath} is ${cursor.fileSize} bytes, too small for a GGUF header (at least 24).`);

  const magic = (await cursor.need(4, 'the magic')).toString('latin1');
  if (magic !== GGUF_MAGIC) throw new GgufError(`${filePath} is not a GGUF file: it starts with ${JSON.stringify(magic)} instead of "GGUF".`);
  const version = await cursor.u32('the version');
  if (version === 1) throw new GgufError(`${filePath} is GGUF version 1, which predates 64-bit counts and is not supported: re-convert it with a current llama.cpp.`);
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
    if (swapped === 2 || swapped === 3) throw new GgufError(`${filePath} is a big-endian GGUF file, which is not supported: convert it to little-endian with llama.cpp's gguf tools.`);
    throw new GgufError(`${filePath} has GGUF version ${version}; only versions 2 and 3 are supported.`);
  }
  const tensorCount = await cursor.u64('the tensor count');
  const kvCount = await cursor.u64('the metadata count');
  // Each key/value takes at least 13 bytes and each tensor info at least 24: counts beyond what fits are corrupt.
  if (kvCount * 13 + tensorCount * 24 > cursor.remaining) {
    throw new GgufError(`${filePath} declares ${kvCount} metadata entries and ${tensorCount} tensors, which cannot fit in its ${cursor.fileSize} bytes: the header is corrupt.`);
  }

  const readString = async (what: string): Promise<string> => {
    const length = await cursor.u64(`the length of ${what}`);
    if (length > maxStringBytes) throw new GgufError(`${what} is ${length} bytes long, more than the ${maxStringBytes} accepted: the header is corrupt.`);
    return (await cursor.need(length, what)).toString('utf8');
  };

  const readValue = async (type: number, what: string, depth: number): Promise<GgufValue> => {
    switch (type) {
      case GgufValueType.UINT8: return (await cursor.need(1, what)).readUInt8(0);
      case GgufValueType.INT8: return (await cursor.need(1, what)).readInt8(0);
      case GgufValueType.UINT16: return (await cursor.need(2, what)).readUInt16LE(0);
      case GgufValueType.INT16: return (await cursor.need(2, what)).readInt16LE(0);
      case GgufValueType.UINT32: return (await cursor.need(4, what)).readUInt32LE(0);
      case GgufValueType.INT32: return (await cursor.need(4, what)).readInt32LE(0);
      case GgufValueType.FLOAT32: return (await cursor.need(4, what)).readFloatLE(0);
      case GgufValueType.UINT64: return (await cursor.need(8, what)).readBigUInt64LE(0);
      case GgufValueType.INT64: return (await cursor.need(8, what)).readBigInt64LE(0);
      case GgufValueType.FLOAT64: return (await cursor.need(8, what)).readDoubleLE(0);
      case GgufValueType.BOOL: {
        const byte = (await cursor.need(1, what)).readUInt8(0);
        if (byte > 1) throw new GgufError(`${what} is a bool stored as ${byte} (must be 0 or 1): the header is corrupt.`);
        return byte === 1;
      }
      case GgufValueType.STRING: return readString(what);
      case GgufValueType.ARRAY: return readArray(what, depth);
      default: throw new GgufError(`${what} has unknown value type ${type} (known: 0-12): the header is corrupt or from a newer GGUF version.`);
    }
  };

  const readArray = async (what: string, depth: number): Promise<GgufArrayValue> => {
    if (depth >= MAX_ARRAY_NESTING) throw new GgufError(`${what} nests arrays more than ${MAX_ARRAY_NESTING} deep: the header is corrupt.`);
    const itemType = await cursor.u32(`the item type of ${what}`);
    if (itemType > GgufValueType.FLOAT64) throw new GgufError(`${what} is an array of unknown value type ${itemType}: the header is corrupt.`);
    const length = await cursor.u64(`the length of ${what}`);
    if (length * minValueBytes(itemType) > cursor.remaining) {
      throw new GgufError(`${what} declares ${length} items of type ${GGUF_VALUE_TYPE_NAMES[itemType as GgufValueType]}, more than the ${cursor.remaining} bytes left can hold: the header is corrupt.`);
    }
    const array: GgufArrayValue = { itemType: itemType as GgufValueType, length };
    if (length > maxArrayItems) {
      await skipItems(itemType, length, what, depth);
      return array;
    }
    const items: GgufValue[] = new Array(length);
    for (let i = 0; i < length; i++) items[i] = await readValue(itemType, `${what}[${i}]`, depth + 1);
    array.items = items;
    return array;
  };

  const skipValue = async (type: number, what: string): Promise<void> => {
    if (type === GgufValueType.STRING) cursor.skip(await cursor.u64(`the length of ${what}`), what);
    else if (type === GgufValueType.ARRAY) {
      const itemType = await cursor.u32(`the item type of ${what}`);
      if (itemType > GgufValueType.FLOAT64) throw new GgufError(`${what} is an array of unknown value type ${itemType}: the header is corrupt.`);
      const length = await cursor.u64(`the length of ${what}`);
      if (length * minValueBytes(itemType) > cursor.remaining) throw new GgufError(`${what} declares ${length} items, more than the bytes left can hold: the header is corrupt.`);
      await skipItems(itemType, length, what, 0);
    } else if (type <= GgufValueType.FLOAT64) cursor.skip(minValueBytes(type), what);
    else throw new GgufError(`${what} has unknown value type ${type} (known: 0-12): the header is corrupt or from a newer GGUF version.`);
  };

  const skipItems = async (itemType: number, length: number, what: string, depth: number): Promise<void> => {
    if (itemType === GgufValueType.STRING) {
      // A vocabulary holds millions of strings: their lengths are read from the window without an
      // await each, which would cost more than the reading itself.
      for (let i = 0; i < length; i++) cursor.skip(cursor.lengthInWindow() ?? (await cursor.u64(`the length of ${what}[${i}]`)), `${what}[${i}]`);
    } else if (itemType === GgufValueType.ARRAY) {
      for (let i = 0; i < length; i++) {
        if (depth + 1 >= MAX_ARRAY_NESTING) throw new GgufError(`${what} nests arrays more than ${MAX_ARRAY_NESTING} deep: the header is corrupt.`);
        const inner = await cursor.u32(`the item type of ${what}[${i}]`);
        const innerLength = await cursor.u64(`the length of ${what}[${i}]`);
        if (innerLength * minValueBytes(inner) > cursor.remaining) throw new GgufError(`${what}[${i}] declares ${innerLength} items, more than the bytes left can hold: the header is corrupt.`);
        await skipItems(inner, innerLength, `${what}[${i}]`, depth + 1);
      }
    } else {
      cursor.skip(length * minValueBytes(itemType), what);
    }
  };

  const maxEntries = options.maxMetadataEntries ?? Number.POSITIVE_INFINITY;
  if (kvCount > maxEntries) {
    throw new GgufError(`${filePath} declares ${kvCount} metadata entries, more than the ${maxEntries} Graft reads (real files have a few dozen); the file was skipped.`);
  }
  const maxMetadataBytes = options.maxMetadataBytes ?? Number.POSITIVE_INFINITY;
  const metadataStart = cursor.pos;
  let keptBudget = options.maxKeptBytes ?? Number.POSITIVE_INFINITY;
  const metadata: GgufMetadataEntry[] = [];
  // Repeated keys are refused among the kept ones only: remembering every key of a hostile
  // header would grow with it.
  const seenKeys = new Set<string>();
  let skippedMetadata = 0;
  for (let i = 0; i < kvCount; i++) {
    if (cursor.pos - metadataStart > maxMetadataBytes) {
      throw new GgufError(`${filePath} has more than ${maxMetadataBytes} bytes of metadata (stopped at entry ${i} of ${kvCount}); Graft reads at most that much, so the file was skipped.`);
    }
    const keyLength = await cursor.u64(`the length of metadata key #${i}`);
    if (keyLength > MAX_KEY_BYTES) throw new GgufError(`metadata key #${i} is ${keyLength} bytes long, more than GGUF's ${MAX_KEY_BYTES}: the header is corrupt.`);
    const key = (await cursor.need(keyLength, `metadata key #${i}`)).toString('utf8');
    const type = await cursor.u32(`the value type of "${key}"`);
    const wanted = key === 'general.alignment' || !options.keepKey || options.keepKey(key);
    if (!wanted) {
      await skipValue(type, `metadata "${key}"`);
      skippedMetadata++;
      continue;
    }
    if (seenKeys.has(key)) throw new GgufError(`${filePath} has the metadata key "${key}" twice: the header is corrupt.`);
    seenKeys.add(key);
    const valueStart = cursor.pos;
    const value = await readValue(type, `metadata "${key}"`, 0);
    keptBudget -= cursor.pos - valueStart;
    if (keptBudget < 0 && key !== 'general.alignment') {
      skippedMetadata++;
      continue;
    }
    metadata.push({ key, type: type as GgufValueType, value });
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignmentEntry = metadata.find((m) => m.key === 'general.alignment');
  if (alignmentEntry) {
    const value = alignmentEntry.value;
    if (alignmentEntry.type !== GgufValueType.UINT32 || typeof value !== 'number' || value === 0 || (value & (value - 1)) !== 0) {
      throw new GgufError(`${filePath} has general.alignment ${String(value)} (${GGUF_VALUE_TYPE_NAMES[alignmentEntry.type]}); it must be a u32 power of two.`);
    }
    alignment = value;
  }

  const raw: { name: string; dims: number[]; type: number; offset: number }[] = [];
  const seenNames = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await readString(`the name of tensor #${i}`);
    if (seenNames.has(name)) throw new GgufError(`${filePath} declares tensor "${name}" twice: the header is corrupt.`);
    seenNames.add(name);
    const nDims = await cursor.u32(`the dimension count of "${name}"`);
    if (nDims > GGUF_MAX_DIMS) throw new GgufError(`Tensor "${name}" has ${nDims} dimensions; GGUF allows at most ${GGUF_MAX_DIMS}: the header is corrupt.`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(await cursor.u64(`dimension ${d} of "${name}"`));
    const type = await cursor.u32(`the type of "${name}"`);
    const offset = await cursor.u64(`the data offset of "${name}"`);
    raw.push({ name, dims, type, offset });
  }

  const dataStart = Math.ceil(cursor.pos / alignment) * alignment;
  const dataSize = cursor.fileSize - dataStart;
  if (tensorCount > 0 && dataSize < 0) throw new GgufError(`${filePath} ends inside its header padding: the file is truncated.`);
  const tensors: GgufTensorInfo[] = raw.map((t) => {
    const info = GGML_TYPES.get(t.type);
    if (!info) throw new GgufError(`Tensor "${t.name}" has unknown ggml type ${t.type}: the file is corrupt or needs a newer reader.`);
    let numel = 1;
    for (const d of t.dims) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) throw new GgufError(`Tensor "${t.name}" has dimensions ${t.dims.join('x')} whose product overflows: the header is corrupt.`);
    }
    const rowLength = t.dims[0] ?? 1;
    if (rowLength % info.blockSize !== 0) {
      throw new GgufError(`Tensor "${t.name}" (${info.name}) has rows of ${rowLength} elements, not a multiple of the block size ${info.blockSize}: the header is corrupt.`);
    }
    const nbytes = (numel / info.blockSize) * info.typeSize;
    if (t.offset % alignment !== 0) throw new GgufError(`Tensor "${t.name}" starts at data offset ${t.offset}, not a multiple of the alignment ${alignment}: the header is corrupt.`);
    if (t.offset + nbytes > dataSize) {
      throw new GgufError(`Tensor "${t.name}" needs bytes [${t.offset}, ${t.offset + nbytes}) of the data section but only ${Math.max(0, dataSize)} exist: the file is truncated or corrupt.`);
    }
    return {
      name: t.name, dims: t.dims, type: t.type, typeName: info.name, offset: t.offset,
      begin: dataStart + t.offset, end: dataStart + t.offset + nbytes, numel,
    };
  });
  const byBegin = [...tensors].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byBegin.length; i++) {
    if (byBegin[i].begin < byBegin[i - 1].end) throw new GgufError(`Tensors "${byBegin[i - 1].name}" and "${byBegin[i].name}" overlap in the data section: the header is corrupt.`);
  }

  const header: GgufHeader = { path: filePath, fileSize: cursor.fileSize, version, alignment, dataStart, metadata, tensors };
  if (skippedMetadata > 0) header.skippedMetadata = skippedMetadata;
  return header;
}

/** The value of one metadata key, or undefined. */
export function ggufValue(header: Pick<GgufHeader, 'metadata'>, key: string): GgufValue | undefined {
  return header.metadata.find((m) => m.key === key)?.value;
}

export function ggufString(header: Pick<GgufHeader, 'metadata'>, key: string): string | undefined {
  const value = ggufValue(header, key);
  return typeof value === 'string' ? value : undefined;
}

export function ggufNumber(header: Pick<GgufHeader, 'metadata'>, key: string): number | undefined {
  const value = ggufValue(header, key);
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(value);
  return undefined;
}
