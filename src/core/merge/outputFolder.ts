// The output folder protocol shared by merges and the other surgery operations (patch apply,
// transfer, LoRA extraction): everything is written into `<out>.partial/` (marked as Graft's),
// renamed into place only when complete, removed on failure or cancel, and an existing output is
// never replaced without force (and then only once the new one is complete).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** Marks a `.partial` folder as Graft's, so a stale one from a crash may be removed. */
export const PARTIAL_MARKER = '.graft-partial';

export class MergeOutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeOutputError';
  }
}

export async function existsPath(p: string): Promise<boolean> {
  return fsp.lstat(p).then(() => true, () => false);
}

/** Free bytes on the file system holding `p` (or its nearest existing parent); undefined when unknown. */
export async function freeBytes(p: string): Promise<number | undefined> {
  let dir = path.resolve(p);
  while (!(await existsPath(dir))) {
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  try {
    const s = await fsp.statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** Checks that can fail before anything is written: existing output, leftover partial, disk space. */
export async function checkOutputFolder(out: string, force: boolean, neededBytes: number, what = 'merge'): Promise<void> {
  const target = path.resolve(out);
  if ((await existsPath(target)) && !force) {
    throw new MergeOutputError(`"${out}" already exists. Choose another output folder, or pass --force to replace it once the new ${what} is complete.`);
  }
  const partial = `${target}.partial`;
  if ((await existsPath(partial)) && !(await existsPath(path.join(partial, PARTIAL_MARKER)))) {
    throw new MergeOutputError(`"${partial}" exists and was not made by Graft; move it away, since Graft writes the ${what} there before renaming it.`);
  }
  const free = await freeBytes(target);
  const needed = neededBytes + 1024 * 1024;
  if (free !== undefined && free < needed) {
    throw new MergeOutputError(`Not enough disk space for the output: it needs ${(needed / 1e9).toFixed(2)} GB, and ${(free / 1e9).toFixed(2)} GB are free at "${path.dirname(target)}".`);
  }
}

/** Creates a fresh, marked `<out>.partial/` (a stale one of Graft's is cleared) and returns its path. */
export async function beginPartialFolder(out: string): Promise<string> {
  const partial = `${path.resolve(out)}.partial`;
  await fsp.rm(partial, { recursive: true, force: true });
  await fsp.mkdir(partial, { recursive: true });
  await fsp.writeFile(path.join(partial, PARTIAL_MARKER), '');
  return partial;
}

/** Unmarks the finished partial folder and renames it into place. */
export async function finishPartialFolder(partial: string, out: string, force: boolean, what = 'merge'): Promise<void> {
  await fsp.rm(path.join(partial, PARTIAL_MARKER), { force: true });
  await moveIntoPlace(partial, path.resolve(out), force, what);
}

/** Renames the finished folder into place; with force, the old output is removed only after. */
async function moveIntoPlace(partial: string, out: string, force: boolean, what: string): Promise<void> {
  if (!(await existsPath(out))) {
    await fsp.rename(partial, out);
    return;
  }
  if (!force) throw new MergeOutputError(`"${out}" appeared while the ${what} ran; it was left as it is and the new ${what} discarded. Choose another output folder, or pass --force.`);
  const aside = `${out}.replaced-${process.pid}-${Date.now()}`;
  await fsp.rename(out, aside);
  try {
    await fsp.rename(partial, out);
  } catch (error) {
    await fsp.rename(aside, out);
    throw error;
  }
  await fsp.rm(aside, { recursive: true, force: true });
}
