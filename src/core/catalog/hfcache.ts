// The Hugging Face hub cache: <cache>/models--org--name/{refs/<ref>, snapshots/<revision>/, blobs/}.
// Snapshot files are symlinks into blobs/ (or copies where symlinks are unavailable).
import * as path from 'node:path';

/**
 * Where huggingface_hub keeps its cache, by the same precedence: HF_HUB_CACHE, the legacy
 * HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub.
 */
export function defaultHfCacheDir(env: Record<string, string | undefined>, homedir: string): string {
  const expand = (p: string) => (p === '~' || p.startsWith('~/') || p.startsWith('~\\') ? path.join(homedir, p.slice(1)) : p);
  if (env.HF_HUB_CACHE) return path.resolve(expand(env.HF_HUB_CACHE));
  if (env.HUGGINGFACE_HUB_CACHE) return path.resolve(expand(env.HUGGINGFACE_HUB_CACHE));
  if (env.HF_HOME) return path.resolve(expand(env.HF_HOME), 'hub');
  if (env.XDG_CACHE_HOME) return path.resolve(expand(env.XDG_CACHE_HOME), 'huggingface', 'hub');
  return path.join(homedir, '.cache', 'huggingface', 'hub');
}

/** "models--org--name" -> "org/name" ("models--gpt2" -> "gpt2"); null for other folder names. */
export function repoIdFromCacheFolder(folderName: string): string | null {
  const match = /^models--(.+)$/.exec(folderName);
  if (!match) return null;
  const parts = match[1].split('--');
  if (parts.some((p) => p.length === 0)) return null;
  return parts.join('/');
}

/** Dataset and space repos share the cache layout; they hold no models. */
export function isNonModelCacheFolder(folderName: string): boolean {
  return /^(datasets|spaces)--/.test(folderName);
}

