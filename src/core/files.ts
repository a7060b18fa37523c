// Opening and stat-ing files named by strangers' folders and users' arguments. A FIFO named
// model.safetensors blocks a plain open() forever (and Ctrl-C cannot interrupt it); devices and
// sockets are no better. Everything Graft reads goes through openRegularFile, which never blocks
// and refuses anything but a regular file, and every fs error is put in words by its code.
import * as fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';

/** Why a path cannot be used, by fs error code, in words a user can act on. */
const REASONS: Record<string, string> = {
  ENOENT: 'it does not exist; check the path',
  EACCES: 'permission denied; check the permissions of the file and the folders above it',
  EPERM: 'operation not permitted; check the permissions of the file and the folders above it',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  ELOOP: 'too many levels of symbolic links (a link loop?)',
  ENAMETOOLONG: 'the path is too long',
  EMFILE: 'too many open files; close other programs or raise the limit',
  ENFILE: 'too many open files on this system; close other programs',
  EIO: 'an input/output error occurred (a failing disk or a disconnected drive?)',
  ENXIO: 'no such device',
  ENODEV: 'no such device',
  EBUSY: 'the file is busy',
  ETIMEDOUT: 'the file system timed out (a network drive?)',
  EAGAIN: 'the file is not ready to be read',
  EOVERFLOW: 'the file is too large for this system',
  ENOTREG: 'it is not a regular file (a pipe, device or socket); Graft only reads regular files',
};

/** A sentence fragment for an fs error: "permission denied; ...", or the error's own message. */
export function describeFsError(error: unknown): string {
  if (error instanceof NotRegularFileError) return error.message;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code && REASONS[code]) return REASONS[code];
  const message = error instanceof Error ? error.message : String(error);
  return code ? `${message} (${code})` : message;
}

/** The file type methods a Stats and a Dirent share. */
type FileTypeOf = Pick<fs.Stats, 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket' | 'isFile' | 'isDirectory'>;

/** What a non-regular file is, for messages; null for a regular file or a folder. */
export function specialFileKind(stats: FileTypeOf): string | null {
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  if (stats.isFile() || stats.isDirectory()) return null;
  return 'not a regular file';
}

/** Thrown for a path that exists but is a FIFO, device or socket. */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';
  constructor(readonly file: string, readonly kind: string) {
    super(`it is ${kind}, not a regular file; Graft only reads regular files`);
    this.name = 'NotRegularFileError';
  }
}

// O_NONBLOCK makes open() of a FIFO return at once instead of waiting for a writer; it changes
// nothing for regular files. Windows has no FIFOs (and no such flag).
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/**
 * Opens `file` for positional reads, refusing (with NotRegularFileError) anything but a regular
 * file, without ever blocking on a pipe. Folders are refused with an EISDIR error.
 */
export async function openRegularFile(file: string): Promise<fs.promises.FileHandle> {
  const handle = await fs.promises.open(file, OPEN_FLAGS);
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) throw Object.assign(new Error(`"${file}" is a folder`), { code: 'EISDIR' });
    const kind = specialFileKind(stats);
    if (kind) throw new NotRegularFileError(file, kind);
    return handle;
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/** The first `maxBytes` of a regular file as UTF-8 (a cut multi-byte character at the end becomes U+FFFD). */
export async function readFileHead(file: string, maxBytes: number): Promise<string> {
  const handle = await openReader(file);
  try {
    const buffer = Buffer.alloc(maxBytes);
    let filled = 0;
    while (filled < maxBytes) {
      const { bytesRead } = await handle.read(buffer, filled, maxBytes - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** What reading a file by positional reads needs of a handle: a FileHandle, or a BlockingReader on a worker thread. */
export interface ReadHandle {
  readonly fd: number;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<fs.Stats>;
  close(): Promise<void>;
}

/**
 * Worker threads open, stat, list and read files with blocking calls: the small files of a scan
 * (headers, configs, cards, fingerprint samples) and the tensor ranges that statistics, diffs and
 * merges stream. A worker has nothing else to do while it waits, and from the page cache the hop
 * to libuv's thread pool and back costs more than the call itself (about 0.1 ms a call: a second
 * per 10,000 files), and lets one worker's reads queue behind another's. A main thread (the
 * extension host, a CLI running inline) must stay responsive, so it goes through libuv's pool.
 */
export const IO_BLOCKS_THREAD = !isMainThread;

/** A file descriptor read with blocking calls, behind the promise-returning ReadHandle shape. */
class BlockingReader implements ReadHandle {
  constructor(readonly fd: number) {}
  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return { bytesRead: fs.readSync(this.fd, buffer, offset, length, position) };
  }
  async stat(): Promise<fs.Stats> {
    return fs.fstatSync(this.fd);
  }
  async close(): Promise<void> {
    fs.closeSync(this.fd);
  }
}

/** openRegularFile() with blocking calls (same checks, same errors). */
async function openRegularFileBlocking(file: string): Promise<ReadHandle> {
  const fd = fs.openSync(file, OPEN_FLAGS);
  try {
    const stats = fs.fstatSync(fd);
    if (stats.isDirectory()) throw Object.assign(new Error(`"${file}" is a folder`), { code: 'EISDIR' });
    const kind = specialFileKind(stats);
    if (kind) throw new NotRegularFileError(file, kind);
    return new BlockingReader(fd);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/** openRegularFile() as a ReadHandle: with blocking calls on a worker thread (see IO_BLOCKS_THREAD). */
export function openReader(file: string): Promise<ReadHandle> {
  return IO_BLOCKS_THREAD ? openRegularFileBlocking(file) : openRegularFile(file);
}

/** The file system calls of a scan (listing folders, stat-ing files), blocking on a worker thread (see IO_BLOCKS_THREAD). */
export const scanFs: {
  stat(p: string): Promise<fs.Stats>;
  readdir(p: string): Promise<fs.Dirent[]>;
  realpath(p: string): Promise<string>;
  readlink(p: string): Promise<string>;
} = IO_BLOCKS_THREAD
  ? {
    stat: async (p) => fs.statSync(p),
    readdir: async (p) => fs.readdirSync(p, { withFileTypes: true }),
    realpath: async (p) => fs.realpathSync.native(p),
    readlink: async (p) => fs.readlinkSync(p),
  }
  : {
    stat: (p) => fs.promises.stat(p),
    readdir: (p) => fs.promises.readdir(p, { withFileTypes: true }),
    realpath: (p) => fs.promises.realpath(p),
    readlink: (p) => fs.promises.readlink(p),
  };
