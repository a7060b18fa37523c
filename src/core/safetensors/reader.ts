// Reading safetensors files by positional reads: the 8-byte prefix, then the header (only after
// its claimed length was checked against the real file size), then exactly the byte ranges of
// the elements asked for. Nothing ever reads or allocates a whole file.

import type { FileHandle } from 'node:fs/promises';
import { describeFsError, openRegularFile, openReader, type ReadHandle } from '../files';
import { canDecode, decodeToFloat, dtypeBits, unsupportedDecode } from './dtypes';
import { SafetensorsError } from './errors';
import { checkHeaderLength, HEADER_LENGTH_BYTES, parseHeader } from './header';
import type { SafetensorsHeader, TensorRef } from './types';

/** An fs error as a SafetensorsError that says which file and what to do. */
export function ioError(error: unknown, file: string, action = 'read'): SafetensorsError {
  return new SafetensorsError(`Cannot ${action} "${file}": ${describeFsError(error)}.`, { rule: 'io', file });
}

/**
 * Reads exactly `length` bytes at `position` into `target` (from its start), looping over short
 * reads; blocking when the handle is (openReadHandle on a worker thread).
 */
export async function readExactly(handle: ReadHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const { bytesRead } = await handle.read(target, done, target.byteLength - done, position + done);
    if (bytesRead === 0) throw await truncatedError(handle, file, position + target.byteLength);
    done += bytesRead;
  }
}

async function truncatedError(handle: ReadHandle, file: string, expected: number): Promise<SafetensorsError> {
  // Name the file's length now, not where the read stopped: that is what the user can check.
  const size = await handle.stat().then((s) => `is now ${s.size} bytes`, () => 'ended early');
  return new SafetensorsError(
    `"${file}" ${size}, but ${expected} bytes were expected: the file changed or was truncated while being read. Reopen it.`,
    { rule: 'io', file },
  );
}

/** Reads and validates the header of an open file. */
export async function readHeaderFrom(handle: ReadHandle, path: string): Promise<SafetensorsHeader> {
  let fileSize: number;
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    fileSize = stat.size;
  } catch (error) {
    throw ioError(error, path);
  }
  const prefix = new Uint8Array(HEADER_LENGTH_BYTES);
  if (fileSize >= HEADER_LENGTH_BYTES) await readExactly(handle, prefix, 0, path);
  const headerLength = checkHeaderLength(prefix, fileSize, path);
  const json = new Uint8Array(headerLength);
  await readExactly(handle, json, HEADER_LENGTH_BYTES, path);
  return parseHeader(json, fileSize, path);
}

/** Opens a file for reading, turning fs errors into SafetensorsError. */
export async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await openRegularFile(path);
  } catch (error) {
    throw ioError(error, path, 'open');
  }
}

/** openForRead() as a ReadHandle: blocking calls on a worker thread (see IO_BLOCKS_THREAD). */
export async function openReadHandle(path: string): Promise<ReadHandle> {
  try {
    return await openReader(path);
  } catch (error) {
    throw ioError(error, path, 'open');
  }
}

/** Reads and validates the header of a .safetensors file, exactly as safetensors 0.8.0 does. */
export async function readHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await openReadHandle(path);
  try {
    return await readHeaderFrom(handle, path);
  } finally {
    await handle.close();
  }
}

export function checkRange(ref: TensorRef, start: number, count: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > ref.numel) {
    throw new SafetensorsError(
      `Elements [${start}, ${start + count}) are outside tensor "${ref.name}", which has ${ref.numel} elements.`,
      { rule: 'out-of-range', tensor: ref.name, file: ref.file },
    );
  }
}

async function withHandle<T>(file: string, handle: FileHandle | undefined, fn: (h: FileHandle) => Promise<T>): Promise<T> {
  if (handle) return fn(handle);
  const opened = await openForRead(file);
  try {
    return await fn(opened);
  } finally {
    await opened.close();
  }
}

/**
 * The raw little-endian bytes of elements [start, start + count) of a tensor, in one positional
 * read. For F4 (two elements per byte) the range is widened to whole bytes.
 */
export async function readTensorBytes(ref: TensorRef, start = 0, count = ref.numel - start, handle?: FileHandle): Promise<Uint8Array> {
  checkRange(ref, start, count);
  const [firstByte, lastByte] = byteRange(ref, start, count);
  const bytes = new Uint8Array(lastByte - firstByte);
  await withHandle(ref.file, handle, (h) => readExactly(h, bytes, ref.begin + firstByte, ref.file));
  return bytes;
}

export function checkDecodable(ref: TensorRef): void {
  if (!canDecode(ref.dtype)) {
    const error = unsupportedDecode(ref.dtype);
    throw new SafetensorsError(`Tensor "${ref.name}": ${error.message}`, { rule: error.rule, tensor: ref.name, file: ref.file });
  }
}

/** First and one-past-last byte (relative to the tensor) holding elements [start, start + count). */
export function byteRange(ref: TensorRef, start: number, count: number): [number, number] {
  const bits = dtypeBits(ref.dtype);
  return [Math.floor((start * bits) / 8), Math.ceil(((start + count) * bits) / 8)];
}

/**
 * Decodes elements [start, start + count) of a tensor with one positional read: float64 for
 * F64/I64/U64/I32/U32, float32 otherwise. `handle` (an open handle of ref.file) avoids reopening
 * the file for each call.
 */
export async function readElements(ref: TensorRef, start: number, count: number, handle?: FileHandle): Promise<Float32Array | Float64Array> {
  checkDecodable(ref);
  const bytes = await readTensorBytes(ref, start, count, handle);
  const values = decodeToFloat(ref.dtype, bytes);
  if (ref.dtype !== 'F4') return values;
  const skip = start % 2;
  return values.subarray(skip, skip + count);
}
