// Validation of a safetensors header, rule for rule and message for message as the reference
// (safetensors 0.8.0 `SafeTensors::read_metadata` + `Metadata::validate`). Pure: works on the
// header bytes and the file size, so the reader, the fuzz tests and the writer share it.

import { isUtf8 } from 'node:buffer';
import { dtypeBits } from './dtypes';
import { SafetensorsError } from './errors';
import { HeaderJsonError, parseHeaderJson, type RawTensorEntry, type U64 } from './header-json';
import type { SafetensorsHeader, TensorInfo } from './types';

/** The reference refuses headers longer than this. */
export const MAX_HEADER_SIZE = 100_000_000;
/** Size of the little-endian u64 that starts every file. */
export const HEADER_LENGTH_BYTES = 8;

const U64_MAX = (1n << 64n) - 1n;

/**
 * Checks the 8-byte length prefix against the file size, before anything is allocated for the
 * header. Returns the header length.
 */
export function checkHeaderLength(prefix: Uint8Array, fileSize: number, file?: string): number {
  if (fileSize < HEADER_LENGTH_BYTES || prefix.length < HEADER_LENGTH_BYTES) {
    throw SafetensorsError.header('header-too-small', 'header too small', undefined, file);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) throw SafetensorsError.header('header-too-large', 'header too large', undefined, file);
  const length = Number(n);
  if (HEADER_LENGTH_BYTES + length > fileSize) {
    throw SafetensorsError.header('invalid-header-length', 'invalid header length', undefined, file);
  }
  return length;
}

/**
 * Validates UTF-8 like Rust's `str::from_utf8` and returns its error text, or null when valid:
 * "invalid utf-8 sequence of N bytes from index I" or "incomplete utf-8 byte sequence from index I".
 */
export function utf8Error(bytes: Uint8Array): string | null {
  // Node's native check accepts exactly the well-formed UTF-8 of the Unicode standard, as Rust
  // does (no overlongs, no surrogates, nothing past U+10FFFF), in a fraction of the byte loop's
  // time; the loop then only runs to word the error.
  return isUtf8(bytes) ? null : describeUtf8Error(bytes);
}

/** utf8Error without the native check: the byte loop that finds and words the first error. */
export function describeUtf8Error(bytes: Uint8Array): string | null {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const first = bytes[i];
    if (first < 0x80) {
      i++;
      continue;
    }
    const start = i;
    const bad = (length: number) => `invalid utf-8 sequence of ${length} bytes from index ${start}`;
    const incomplete = `incomplete utf-8 byte sequence from index ${start}`;
    const isCont = (b: number) => (b & 0xc0) === 0x80;
    if (first >= 0xc2 && first <= 0xdf) {
      if (i + 1 >= n) return incomplete;
      if (!isCont(bytes[i + 1])) return bad(1);
      i += 2;
    } else if (first >= 0xe0 && first <= 0xef) {
      if (i + 1 >= n) return incomplete;
      const second = bytes[i + 1];
      const ok =
        (first === 0xe0 && second >= 0xa0 && second <= 0xbf) ||
        (first >= 0xe1 && first <= 0xec && isCont(second)) ||
        (first === 0xed && second >= 0x80 && second <= 0x9f) ||
        (first >= 0xee && isCont(second));
      if (!ok) return bad(1);
      if (i + 2 >= n) return incomplete;
      if (!isCont(bytes[i + 2])) return bad(2);
      i += 3;
    } else if (first >= 0xf0 && first <= 0xf4) {
      if (i + 1 >= n) return incomplete;
      const second = bytes[i + 1];
      const ok =
        (first === 0xf0 && second >= 0x90 && second <= 0xbf) ||
        (first >= 0xf1 && first <= 0xf3 && isCont(second)) ||
        (first === 0xf4 && second >= 0x80 && second <= 0x8f);
      if (!ok) return bad(1);
      if (i + 2 >= n) return incomplete;
      if (!isCont(bytes[i + 2])) return bad(2);
      if (i + 3 >= n) return incomplete;
      if (!isCont(bytes[i + 3])) return bad(3);
      i += 4;
    } else {
      return bad(1);
    }
  }
  return null;
}

/**
 * Parses and validates the JSON header of a file of `fileSize` bytes whose header is `json`
 * (the `headerLength` bytes after the 8-byte prefix). Throws SafetensorsError as the reference.
 */
export function parseHeader(json: Uint8Array, fileSize: number, path = ''): SafetensorsHeader {
  const file = path || undefined;
  const utf8 = utf8Error(json);
  if (utf8) throw SafetensorsError.header('invalid-utf8', `invalid UTF-8 in header: ${utf8}`, undefined, file);
  let raw;
  try {
    raw = parseHeaderJson(json);
  } catch (error) {
    if (error instanceof HeaderJsonError) {
      throw SafetensorsError.header('invalid-json', `invalid JSON in header: ${error.message}`, undefined, file);
    }
    throw error;
  }
  // Offsets and dimensions are U64: numbers up to 2^53 and BigInts only beyond, so `!==`
  // compares values, and `<` compares a number with a BigInt exactly. BigInt arithmetic is left
  // to the rare values that need it: it costs allocations on every tensor of a large header.
  // The reference sorts by (begin, end); a stable sort keeps header order among equal offsets.
  const sorted = raw.tensors.slice().sort(compareOffsets);

  const headerLength = json.length;
  const dataStart = 8 + headerLength;
  const tensors: TensorInfo[] = [];
  let cursor: U64 = 0;
  for (const t of sorted) {
    if (t.begin !== cursor || t.end < t.begin) {
      throw SafetensorsError.header('invalid-offset', `invalid offset for tensor \`${t.name}\``, t.name, file);
    }
    cursor = t.end;
    const { numel, bytes } = tensorSize(t, file);
    if (difference(t.end, t.begin) !== bytes) {
      throw SafetensorsError.header('invalid-tensor-info', 'invalid shape, data type, or offset for tensor', t.name, file);
    }
    const info: TensorInfo = {
      name: t.name,
      dtype: t.dtype,
      // Dimensions past 2^53 only occur in zero-size tensors (the data must fit the file).
      shape: t.shape.every(isNumber) ? (t.shape as number[]) : t.shape.map(Number),
      numel: Number(numel),
      dataOffsets: [Number(t.begin), Number(t.end)],
      begin: dataStart + Number(t.begin),
      end: dataStart + Number(t.end),
    };
    if (!t.shape.every(isNumber)) info.shapeText = t.shape.map(String);
    tensors.push(info);
  }
  const covered = typeof cursor === 'number' ? cursor === fileSize - dataStart : cursor + BigInt(dataStart) === BigInt(fileSize);
  if (!covered) {
    throw SafetensorsError.header('incomplete-buffer', 'incomplete metadata, file not fully covered', undefined, file);
  }
  return {
    path,
    fileSize,
    headerLength,
    dataStart,
    tensors,
    metadata: raw.metadata ? Object.fromEntries(raw.metadata) : null,
  };
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const isNumber = (value: U64): value is number => typeof value === 'number';

/** A U64 in its canonical form: a number when at most 2^53 - 1. */
function canonical(value: bigint): U64 {
  return value <= BigInt(MAX_SAFE) ? Number(value) : value;
}

function compareOffsets(a: RawTensorEntry, b: RawTensorEntry): number {
  if (a.begin !== b.begin) return a.begin < b.begin ? -1 : 1;
  return a.end < b.end ? -1 : a.end > b.end ? 1 : 0;
}

/** end - begin (with end >= begin), canonical. */
function difference(end: U64, begin: U64): U64 {
  return typeof end === 'number' && typeof begin === 'number' ? end - begin : canonical(BigInt(end) - BigInt(begin));
}

/**
 * Element count and byte size of a tensor, canonical, or the reference's overflow and sub-byte
 * errors. Float64 products are exact while they stay at or below 2^53 - 1, and a product past
 * it is never rounded back below; so the number loop is exact until it hands over to BigInt,
 * which then redoes the whole product in the reference's order (its overflow checks included).
 */
function tensorSize(t: RawTensorEntry, file: string | undefined): { numel: U64; bytes: U64 } {
  const bitsPerElement = dtypeBits(t.dtype);
  let numel = 1;
  for (const dim of t.shape) {
    if (typeof dim !== 'number') return tensorSizeBig(t, bitsPerElement, file);
    numel *= dim;
    if (numel > MAX_SAFE) return tensorSizeBig(t, bitsPerElement, file);
  }
  const bits = numel * bitsPerElement;
  if (bits > MAX_SAFE) return tensorSizeBig(t, bitsPerElement, file);
  if (bits % 8 !== 0) throw misaligned(t, file);
  return { numel, bytes: bits / 8 };
}

/** tensorSize with BigInt arithmetic and the reference's checked multiplications. */
function tensorSizeBig(t: RawTensorEntry, bitsPerElement: number, file: string | undefined): { numel: U64; bytes: U64 } {
  let numel = 1n;
  for (const dim of t.shape) {
    numel *= BigInt(dim);
    if (numel > U64_MAX) throw overflow(t, file);
  }
  const bits = numel * BigInt(bitsPerElement);
  if (bits > U64_MAX) throw overflow(t, file);
  if (bits % 8n !== 0n) throw misaligned(t, file);
  return { numel: canonical(numel), bytes: canonical(bits / 8n) };
}

function misaligned(t: RawTensorEntry, file?: string): SafetensorsError {
  return SafetensorsError.header(
    'misaligned-subbyte',
    'The slice is slicing for subbytes dtypes, and the slice does not end up at a byte boundary, this is invalid.',
    t.name,
    file,
  );
}

function overflow(t: RawTensorEntry, file?: string): SafetensorsError {
  return SafetensorsError.header('overflow', 'overflow computing buffer size from shape and/or element type', t.name, file);
}
