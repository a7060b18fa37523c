// Discovery of checkpoints on disk: scanning, model cards, side-file facts, the HF cache, caching.
export * from './types';
export { scanCatalog, architectureSignature, readCatalogFolder, DEFAULT_MAX_DEPTH, type ScanOptions, type FolderFiles } from './scan';
export { CatalogCache, CATALOG_CACHE_VERSION, type ArchitectureTensors, type CatalogCacheData, type CachedFolder } from './cache';
export { parseModelCard, extractFrontMatter, type ParsedCard } from './card';
export { defaultHfCacheDir, repoIdFromCacheFolder } from './hfcache';
export {
  parseConfigFacts, parseAdapterFacts, parseMergekitFacts, parseProvenanceFacts, parseTrainerFacts, checkpointStepFromName, ggufFacts, hubIdFromUrl,
} from './facts';
export { PROVENANCE_FILE, parseProvenance, writeProvenance, provenanceModelNames, ProvenanceError, type GraftProvenance, type ProvenanceModel } from './provenance';
