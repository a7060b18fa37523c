// What a scan of the user's folders finds: one entry per model, adapter, checkpoint or file,
// with the facts its files declare. Shared by the lineage builder, the CLI and the VS Code tree.

export type EntryKind = 'model' | 'file' | 'adapter' | 'trainer-checkpoint' | 'merge' | 'gguf' | 'patch';

export type EntryFormat = 'safetensors' | 'safetensors-sharded' | 'gguf' | 'pytorch';

/** A file an entry was built from, with what identified its content at scan time. */
export interface SourceFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Facts from a model card (README.md front matter), as far as the card states them. */
export interface CardFacts {
  baseModel?: string[];
  baseModelRelation?: string;
  license?: string;
  datasets?: string[];
  language?: string[];
  tags?: string[];
  libraryName?: string;
  pipelineTag?: string;
  /** model-index results flattened: task/dataset/metric -> value. */
  evalResults?: { task?: string; dataset?: string; metric: string; value: number | string }[];
  co2?: { emissions?: number; source?: string; trainingType?: string; hardwareUsed?: string };
  newVersion?: string;
}

export interface ConfigFacts {
  architectures?: string[];
  modelType?: string;
  /** `_name_or_path`: where transformers loaded the model from before saving it. */
  nameOrPath?: string;
  /** config.json `dtype` / `torch_dtype`. */
  dtype?: string;
  /** quantization_config, reduced to its method and bit width. */
  quantization?: { method?: string; bits?: number };
}

export interface AdapterFacts {
  baseModel?: string;
  peftType?: string;
  r?: number;
  loraAlpha?: number;
  targetModules?: string[];
  taskType?: string;
}

export interface MergeFacts {
  tool: 'mergekit' | 'graft';
  method?: string;
  baseModel?: string;
  /** Models merged (mergekit `models`, or the sources of `slices`). */
  models: string[];
  dtype?: string;
  created?: string;
}

/** A Graft weight patch (a fine-tune's difference from its base), from its safetensors `__metadata__`. */
export interface PatchFacts {
  /** The base the difference was taken against: a path relative to the patch's folder, or a hub id. */
  base?: string;
  baseWeights?: string;
  /** The fine-tune the difference came from (same forms as `base`). */
  source?: string;
  sourceWeights?: string;
  tensors?: number;
  density?: number;
  dtype?: string;
}

export interface TrainerFacts {
  globalStep?: number;
  epoch?: number;
  bestModelCheckpoint?: string;
  /** The folder holding this run's checkpoint-N folders. */
  runDir: string;
}

export interface HfCacheFacts {
  /** org/name from the `models--org--name` folder. */
  repoId: string;
  /** The snapshot folder name (a commit hash). */
  revision: string;
  /** Refs (refs/<name>) that point at this revision, e.g. ["main"]. */
  refs: string[];
  /** The `models--org--name` folder. */
  repoDir: string;
}

export interface GgufBaseModel {
  name?: string;
  organization?: string;
  version?: string;
  repoUrl?: string;
  /** org/name derived from repo_url (huggingface.co) or organization + name. */
  hubId?: string;
}

export interface GgufFacts {
  version: number;
  tensorCount: number;
  architecture?: string;
  name?: string;
  fileType?: number;
  /** general.* keys as JSON-safe values (64-bit integers as strings when past 2^53, long arrays as their length). */
  general: Record<string, unknown>;
  /** Metadata entries not read (everything but general.*, and general.* values past the reader's budget). */
  skippedMetadata?: number;
  baseModels: GgufBaseModel[];
  /** general.source.*: the repo this file was converted from. */
  source?: GgufBaseModel;
  tensors: { name: string; dims: number[]; type: string; offset: number }[];
  /** Split files (name-0000N-of-0000M.gguf) beyond the first, when grouped. */
  splitFiles?: string[];
}

export interface CatalogEntry {
  /** Absolute path: the folder for HF-layout folders, the file for single files, the index for header-less sharded sets. */
  path: string;
  /** The scan root it was found under. */
  root: string;
  kind: EntryKind;
  /** Display name: folder or file name; for HF cache snapshots the repo id. */
  name: string;
  format: EntryFormat;
  /** Absolute paths of the weight files (shards in index order). */
  weightFiles: string[];
  /** The *.safetensors.index.json of a sharded set. */
  indexFile?: string;
  /** Every file the entry was built from: the cache key. */
  sources: SourceFile[];
  tensorCount?: number;
  parameters?: number;
  /** Bytes of tensor data. */
  bytes?: number;
  /** Bytes of tensor data per dtype. */
  dtypes?: Record<string, number>;
  /** Hash of sorted tensor names and shapes: equal for checkpoints of one architecture. */
  architecture?: string;
  /** safetensors __metadata__ (or index metadata) when present. */
  metadata?: Record<string, unknown>;
  card?: CardFacts;
  config?: ConfigFacts;
  adapter?: AdapterFacts;
  merge?: MergeFacts;
  patch?: PatchFacts;
  trainer?: TrainerFacts;
  hfCache?: HfCacheFacts;
  gguf?: GgufFacts;
}

export interface CatalogProblem {
  path: string;
  message: string;
}

export interface Catalog {
  entries: CatalogEntry[];
  problems: CatalogProblem[];
}

export interface ScanProgress {
  dirs: number;
  files: number;
  found: number;
}
