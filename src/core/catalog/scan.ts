// Finds every model, adapter, trainer checkpoint, merge, loose checkpoint file and GGUF file under
// the given roots. Reads only headers and small files; a problem with one file is reported and the
// scan goes on. Folders are the unit of work and of caching (see cache.ts).
//
// The walk goes level by level; each level's folders are listed and read in batches by the
// scanFolders kernel, on the worker pool when one is given (where a batch of folders costs one
// message and its file calls block the worker, not the caller), else on the calling thread.
// Which folders are new, cycles, cache hits and the order of results are decided here, on the
// calling thread.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { appendAll } from '../collections';
import { InlineRunner, mapLimit, type TaskRunner } from '../engine/pool';
import { CancelledError } from '../engine/task';
import { describeFsError, readFileHead, IO_BLOCKS_THREAD, specialFileKind, scanFs } from '../files';
import { GGUF_CATALOG_LIMITS, readGgufHeader } from '../gguf';
import { openCheckpoint, type CheckpointLayout } from '../safetensors';
import { CatalogCache, sameSources, type CachedFolder } from './cache';
import { parseModelCard } from './card';
import {
  checkpointStepFromName, ggufFacts, parseAdapterFacts, parseConfigFacts, parseMergekitFacts, parseProvenanceFacts, parseTrainerFacts, patchFactsFromMetadata,
} from './facts';
import { PROVENANCE_FILE } from './provenance';
import { isNonModelCacheFolder, repoIdFromCacheFolder } from './hfcache';
import type { Catalog, CatalogEntry, CatalogProblem, EntryFormat, EntryKind, HfCacheFacts, ScanProgress, SourceFile } from './types';

export interface ScanOptions {
  /** An HF hub cache folder to scan as well (the caller resolves it, e.g. with defaultHfCacheDir); null or absent: none. */
  hfCache?: string | null;
  signal?: AbortSignal;
  onProgress?(progress: ScanProgress): void;
  /** Reused and updated: unchanged folders are not read again. */
  cache?: CatalogCache;
  /** Folder levels below each root to descend (default 12). */
  maxDepth?: number;
  /**
   * Lists and reads folders (the worker pool; default: the calling thread). The extension and the
   * CLI use the pool, so parsing a stranger's header or card never blocks the editor, and the
   * folders' file calls block a worker instead of waiting on libuv's pool.
   */
  runner?: TaskRunner<{ scanFolders: typeof scanFolders }>;
}

/** The relevant files of one folder, by name, as the walk found them. */
export type FolderFiles = [name: string, file: SourceFile][];

/** The default folder depth: deep enough for org/project/run/checkpoint trees, bounded for a link to a huge tree. */
export const DEFAULT_MAX_DEPTH = 12;

const CONFIG = 'config.json';
const ADAPTER_CONFIG = 'adapter_config.json';
const CARD = 'README.md';
const MERGEKIT_CONFIGS = ['mergekit_config.yml', 'mergekit_config.yaml'];
const TRAINER_STATE = 'trainer_state.json';
const SMALL_FILES = new Set([CONFIG, ADAPTER_CONFIG, CARD, ...MERGEKIT_CONFIGS, TRAINER_STATE, PROVENANCE_FILE]);
const SKIPPED_FOLDERS = new Set(['node_modules', '__pycache__']);
const PYTORCH_WEIGHTS = /^(pytorch_model|adapter_model)(-\d+-of-\d+)?\.bin(\.index\.json)?$/;
const GGUF_SPLIT = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;
const SAFETENSORS_SHARD = /-\d+-of-\d+\.safetensors$/;

/** Limits for the small files read beside weights. A card is cut (its front matter is at the top). */
const CARD_READ_BYTES = 256 * 1024;
const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** File calls in flight on a thread that goes through libuv's pool (one at a time where they block the thread). */
const IO_CONCURRENCY = IO_BLOCKS_THREAD ? 1 : 16;
/** Folders per scanFolders task: a level's folders spread over a few tasks per thread, at most this many each. */
const FOLDERS_PER_TASK_MAX = 64;
const FOLDER_TASKS_PER_THREAD = 4;

function isRelevantFile(name: string): boolean {
  return SMALL_FILES.has(name) || name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json') || name.endsWith('.gguf') || PYTORCH_WEIGHTS.test(name);
}

/** Bounds concurrent file system work; the walk's recursion does not hold a slot while it waits on children. */
class Semaphore {
  private waiting: (() => void)[] = [];
  private free: number;
  constructor(size: number) {
    this.free = size;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

interface FolderTask {
  dir: string;
  root: string;
  depth: number;
  /** Real paths of the folders above, to recognise a symlink leading back up. */
  chain: string[];
  /** The real path, when known without asking (a plain subfolder of a folder whose real path is known). */
  real?: string;
  hf?: HfCacheFacts;
}

function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'disappeared while scanning';
  return describeFsError(error);
}

/** Whether `child` is `parent` or inside it (both real, absolute paths). */
function isWithin(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/** A Hugging Face cache blob: snapshot files are links into <cache>/models--org--name/blobs/. */
const HF_BLOB = /[\\/]models--[^\\/]+[\\/]blobs[\\/][^\\/]+$/;

/** One folder to list (and read) in a scanFolders task. */
export interface FolderToScan {
  dir: string;
  /** Its real path when known (see FolderTask.real). */
  real?: string;
  /** Real paths of the folders above it. */
  chain: string[];
  /** Inside an HF cache snapshot (never itself a cache repo folder). */
  inHfCache: boolean;
  /** The relevant files the cache holds a result for: the folder is not read again while they are unchanged. */
  cachedSources?: SourceFile[];
}

/** What a scanFolders task learned of one folder. */
export interface ScannedFolder {
  /** Its real path, once resolved. */
  real?: string;
  /** Problems that stopped the scan of this folder before it was listed (unresolvable, outside the roots, a cycle). */
  stopped?: CatalogProblem[];
  /** A Hugging Face cache repo folder (models--org--name): scanned through its snapshots instead. */
  cacheRepo?: string;
  /** A cache folder of datasets or spaces: skipped. */
  ignored?: boolean;
  /** Relevant files, sorted by path. */
  sources: SourceFile[];
  /** Regular files seen (for progress). */
  fileCount: number;
  subdirs: string[];
  /** Subfolders reached through a symbolic link (their real path must be resolved). */
  linked: string[];
  /** Problems met while listing. */
  problems: CatalogProblem[];
  /** The folder could not be listed (the reason is in problems). */
  unlisted?: boolean;
  /** The folder's entries and problems, unless the cache's were still valid or it holds no relevant file. */
  read?: Pick<CachedFolder, 'entries' | 'problems'>;
}

/** Lists one folder, and reads its relevant files unless the cache's result still holds. Never throws for a file system problem. */
async function scanFolder(folder: FolderToScan, realRoots: readonly string[]): Promise<ScannedFolder> {
  const insideRoots = (real: string) => realRoots.some((root) => isWithin(real, root));
  const empty = { sources: [], fileCount: 0, subdirs: [], linked: [], problems: [] };
  let real: string;
  try {
    real = folder.real ?? (await scanFs.realpath(folder.dir));
  } catch (error) {
    return { ...empty, stopped: [{ path: folder.dir, message: `cannot resolve this folder: ${errorText(error)}` }] };
  }
  if (!insideRoots(real)) {
    return { ...empty, real, stopped: [{ path: folder.dir, message: `symbolic link to ${real}, outside the scanned folders; skipped (add that folder to graft.extraRoots, or scan it directly, to include it)` }] };
  }
  if (folder.chain.includes(real)) {
    return { ...empty, real, stopped: [{ path: folder.dir, message: `symbolic link cycle: this folder leads back to ${real}, which contains it; skipped` }] };
  }

  let dirents: fs.Dirent[];
  try {
    dirents = await scanFs.readdir(folder.dir);
  } catch (error) {
    return { ...empty, real, unlisted: true, problems: [{ path: folder.dir, message: `cannot list this folder: ${errorText(error)}` }] };
  }
  const problems: CatalogProblem[] = [];
  const files = new Map<string, SourceFile>();
  const subdirs: string[] = [];
  const linked: string[] = [];
  let fileCount = 0;
  await mapLimit(dirents, IO_CONCURRENCY, async (dirent) => {
    const name = dirent.name;
    if (name.startsWith('.') || SKIPPED_FOLDERS.has(name)) return;
    const full = path.join(folder.dir, name);
    let isDir = dirent.isDirectory();
    let isFile = dirent.isFile();
    let stats: fs.Stats | undefined;
    if (dirent.isSymbolicLink()) {
      try {
        stats = await scanFs.stat(full);
      } catch (error) {
        if (isRelevantFile(name) || (error as NodeJS.ErrnoException).code !== 'ENOENT') {
          const target = await scanFs.readlink(full).catch(() => '?');
          problems.push({ path: full, message: `broken symbolic link (target ${target} ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is unreadable'}); restore the target or remove the link` });
        }
        return;
      }
      isDir = stats.isDirectory();
      isFile = stats.isFile();
      if (isDir) linked.push(name);
      if (isFile && isRelevantFile(name)) {
        // A linked weight or card is read only where the link stays inside the scanned folders
        // (or points into a Hugging Face cache's blobs/, as cache snapshots and local copies do).
        const target = await scanFs.realpath(full).catch(() => full);
        if (!insideRoots(target) && !HF_BLOB.test(target)) {
          problems.push({ path: full, message: `symbolic link to ${target}, outside the scanned folders; skipped` });
          return;
        }
      }
    }
    if (isFile) fileCount++;
    if (isDir) {
      if (isRelevantFile(name)) problems.push({ path: full, message: `"${name}" is a folder where a file was expected; it was ignored` });
      else subdirs.push(name);
      return;
    }
    if (!isFile && !isDir && isRelevantFile(name)) {
      const kind = specialFileKind(stats ?? dirent) ?? 'not a regular file';
      problems.push({ path: full, message: `is ${kind}, not a regular file; skipped (Graft reads only regular files)` });
      return;
    }
    if (!isFile || !isRelevantFile(name)) return;
    try {
      stats ??= await scanFs.stat(full);
      files.set(name, { path: full, size: stats.size, mtimeMs: stats.mtimeMs });
    } catch (error) {
      problems.push({ path: full, message: `cannot read: ${errorText(error)}` });
    }
  });
  subdirs.sort();
  const listed = { real, fileCount, subdirs, linked, problems };

  const folderName = path.basename(folder.dir);
  if (!folder.inHfCache && subdirs.includes('snapshots')) {
    const repoId = repoIdFromCacheFolder(folderName);
    if (repoId) return { ...listed, sources: [], cacheRepo: repoId };
    if (isNonModelCacheFolder(folderName)) return { ...listed, sources: [], ignored: true };
  }
  const sources = [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const unchanged = folder.cachedSources !== undefined && sameSources(folder.cachedSources, sources);
  if (sources.length === 0 || unchanged) return { ...listed, sources };
  return { ...listed, sources, read: await readCatalogFolder(folder.dir, [...files]) };
}

/** The scanFolders kernel: several folders listed (and read) in one task, in input order. */
export async function scanFolders(input: { folders: FolderToScan[]; realRoots: string[] }): Promise<ScannedFolder[]> {
  return mapLimit(input.folders, IO_BLOCKS_THREAD ? 1 : IO_CONCURRENCY, (folder) => scanFolder(folder, input.realRoots));
}

export async function scanCatalog(roots: string[], options: ScanOptions = {}): Promise<Catalog> {
  const cache = options.cache ?? new CatalogCache();
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const runner = options.runner ?? new InlineRunner({ scanFolders });
  /** Real paths of the roots: symbolic links are followed only to targets inside one of them. */
  const realRoots: string[] = [];
  const io = new Semaphore(IO_CONCURRENCY);
  const entries: CatalogEntry[] = [];
  const problems: CatalogProblem[] = [];
  const visitedReal = new Set<string>();
  const visitedFolders = new Set<string>();
  const progress: ScanProgress = { dirs: 0, files: 0, found: 0 };
  const signal = options.signal;
  const checkCancelled = () => {
    if (signal?.aborted) throw new CancelledError();
  };

  const stat = (p: string) => io.run(() => fs.promises.stat(p));

  /** Takes in what a task learned of one folder; returns the folders to scan next (its subfolders). */
  const visit = async (task: FolderTask, scanned: ScannedFolder): Promise<FolderTask[]> => {
    if (scanned.stopped) {
      appendAll(problems, scanned.stopped);
      return [];
    }
    const real = scanned.real!;
    // Reached twice through different links (or a root inside another root): scanned once.
    if (visitedReal.has(real)) return [];
    visitedReal.add(real);
    appendAll(problems, scanned.problems);
    if (scanned.unlisted) return [];
    progress.dirs++;
    progress.files += scanned.fileCount;
    if (scanned.cacheRepo) return visitCacheRepo(task, scanned.cacheRepo);
    if (scanned.ignored) return [];

    const { sources } = scanned;
    visitedFolders.add(task.dir);
    if (sources.length > 0) {
      let unit = cache.lookupFolder(task.dir, sources);
      if (!unit && scanned.read) {
        unit = { sources, ...scanned.read };
        cache.storeFolder(task.dir, unit);
      }
      for (const entry of unit?.entries ?? []) {
        const copy: CatalogEntry = { ...entry, root: task.root };
        if (task.hf) {
          copy.hfCache = task.hf;
          if (copy.path === task.dir) copy.name = task.hf.repoId;
        } else delete copy.hfCache;
        entries.push(copy);
      }
      appendAll(problems, unit?.problems ?? []);
      progress.found = entries.length;
    }
    options.onProgress?.({ ...progress });

    const { subdirs } = scanned;
    if (task.depth >= maxDepth) {
      if (subdirs.length > 0) {
        problems.push({ path: task.dir, message: `the folder depth limit (${maxDepth} levels below ${task.root}) was reached; its ${subdirs.length} subfolder(s) were not scanned (scan this folder directly, or add it to graft.extraRoots)` });
      }
      return [];
    }
    const linked = new Set(scanned.linked);
    return subdirs.map((name) => ({
      dir: path.join(task.dir, name), root: task.root, depth: task.depth + 1, chain: [...task.chain, real], ...(linked.has(name) ? {} : { real: path.join(real, name) }),
    }));
  };

  /** Scans a tree level by level, each level's folders in batches on the runner. */
  const walk = async (start: FolderTask): Promise<void> => {
    let level = [start];
    while (level.length > 0) {
      checkCancelled();
      const perTask = Math.min(FOLDERS_PER_TASK_MAX, Math.max(1, Math.ceil(level.length / (runner.concurrency * FOLDER_TASKS_PER_THREAD))));
      const batches: FolderTask[][] = [];
      for (let i = 0; i < level.length; i += perTask) batches.push(level.slice(i, i + perTask));
      const next: FolderTask[][] = new Array(level.length);
      // Two tasks per thread: one being read while the other's results travel back. Results are
      // taken in as they come but kept in folder order, so the next level is in a stable order.
      const results = new Array<ScannedFolder[] | undefined>(batches.length);
      let taken = 0;
      /** Results are taken in one at a time (visit may wait on a cache repo's refs). */
      let taking = Promise.resolve();
      const takeReady = async () => {
        while (taken < batches.length && results[taken]) {
          const batch = batches[taken];
          const scanned = results[taken]!;
          results[taken] = undefined;
          for (let k = 0; k < batch.length; k++) next[taken * perTask + k] = await visit(batch[k], scanned[k]);
          taken++;
        }
      };
      await mapLimit(batches, Math.max(2, runner.concurrency * 2), async (batch, b) => {
        const folders = batch.map((task): FolderToScan => {
          const cached = cache.cachedSources(task.dir);
          return { dir: task.dir, chain: task.chain, inHfCache: task.hf !== undefined, ...(task.real ? { real: task.real } : {}), ...(cached ? { cachedSources: cached } : {}) };
        });
        try {
          results[b] = await runner.run('scanFolders', { folders, realRoots }, { signal });
        } catch (error) {
          if (error instanceof CancelledError || signal?.aborted) throw error;
          // The thread the folders were read on failed (readCatalogFolder itself reports problems instead of throwing).
          results[b] = batch.map((task) => ({ sources: [], fileCount: 0, subdirs: [], linked: [], problems: [], stopped: [{ path: task.dir, message: `this folder could not be read: ${errorText(error)}` }] }));
        }
        taking = taking.then(takeReady);
        await taking;
      }, signal);
      level = next.flat();
    }
  };

  /** models--org--name: read refs/, then scan each snapshots/<revision> folder as a model folder. */
  const visitCacheRepo = async (task: FolderTask, repoId: string): Promise<FolderTask[]> => {
    const refs = await readRefs(task.dir);
    let revisions: string[];
    try {
      revisions = (await io.run(() => fs.promises.readdir(path.join(task.dir, 'snapshots'), { withFileTypes: true })))
        .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
        .map((d) => d.name)
        .sort();
    } catch (error) {
      problems.push({ path: path.join(task.dir, 'snapshots'), message: `cannot list the cache snapshots: ${errorText(error)}` });
      return [];
    }
    const real = await io.run(() => fs.promises.realpath(task.dir)).catch(() => task.dir);
    return revisions.map((revision) => ({
      dir: path.join(task.dir, 'snapshots', revision),
      root: task.root,
      depth: task.depth + 2,
      chain: [...task.chain, real],
      hf: {
        repoId,
        revision,
        refs: Object.keys(refs).filter((name) => refs[name] === revision).sort(),
        repoDir: task.dir,
      },
    }));
  };

  /** refs/<name> (and refs/pr/<n>) files each hold a revision; cached like a folder. */
  const readRefs = async (repoDir: string): Promise<Record<string, string>> => {
    const refsDir = path.join(repoDir, 'refs');
    const found: SourceFile[] = [];
    const walkRefs = async (dir: string, depth: number): Promise<void> => {
      let dirents: fs.Dirent[];
      try {
        dirents = await io.run(() => fs.promises.readdir(dir, { withFileTypes: true }));
      } catch {
        return; // a repo without refs/ (copied snapshots) is fine: revisions are then unnamed
      }
      for (const d of dirents) {
        const full = path.join(dir, d.name);
        if (d.isDirectory() && depth < 3) await walkRefs(full, depth + 1);
        else if (d.isFile()) {
          const s = await stat(full).catch(() => undefined);
          if (s) found.push({ path: full, size: s.size, mtimeMs: s.mtimeMs });
        }
      }
    };
    await walkRefs(refsDir, 0);
    found.sort((a, b) => (a.path < b.path ? -1 : 1));
    visitedFolders.add(repoDir);
    const cached = cache.lookupFolder(repoDir, found);
    if (cached?.refs) return cached.refs;
    const refs: Record<string, string> = {};
    for (const file of found) {
      try {
        const revision = (await io.run(() => readFileHead(file.path, 256))).trim();
        if (revision) refs[path.relative(refsDir, file.path).split(path.sep).join('/')] = revision;
      } catch (error) {
        problems.push({ path: file.path, message: `cannot read this cache ref: ${errorText(error)}` });
      }
    }
    cache.storeFolder(repoDir, { sources: found, entries: [], problems: [], refs });
    return refs;
  };

  const allRoots: { dir: string }[] = roots.map((r) => ({ dir: path.resolve(r) }));
  if (options.hfCache) allRoots.push({ dir: path.resolve(options.hfCache) });
  for (const { dir } of allRoots) {
    checkCancelled();
    let rootStats: fs.Stats;
    try {
      rootStats = await fs.promises.stat(dir);
    } catch (error) {
      problems.push({ path: dir, message: (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'this folder does not exist; check the path' : `cannot open: ${errorText(error)}` });
      continue;
    }
    if (!rootStats.isDirectory()) {
      problems.push({ path: dir, message: 'is a file, not a folder; scan the folder that holds it' });
      continue;
    }
    realRoots.push(await fs.promises.realpath(dir).catch(() => dir));
    await walk({ dir, root: dir, depth: 0, chain: [] });
  }
  checkCancelled();
  cache.retainFolders(visitedFolders);

  const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { entries: entries.sort(byPath), problems: problems.sort(byPath) };
}

async function readJsonText(file: SourceFile): Promise<string> {
  if (file.size > MAX_JSON_BYTES) throw new Error(`${file.size} bytes is too large for this kind of file (limit ${MAX_JSON_BYTES}); it was not read`);
  return readFileHead(file.path, Math.max(1, file.size));
}

/** Sorted "name:shape" lines hashed: equal for checkpoints of one architecture, whatever their dtype. */
export function architectureSignature(tensors: readonly { name: string; shape: number[] }[]): string {
  const lines = tensors.map((t) => `${t.name}:${t.shape.join('x')}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}

function summarize(layout: CheckpointLayout): Pick<CatalogEntry, 'weightFiles' | 'indexFile' | 'tensorCount' | 'parameters' | 'bytes' | 'dtypes' | 'architecture' | 'metadata' | 'format'> {
  const dtypes: Record<string, number> = {};
  for (const t of layout.tensors) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + (t.end - t.begin);
  return {
    format: layout.format,
    weightFiles: layout.files,
    ...(layout.indexFile ? { indexFile: layout.indexFile } : {}),
    tensorCount: layout.tensors.length,
    parameters: layout.parameters,
    bytes: layout.bytes,
    dtypes,
    architecture: architectureSignature(layout.tensors),
    ...(layout.metadata && Object.keys(layout.metadata).length > 0 ? { metadata: layout.metadata } : {}),
  };
}

/** Reads one folder's relevant files and turns them into entries. Never throws: problems are collected. */
export async function readCatalogFolder(dir: string, folderFiles: FolderFiles): Promise<Pick<CachedFolder, 'entries' | 'problems'>> {
  const files = new Map(folderFiles);
  const problems: CatalogProblem[] = [];
  const entries: CatalogEntry[] = [];
  const folderName = path.basename(dir);
  const names = [...files.keys()].sort();
  const has = (name: string) => files.has(name);
  const file = (name: string) => files.get(name)!;
  const report = (name: string, message: string) => problems.push({ path: path.join(dir, name), message });

  const readFact = async <T>(name: string, parse: (text: string) => T): Promise<T | undefined> => {
    if (!has(name)) return undefined;
    try {
      return parse(await readJsonText(file(name)));
    } catch (error) {
      report(name, error instanceof Error ? error.message : String(error));
      return undefined;
    }
  };
  const config = await readFact(CONFIG, parseConfigFacts);
  const adapter = await readFact(ADAPTER_CONFIG, parseAdapterFacts);
  const mergekitName = MERGEKIT_CONFIGS.find(has);
  const merge = (mergekitName ? await readFact(mergekitName, parseMergekitFacts) : undefined) ?? (await readFact(PROVENANCE_FILE, parseProvenanceFacts));
  const step = checkpointStepFromName(folderName);
  const trainer = await readFact(TRAINER_STATE, (text) => parseTrainerFacts(text, step !== undefined ? path.dirname(dir) : dir));
  let card: CatalogEntry['card'];
  if (has(CARD)) {
    try {
      const parsed = parseModelCard(await readFileHead(file(CARD).path, CARD_READ_BYTES));
      if (parsed.error) report(CARD, `model card ignored: ${parsed.error}`);
      for (const warning of parsed.warnings) report(CARD, `model card field ignored: ${warning}`);
      if (parsed.facts) card = parsed.facts;
    } catch (error) {
      report(CARD, `cannot read the model card: ${errorText(error)}`);
    }
  }

  const consumed = new Set<string>();
  const safetensors = names.filter((n) => n.endsWith('.safetensors'));
  const indexes = names.filter((n) => n.endsWith('.safetensors.index.json'));
  const isFolderModel = has(CONFIG) || has(ADAPTER_CONFIG) || mergekitName !== undefined || has(PROVENANCE_FILE) || has(TRAINER_STATE);

  // Which weights make this folder one model, in the order transformers and peft look for them.
  let target: { name: string; format: EntryFormat } | undefined;
  if (has(ADAPTER_CONFIG)) {
    if (has('adapter_model.safetensors')) target = { name: 'adapter_model.safetensors', format: 'safetensors' };
    else if (has('adapter_model.bin')) target = { name: 'adapter_model.bin', format: 'pytorch' };
  } else if (indexes.length > 0) {
    target = { name: indexes.includes('model.safetensors.index.json') ? 'model.safetensors.index.json' : indexes[0], format: 'safetensors-sharded' };
  } else if (has('model.safetensors')) {
    target = { name: 'model.safetensors', format: 'safetensors' };
  } else if (isFolderModel && safetensors.length === 1) {
    target = { name: safetensors[0], format: 'safetensors' };
  } else if (isFolderModel && (has('pytorch_model.bin.index.json') || has('pytorch_model.bin'))) {
    target = { name: has('pytorch_model.bin.index.json') ? 'pytorch_model.bin.index.json' : 'pytorch_model.bin', format: 'pytorch' };
  }
  // Shards belong to their index even when the index is broken: never list them one by one.
  if (indexes.length > 0) for (const n of safetensors) if (SAFETENSORS_SHARD.test(n)) consumed.add(n);

  const openWeights = async (name: string): Promise<ReturnType<typeof summarize> | undefined> => {
    try {
      const layout = await openCheckpoint(path.join(dir, name));
      for (const f of layout.files) consumed.add(path.basename(f));
      for (const warning of layout.warnings ?? []) report(name, warning);
      return summarize(layout);
    } catch (error) {
      report(name, `weights not readable: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  };

  let folderEntry: CatalogEntry | undefined;
  if (target) {
    consumed.add(target.name);
    let weights: ReturnType<typeof summarize> | undefined;
    if (target.format === 'pytorch') {
      for (const n of names) if (PYTORCH_WEIGHTS.test(n)) consumed.add(n);
      const binFiles = names.filter((n) => PYTORCH_WEIGHTS.test(n) && n.endsWith('.bin'));
      weights = { format: 'pytorch', weightFiles: binFiles.map((n) => path.join(dir, n)), bytes: binFiles.reduce((s, n) => s + file(n).size, 0) };
    } else {
      weights = await openWeights(target.name);
    }
    if (weights) {
      let kind: EntryKind = 'file';
      if (has(ADAPTER_CONFIG)) kind = 'adapter';
      else if (trainer && step !== undefined) kind = 'trainer-checkpoint';
      else if (merge) kind = 'merge';
      else if (isFolderModel) kind = 'model';
      folderEntry = {
        // A folder without config files is not a model folder: its weights (file or index) are the entry.
        path: kind === 'file' ? path.join(dir, target.name) : dir,
        root: dir,
        kind,
        name: kind === 'file' && target.format !== 'safetensors-sharded' ? target.name : folderName,
        sources: [],
        ...weights,
        ...(card ? { card } : {}),
        ...(config ? { config } : {}),
        ...(adapter ? { adapter } : {}),
        ...(merge ? { merge } : {}),
        ...(trainer ? { trainer } : {}),
      };
      // A patch in a model's folder is still a patch (a file), not the folder's model.
      const patch = target.format === 'safetensors' ? patchFactsFromMetadata(weights.metadata) : undefined;
      if (patch) folderEntry = { path: path.join(dir, target.name), root: dir, kind: 'patch', name: target.name, sources: [], ...weights, patch };
      entries.push(folderEntry);
    }
  }

  // Everything left: loose .safetensors files, each its own checkpoint.
  for (const name of safetensors) {
    if (consumed.has(name)) continue;
    const weights = await openWeights(name);
    if (!weights) continue;
    const patch = patchFactsFromMetadata(weights.metadata);
    entries.push({ path: path.join(dir, name), root: dir, kind: patch ? 'patch' : 'file', name, sources: [], ...weights, ...(patch ? { patch } : {}) });
  }

  // GGUF files; split sets (name-00001-of-00003.gguf) are one entry.
  const ggufGroups = new Map<string, string[]>();
  for (const name of names.filter((n) => n.endsWith('.gguf'))) {
    const split = GGUF_SPLIT.exec(name);
    const key = split ? `${split[1]}\0${split[3]}` : name;
    ggufGroups.set(key, [...(ggufGroups.get(key) ?? []), name]);
  }
  for (const group of ggufGroups.values()) {
    group.sort();
    try {
      const headers = [];
      for (const name of group) headers.push(await readGgufHeader(path.join(dir, name), GGUF_CATALOG_LIMITS));
      const facts = ggufFacts(headers[0]);
      const tensors = headers.flatMap((h) => h.tensors);
      facts.tensorCount = tensors.length;
      facts.tensors = tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.typeName, offset: t.offset }));
      if (group.length > 1) facts.splitFiles = group.slice(1).map((n) => path.join(dir, n));
      const dtypes: Record<string, number> = {};
      for (const t of tensors) dtypes[t.typeName] = (dtypes[t.typeName] ?? 0) + (t.end - t.begin);
      entries.push({
        path: path.join(dir, group[0]),
        root: dir,
        kind: 'gguf',
        name: group[0],
        format: 'gguf',
        sources: [],
        weightFiles: group.map((n) => path.join(dir, n)),
        tensorCount: tensors.length,
        parameters: tensors.reduce((s, t) => s + t.numel, 0),
        bytes: tensors.reduce((s, t) => s + (t.end - t.begin), 0),
        dtypes,
        gguf: facts,
      });
    } catch (error) {
      report(group[0], `GGUF header not readable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  // A card describes its folder's model; with no folder model it describes every file beside it.
  if (card && (!folderEntry || folderEntry.kind === 'file' || folderEntry.kind === 'patch')) for (const entry of entries) if (entry.kind !== 'patch') entry.card = card;
  for (const entry of entries) entry.sources = sourcesOf(entry, files);
  return { entries, problems };
}

/** The files an entry was built from: its weights plus the folder's small files and indexes. */
function sourcesOf(entry: CatalogEntry, files: Map<string, SourceFile>): SourceFile[] {
  const weights = new Set(entry.weightFiles);
  return [...files.entries()]
    .filter(([name, f]) => weights.has(f.path) || SMALL_FILES.has(name) || name.endsWith('.index.json'))
    .map(([, f]) => f)
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
