// The lineage graph as the CLI prints it (`graft lineage --json`) and the views draw it.

export type NodeKind =
  | 'base' | 'finetune' | 'adapter' | 'merge' | 'quantized' | 'checkpoint' | 'patch' | 'external';

export type Relation = 'finetune' | 'adapter' | 'merge' | 'quantized' | 'checkpoint' | 'copy' | 'patch';

import type { CardFacts } from '../catalog/types';

export type EdgeSource = 'card' | 'adapter_config' | 'mergekit_config' | 'trainer' | 'provenance' | 'patch_metadata' | 'weights';

export interface LineageNode {
  /**
   * Path relative to the scanned root (forward slashes) of the model folder or checkpoint file;
   * `hub:<org/name>` for a model only in the HF cache (`hub:<org/name>@<revision>` for a revision
   * other than main) or referenced but not on disk; `path:<reference>` for a local path that a
   * config names but that does not exist under the scanned folders.
   */
  id: string;
  kind: NodeKind;
  /** Human name: folder or file name, or the hub id. */
  label: string;
  hubId?: string;
  revision?: string;
  /** Absolute paths where these same weights live (several for identical copies). */
  locations?: string[];
  card?: CardFacts;
  parameters?: number;
  bytes?: number;
  /** Most common dtype by bytes. */
  dtype?: string;
  format?: string;
  /**
   * Patches and extracted adapters: the fine-tune their difference was taken from (the base is
   * their parent). `id` when that model is a node of the graph; `label` as the file names it.
   */
  source?: { id?: string; label: string };
}

/**
 * relation: how the child was made. 'patch' links a base to a weight patch taken against it
 * (extracted LoRA adapters are 'adapter's of their base). 'checkpoint' links consecutive steps of one trainer run (and
 * its last step to the run's final model); 'copy' links the same values stored in another dtype.
 * A card's new_version becomes old -> new 'finetune': successors are normally further training.
 */
export interface LineageEdge {
  parent: string;
  child: string;
  relation: Relation;
  source: EdgeSource;
  /** 0..1, for edges inferred from weights. */
  confidence?: number;
  /** Inferred edges whose direction no declared fact settles. */
  undirected?: boolean;
  /** Inferred merges: this parent's estimated coefficient (a weight, or the scale of its task vector). */
  weight?: number;
  /** Inferred merges: the estimated method and coefficients, e.g. "≈ 0.7 A + 0.3 B", "TIES-like: sparse, sign-elected". */
  recipe?: string;
  /** Inferred merged adapters: the estimated rank of the low-rank difference. */
  rank?: number;
}

export interface LineageGraph {
  nodes: LineageNode[];
  edges: LineageEdge[];
}
