// What a scan learned, kept between scans (the extension saves it in workspace storage), so that
// rescanning an unchanged tree only lists folders and stats files. The unit is one folder: its
// entries and problems are reused while every relevant file in it keeps its size and mtime.
// Lineage fingerprints are kept too, keyed by the weight files they were read from, and the
// tensor list (names, sizes) of each architecture, which lays fingerprints out.
import type { CatalogEntry, CatalogProblem, SourceFile } from './types';

// 2: Graft patches became their own entry kind (they were "file" entries before).
export const CATALOG_CACHE_VERSION = 2;

export interface CachedFolder {
  /** The relevant files of the folder when it was read, sorted by path. */
  sources: SourceFile[];
  entries: CatalogEntry[];
  problems: CatalogProblem[];
  /** For an HF cache repo folder: ref name -> revision. */
  refs?: Record<string, string>;
}

interface CachedFingerprint {
  signature: string;
  values: Float32Array;
}

/** Tensor names and element counts of one architecture (by signature). */
export interface ArchitectureTensors {
  names: string[];
  numel: number[];
}

export interface CatalogCacheData {
  version: number;
  folders: [string, CachedFolder][];
  fingerprints: [string, { signature: string; values: string }][];
  architectures: [string, ArchitectureTensors][];
}

export function sameSources(a: readonly SourceFile[], b: readonly SourceFile[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].path !== b[i].path || a[i].size !== b[i].size || a[i].mtimeMs !== b[i].mtimeMs) return false;
  }
  return true;
}

export class CatalogCache {
  private readonly folders = new Map<string, CachedFolder>();
  private readonly fingerprints = new Map<string, CachedFingerprint>();
  private readonly architectures = new Map<string, ArchitectureTensors>();
  /** Folder lookups answered from the cache / read again since creation (for tests and diagnostics). */
  readonly stats = { folderHits: 0, folderMisses: 0, fingerprintHits: 0, fingerprintMisses: 0 };

  /** The cached result for a folder whose relevant files are exactly `sources`, else undefined. */
  lookupFolder(folder: string, sources: readonly SourceFile[]): CachedFolder | undefined {
    const cached = this.folders.get(folder);
    if (cached && sameSources(cached.sources, sources)) {
      this.stats.folderHits++;
      return cached;
    }
    this.stats.folderMisses++;
    return undefined;
  }

  /** The relevant files of the cached result for a folder, if any (not counted as a lookup). */
  cachedSources(folder: string): SourceFile[] | undefined {
    return this.folders.get(folder)?.sources;
  }

  storeFolder(folder: string, value: CachedFolder): void {
    this.folders.set(folder, value);
  }

  getFingerprint(id: string, signature: string): Float32Array | undefined {
    const cached = this.fingerprints.get(id);
    if (cached && cached.signature === signature) {
      this.stats.fingerprintHits++;
      return cached.values;
    }
    this.stats.fingerprintMisses++;
    return undefined;
  }

  setFingerprint(id: string, signature: string, values: Float32Array): void {
    this.fingerprints.set(id, { signature, values });
  }

  getArchitecture(signature: string): ArchitectureTensors | undefined {
    return this.architectures.get(signature);
  }

  setArchitecture(signature: string, tensors: ArchitectureTensors): void {
    this.architectures.set(signature, tensors);
  }

  /** Drops folders a scan did not visit, and fingerprints and architectures of entries no longer listed. */
  retainFolders(visited: ReadonlySet<string>): void {
    for (const folder of [...this.folders.keys()]) if (!visited.has(folder)) this.folders.delete(folder);
    const entryPaths = new Set<string>();
    const signatures = new Set<string>();
    for (const value of this.folders.values()) {
      for (const entry of value.entries) {
        entryPaths.add(entry.path);
        if (entry.architecture) signatures.add(entry.architecture);
      }
    }
    for (const id of [...this.fingerprints.keys()]) if (!entryPaths.has(id)) this.fingerprints.delete(id);
    for (const signature of [...this.architectures.keys()]) if (!signatures.has(signature)) this.architectures.delete(signature);
  }

  get folderCount(): number {
    return this.folders.size;
  }

  toJSON(): CatalogCacheData {
    return {
      version: CATALOG_CACHE_VERSION,
      folders: [...this.folders.entries()],
      fingerprints: [...this.fingerprints.entries()].map(([id, f]) => [
        id,
        { signature: f.signature, values: Buffer.from(f.values.buffer, f.values.byteOffset, f.values.byteLength).toString('base64') },
      ]),
      architectures: [...this.architectures.entries()],
    };
  }

  /** A cache from saved data; an empty one when the data is from another version or malformed. */
  static fromJSON(data: unknown): CatalogCache {
    const cache = new CatalogCache();
    if (!isCacheData(data)) return cache;
    for (const [folder, value] of data.folders) cache.folders.set(folder, value);
    for (const [id, f] of data.fingerprints) {
      const bytes = Buffer.from(f.values, 'base64');
      // Copy into an aligned buffer: a Buffer's byteOffset need not be a multiple of 4.
      const values = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(values.buffer).set(bytes);
      cache.fingerprints.set(id, { signature: f.signature, values });
    }
    for (const [signature, tensors] of data.architectures) cache.architectures.set(signature, tensors);
    return cache;
  }
}

function isCacheData(data: unknown): data is CatalogCacheData {
  if (typeof data !== 'object' || data === null) return false;
  const d = data as Partial<CatalogCacheData>;
  if (d.version !== CATALOG_CACHE_VERSION || !Array.isArray(d.folders) || !Array.isArray(d.fingerprints) || !Array.isArray(d.architectures)) return false;
  const folderOk = (f: unknown) =>
    Array.isArray(f) && typeof f[0] === 'string' && typeof f[1] === 'object' && f[1] !== null &&
    Array.isArray((f[1] as CachedFolder).sources) && Array.isArray((f[1] as CachedFolder).entries) && Array.isArray((f[1] as CachedFolder).problems);
  const fingerprintOk = (f: unknown) =>
    Array.isArray(f) && typeof f[0] === 'string' && typeof f[1] === 'object' && f[1] !== null &&
    typeof (f[1] as { signature?: unknown }).signature === 'string' && typeof (f[1] as { values?: unknown }).values === 'string' &&
    Buffer.from((f[1] as { values: string }).values, 'base64').byteLength % 4 === 0;
  const architectureOk = (a: unknown) =>
    Array.isArray(a) && typeof a[0] === 'string' && typeof a[1] === 'object' && a[1] !== null &&
    Array.isArray((a[1] as ArchitectureTensors).names) && Array.isArray((a[1] as ArchitectureTensors).numel) &&
    (a[1] as ArchitectureTensors).names.length === (a[1] as ArchitectureTensors).numel.length;
  return d.folders.every(folderOk) && d.fingerprints.every(fingerprintOk) && d.architectures.every(architectureOk);
}
