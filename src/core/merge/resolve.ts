// Model references that are not paths: hub ids resolved through the catalog (Hugging Face cache
// snapshots by repo id, workspace folders by name, as the lineage graph matches them).
import * as path from 'node:path';
import type { Catalog, CatalogEntry } from '../catalog/types';
import type { ModelResolver } from './plan';

const MODEL_KINDS = new Set(['model', 'merge', 'adapter', 'file']);

function rank(entry: CatalogEntry): number {
  // A snapshot that `main` points at first, then other snapshots, then workspace folders.
  if (entry.hfCache) return entry.hfCache.refs.includes('main') ? 0 : 1;
  return 2;
}

export function catalogResolver(catalog: Catalog): ModelResolver {
  return async (reference) => {
    const [id, revision] = reference.split('@');
    const wanted = id.toLowerCase();
    const lastSegment = wanted.split('/').pop()!;
    const candidates = catalog.entries.filter((e) => {
      if (!MODEL_KINDS.has(e.kind)) return false;
      if (e.hfCache) return e.hfCache.repoId.toLowerCase() === wanted && (!revision || e.hfCache.revision.startsWith(revision) || e.hfCache.refs.includes(revision));
      return !revision && path.basename(e.path).toLowerCase() === lastSegment;
    });
    candidates.sort((a, b) => rank(a) - rank(b));
    return candidates[0]?.path;
  };
}
