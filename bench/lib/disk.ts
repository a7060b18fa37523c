// Reading files from the device rather than from the page cache, without root: the page cache
// cannot be dropped here (/proc/sys/vm/drop_caches needs root), but GNU dd can read with O_DIRECT
// (iflag=direct) and can ask the kernel to drop one file's cached pages (iflag=nocache count=0,
// posix_fadvise DONTNEED), which works for any file we can read once its pages are clean.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** dd's summary line in the C locale: "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.85 s, 1.3 GB/s". */
const DD_SUMMARY = /^(\d+) bytes .* copied, ([\d.]+) s/m;

async function dd(args: string[], hint: string): Promise<string> {
  try {
    const { stderr } = await run('dd', args, { env: { ...process.env, LC_ALL: 'C' } });
    return stderr;
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    throw new Error(`dd ${args.join(' ')} failed: ${detail}. ${hint}`);
  }
}

/** Reads `file` once with O_DIRECT in `blockBytes` reads, bypassing the page cache; returns bytes and dd's own seconds. */
export async function readDirect(file: string, blockBytes = 8 << 20): Promise<{ bytes: number; seconds: number }> {
  const output = await dd([`if=${file}`, 'of=/dev/null', `bs=${blockBytes}`, 'iflag=direct'], 'Reading with O_DIRECT needs GNU dd (coreutils) and a file system that accepts it: set TMPDIR to a folder on a local disk.');
  const match = DD_SUMMARY.exec(output);
  if (!match) throw new Error(`Could not read dd's summary from: ${output.trim()}`);
  const bytes = Number(match[1]);
  const size = fs.statSync(file).size;
  if (bytes !== size) throw new Error(`dd read ${bytes} of the ${size} bytes of ${file}.`);
  return { bytes, seconds: Number(match[2]) };
}

/**
 * Drops `file`'s pages from the page cache, so the next read comes from the device. Dirty pages
 * cannot be dropped, so the file is flushed first.
 */
export async function evictFromPageCache(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await dd([`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'], 'Dropping a file from the page cache needs GNU dd (coreutils) 8.11 or later.');
}

/** Bytes of `file` in the page cache (util-linux fincore); undefined when fincore is not installed. */
export async function residentBytes(file: string): Promise<number | undefined> {
  try {
    const { stdout } = await run('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
    const bytes = Number(stdout.trim());
    return Number.isFinite(bytes) ? bytes : undefined;
  } catch {
    return undefined;
  }
}
