// The lineage graph of a catalog: one node per distinct set of weights (identical copies, e.g. an
// HF cache snapshot and a local folder, are one node with several locations), declared edges from
// cards and side files, and, optionally, edges inferred from the weights (infer.ts).
import * as path from 'node:path';
import { CatalogCache, checkpointStepFromName, type Catalog, type CatalogEntry } from '../catalog';
import { InlineRunner, mapLimit, type TaskRunner } from '../engine/pool';
import { CancelledError } from '../engine/task';
import { openCheckpoint } from '../safetensors';
import { FINGERPRINT_VERSION, fingerprintLayout, samplesPerTensor } from './fingerprint';
import { inferGroupEdges, type GroupMember } from './infer';
import { groupMetricsOn, type NeighbourSearch } from './metrics';
import { lineageTasks, unpackFingerprints } from './tasks';
import type { EdgeSource, LineageEdge, LineageGraph, LineageNode, NodeKind, Relation } from './types';

export interface BuildLineageOptions {
  /** Node ids are paths relative to this folder. */
  root: string;
  /** Infer edges from weights where nothing is declared. */
  infer: boolean;
  /** Runs the fingerprint kernel (the worker pool); defaults to the calling thread. */
  runner?: TaskRunner<typeof lineageTasks>;
  signal?: AbortSignal;
  /** Fingerprints are read from and saved to it. */
  cache?: CatalogCache;
  /** Fraction of fingerprint reads done. */
  onProgress?(fraction: number): void;
}

/** When two sources declare the same edge, the more specific one is kept. */
const SOURCE_PRIORITY: EdgeSource[] = ['adapter_config', 'patch_metadata', 'mergekit_config', 'provenance', 'trainer', 'card', 'weights'];
const CARD_RELATIONS: Record<string, Relation> = { adapter: 'adapter', merge: 'merge', quantized: 'quantized', finetune: 'finetune' };
const HUB_ID = /^[\w.-]+(\/[\w.-]+)?$/;

interface NodeDraft {
  node: LineageNode;
  entries: CatalogEntry[];
  external: boolean;
}

const toPosix = (p: string) => p.split(path.sep).join('/');
const isCacheEntry = (e: CatalogEntry) => e.hfCache !== undefined;
// A patch holds differences, not weights: it is never the same weights as a model, nor related by them.
const canFingerprint = (e: CatalogEntry) => (e.format === 'safetensors' || e.format === 'safetensors-sharded') && e.kind !== 'patch';
const isSingleFile = (e: CatalogEntry) => e.kind === 'file' || e.kind === 'gguf' || e.kind === 'patch';
/** Graft's LoRA extraction records the fine-tune an adapter was taken from in its provenance. */
const isExtractedAdapter = (e: CatalogEntry) => e.kind === 'adapter' && e.merge?.tool === 'graft' && e.merge.method === 'lora_extract';

function fingerprintTarget(entry: CatalogEntry): string {
  return entry.indexFile ?? entry.weightFiles[0];
}

function appendTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function mainDtype(dtypes: Record<string, number> | undefined): string | undefined {
  if (!dtypes) return undefined;
  let best: string | undefined;
  for (const [dtype, bytes] of Object.entries(dtypes)) if (best === undefined || bytes > dtypes[best]) best = dtype;
  return best;
}

/** FNV-1a over the bits of the values. */
function valuesHash(values: Float32Array): number {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ bits[i], 0x01000193);
  return h >>> 0;
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Fingerprints per worker task (see tasks.ts): enough tasks to keep every thread busy and show
 * progress, each large enough that its message costs little beside its reads.
 */
const FINGERPRINTS_PER_TASK_MIN = 8;
const FINGERPRINTS_PER_TASK_MAX = 256;
const FINGERPRINT_TASKS_PER_THREAD = 4;

export async function buildLineage(catalog: Catalog, options: BuildLineageOptions): Promise<LineageGraph> {
  const root = path.resolve(options.root);
  const runner = options.runner ?? new InlineRunner(lineageTasks);
  const cache = options.cache;
  const entries = catalog.entries;

  // Fingerprints, read once per entry (through the cache when given).
  const fingerprints = new Map<string, Float32Array>();
  let fingerprintsDone = 0;
  let fingerprintsWanted = 0;
  const readFingerprints = async (wanted: CatalogEntry[]): Promise<void> => {
    const todo = wanted.filter((e) => !fingerprints.has(e.path));
    fingerprintsWanted += todo.length;
    const progress = () => options.onProgress?.(fingerprintsDone / Math.max(1, fingerprintsWanted));
    const missing: { entry: CatalogEntry; signature: string; samplesPerTensor: number }[] = [];
    for (const entry of todo) {
      const perTensor = samplesPerTensor(entry.tensorCount ?? 1);
      const weights = new Set(entry.weightFiles);
      const signature = [FINGERPRINT_VERSION, perTensor, ...entry.sources.filter((s) => weights.has(s.path)).map((s) => `${s.path}:${s.size}:${s.mtimeMs}`)].join('|');
      const cached = cache?.getFingerprint(entry.path, signature);
      if (cached) {
        fingerprints.set(entry.path, cached);
        fingerprintsDone++;
      } else {
        missing.push({ entry, signature, samplesPerTensor: perTensor });
      }
    }
    progress();
    const perTask = Math.min(FINGERPRINTS_PER_TASK_MAX, Math.max(FINGERPRINTS_PER_TASK_MIN, Math.ceil(missing.length / (runner.concurrency * FINGERPRINT_TASKS_PER_THREAD))));
    const batches: (typeof missing)[] = [];
    for (let i = 0; i < missing.length; i += perTask) batches.push(missing.slice(i, i + perTask));
    // Two tasks per thread: one reading while the other's results travel back.
    await mapLimit(batches, Math.max(2, runner.concurrency * 2), async (batch) => {
      const inputs = batch.map((m) => ({ path: fingerprintTarget(m.entry), samplesPerTensor: m.samplesPerTensor }));
      const values = unpackFingerprints(await runner.run('fingerprints', { inputs }, { signal: options.signal }));
      batch.forEach((m, i) => {
        cache?.setFingerprint(m.entry.path, m.signature, values[i]);
        fingerprints.set(m.entry.path, values[i]);
      });
      fingerprintsDone += batch.length;
      progress();
    }, options.signal);
  };

  // 1. Identical weights: same architecture, dtypes and sizes, then equal fingerprints.
  const buckets = new Map<string, CatalogEntry[]>();
  for (const entry of entries) {
    if (!canFingerprint(entry) || !entry.architecture) continue;
    const dtypes = Object.entries(entry.dtypes ?? {}).sort().map(([k, v]) => `${k}=${v}`).join(',');
    const key = `${entry.architecture}|${dtypes}|${entry.parameters}`;
    appendTo(buckets, key, entry);
  }
  const collisions = [...buckets.values()].filter((b) => b.length > 1);
  await readFingerprints(collisions.flat());
  const groupOf = new Map<CatalogEntry, CatalogEntry[]>();
  for (const bucket of collisions) {
    // Grouped by a hash of the values first: a long training run is one bucket of thousands.
    const groupsByHash = new Map<number, CatalogEntry[][]>();
    for (const entry of bucket) {
      const values = fingerprints.get(entry.path)!;
      const hash = valuesHash(values);
      const groups = groupsByHash.get(hash) ?? [];
      if (groups.length === 0) groupsByHash.set(hash, groups);
      const group = groups.find((g) => sameValues(fingerprints.get(g[0].path)!, values));
      if (group) group.push(entry);
      else groups.push([entry]);
    }
    for (const groups of groupsByHash.values()) for (const group of groups) for (const entry of group) groupOf.set(entry, group);
  }

  // 2. Nodes. The id is the first location outside the HF cache, else the hub id.
  const revisionsByRepo = new Map<string, Set<string>>();
  for (const e of entries) if (e.hfCache) revisionsByRepo.set(e.hfCache.repoId, (revisionsByRepo.get(e.hfCache.repoId) ?? new Set()).add(e.hfCache.revision));
  const drafts: NodeDraft[] = [];
  const nodeOfEntry = new Map<CatalogEntry, NodeDraft>();
  for (const entry of entries) {
    if (nodeOfEntry.has(entry)) continue;
    const members = (groupOf.get(entry) ?? [entry]).slice().sort((a, b) => Number(isCacheEntry(a)) - Number(isCacheEntry(b)) || (a.path < b.path ? -1 : 1));
    const primary = members[0];
    const cached = members.find(isCacheEntry);
    let id: string;
    if (!isCacheEntry(primary)) id = toPosix(path.relative(root, primary.path)) || '.';
    else {
      const hf = primary.hfCache!;
      const onlyRevision = (revisionsByRepo.get(hf.repoId)?.size ?? 1) === 1;
      id = onlyRevision || hf.refs.includes('main') ? `hub:${hf.repoId}` : `hub:${hf.repoId}@${hf.revision}`;
    }
    const node: LineageNode = {
      id,
      kind: 'base',
      label: isCacheEntry(primary) ? primary.hfCache!.repoId : primary.kind === 'file' && primary.format === 'safetensors-sharded' ? path.basename(path.dirname(primary.path)) : path.basename(primary.path),
      locations: members.map((m) => m.path),
    };
    if (cached) {
      node.hubId = cached.hfCache!.repoId;
      node.revision = cached.hfCache!.revision;
    }
    const card = members.find((m) => m.card)?.card;
    if (card) node.card = card;
    if (primary.parameters !== undefined) node.parameters = primary.parameters;
    if (primary.bytes !== undefined) node.bytes = primary.bytes;
    const dtype = mainDtype(primary.dtypes);
    if (dtype) node.dtype = dtype;
    node.format = primary.format;
    const draft: NodeDraft = { node, entries: members, external: false };
    drafts.push(draft);
    for (const m of members) nodeOfEntry.set(m, draft);
  }

  // 3. How references (hub ids, paths, names) find nodes.
  const byLocation = new Map<string, NodeDraft>();
  const byHubId = new Map<string, NodeDraft>();
  const byName = new Map<string, NodeDraft[]>();
  const byNameOrPath = new Map<string, NodeDraft[]>();
  const push = (map: Map<string, NodeDraft[]>, key: string, draft: NodeDraft) => {
    const list = map.get(key) ?? [];
    if (!list.includes(draft)) list.push(draft);
    map.set(key, list);
  };
  for (const draft of drafts) {
    for (const entry of draft.entries) {
      byLocation.set(entry.path, draft);
      if (entry.hfCache) byHubId.set(entry.hfCache.repoId.toLowerCase(), draft);
      else {
        const base = isSingleFile(entry)
          ? path.basename(entry.format === 'safetensors-sharded' ? path.dirname(entry.path) : entry.path).replace(/\.(safetensors|gguf)$/i, '')
          : path.basename(entry.path);
        push(byName, base.toLowerCase(), draft);
      }
      if (entry.config?.nameOrPath) push(byNameOrPath, entry.config.nameOrPath.toLowerCase(), draft);
    }
  }
  const externals = new Map<string, NodeDraft>();
  /** The node a reference names; an unknown one becomes an external node unless `noteOnly` (then undefined). */
  const resolve = (reference: string, from: NodeDraft, entry: CatalogEntry, noteOnly = false): NodeDraft | undefined => {
    // mergekit writes "model+lora" for a model with a LoRA applied: the model is the parent.
    const ref = (reference.includes('+') && !reference.startsWith('+') ? reference.slice(0, reference.indexOf('+')) : reference).trim();
    if (!ref) return undefined;
    const folder = isSingleFile(entry) ? path.dirname(entry.path) : entry.path;
    for (const candidate of [path.resolve(folder, ref), path.resolve(path.dirname(folder), ref), path.resolve(root, ref)]) {
      const hit = byLocation.get(candidate);
      if (hit) return hit === from ? undefined : hit;
    }
    const lower = ref.toLowerCase();
    const hub = byHubId.get(lower);
    if (hub) return hub === from ? undefined : hub;
    const lastSegment = lower.split(/[\\/]/).filter(Boolean).pop() ?? lower;
    const named = (byName.get(lastSegment) ?? []).filter((d) => d !== from);
    if (named.length === 1) {
      if (HUB_ID.test(ref) && ref.includes('/') && !named[0].node.hubId) named[0].node.hubId = ref;
      return named[0];
    }
    const declaredAs = (byNameOrPath.get(lower) ?? []).filter((d) => d !== from);
    if (declaredAs.length === 1) return declaredAs[0];
    if (noteOnly) return undefined;
    const id = HUB_ID.test(ref) ? `hub:${ref}` : `path:${ref}`;
    let external = externals.get(id);
    if (!external) {
      external = { node: { id, kind: 'external', label: ref, ...(HUB_ID.test(ref) ? { hubId: ref } : {}) }, entries: [], external: true };
      externals.set(id, external);
    }
    return external;
  };

  // 4. Declared edges.
  const edgeMap = new Map<string, LineageEdge>();
  const addEdge = (edge: LineageEdge) => {
    if (edge.parent === edge.child) return;
    const key = `${edge.parent}\0${edge.child}`;
    const existing = edgeMap.get(key);
    if (!existing || SOURCE_PRIORITY.indexOf(edge.source) < SOURCE_PRIORITY.indexOf(existing.source)) edgeMap.set(key, edge);
  };
  for (const draft of drafts) {
    for (const entry of draft.entries) {
      const link = (ref: string | undefined, relation: Relation, source: EdgeSource) => {
        if (!ref) return;
        const parent = resolve(ref, draft, entry);
        if (parent) addEdge({ parent: parent.node.id, child: draft.node.id, relation, source });
      };
      const noteSource = (ref: string | undefined) => {
        if (!ref || draft.node.source) return;
        const found = resolve(ref, draft, entry, true);
        draft.node.source = found ? { id: found.node.id, label: found.node.label } : { label: ref };
      };
      if (entry.adapter?.baseModel) link(entry.adapter.baseModel, 'adapter', 'adapter_config');
      if (entry.patch) {
        link(entry.patch.base, 'patch', 'patch_metadata');
        noteSource(entry.patch.source);
      }
      if (entry.merge && isExtractedAdapter(entry)) {
        // Not a merge of the fine-tune: an adapter of the base that approximates it.
        link(entry.merge.baseModel, 'adapter', 'provenance');
        noteSource(entry.merge.models[0]);
      } else if (entry.merge) {
        const source: EdgeSource = entry.merge.tool === 'graft' ? 'provenance' : 'mergekit_config';
        for (const model of entry.merge.models) link(model, 'merge', source);
        link(entry.merge.baseModel, 'merge', source);
      }
      const card = entry.card;
      if (card?.baseModel) {
        const tags = (card.tags ?? []).map((t) => t.toLowerCase());
        const relation: Relation = CARD_RELATIONS[card.baseModelRelation ?? '']
          ?? (entry.adapter || entry.kind === 'adapter' ? 'adapter'
            : entry.merge || tags.includes('merge') || card.baseModel.length > 1 ? 'merge'
              : entry.config?.quantization || entry.kind === 'gguf' ? 'quantized'
                : 'finetune');
        for (const ref of card.baseModel) link(ref, relation, 'card');
      }
      // new_version names a successor; successors are normally the old model trained further.
      if (card?.newVersion) {
        const successor = resolve(card.newVersion, draft, entry);
        if (successor) addEdge({ parent: draft.node.id, child: successor.node.id, relation: 'finetune', source: 'card' });
      }
      if (entry.gguf) {
        if (entry.gguf.source?.hubId) link(entry.gguf.source.hubId, 'quantized', 'card');
        for (const base of entry.gguf.baseModels) link(base.hubId ?? base.name, entry.gguf.source ? 'finetune' : 'quantized', 'card');
      }
    }
  }
  // Trainer runs: checkpoint-N -> checkpoint-M by step, and the last one -> the run folder's final model.
  const runs = new Map<string, { step: number; draft: NodeDraft }[]>();
  for (const draft of drafts) {
    for (const entry of draft.entries) {
      if (entry.kind !== 'trainer-checkpoint' || !entry.trainer) continue;
      const step = entry.trainer.globalStep ?? checkpointStepFromName(path.basename(entry.path));
      if (step === undefined) continue;
      appendTo(runs, entry.trainer.runDir, { step, draft });
    }
  }
  for (const [runDir, checkpoints] of runs) {
    checkpoints.sort((a, b) => a.step - b.step);
    for (let i = 1; i < checkpoints.length; i++) {
      addEdge({ parent: checkpoints[i - 1].draft.node.id, child: checkpoints[i].draft.node.id, relation: 'checkpoint', source: 'trainer' });
    }
    const finalModel = byLocation.get(runDir);
    if (finalModel) addEdge({ parent: checkpoints[checkpoints.length - 1].draft.node.id, child: finalModel.node.id, relation: 'checkpoint', source: 'trainer' });
  }
  const declared = [...edgeMap.values()];

  // 5. Inferred edges, per architecture.
  if (options.infer) {
    const byArchitecture = new Map<string, NodeDraft[]>();
    for (const draft of drafts) {
      const entry = draft.entries[0];
      if (!canFingerprint(entry) || entry.kind === 'adapter' || !entry.architecture) continue;
      appendTo(byArchitecture, entry.architecture, draft);
    }
    const groups = [...byArchitecture.values()].filter((g) => g.length > 1);
    await readFingerprints(groups.flatMap((g) => g.map((d) => d.entries[0])));
    const withParent = new Set(declared.map((e) => e.child));
    const withChildren = new Set(declared.map((e) => e.parent));
    for (const group of groups) {
      if (options.signal?.aborted) throw new CancelledError();
      const representative = group[0].entries[0];
      const architecture = representative.architecture!;
      let tensors = cache?.getArchitecture(architecture);
      if (!tensors) {
        const layout = await openCheckpoint(fingerprintTarget(representative));
        tensors = { names: layout.tensors.map((t) => t.name), numel: layout.tensors.map((t) => t.numel) };
        cache?.setArchitecture(architecture, tensors);
      }
      const list = tensors.names.map((name, i) => ({ name, numel: tensors!.numel[i] }));
      const segments = fingerprintLayout(list, samplesPerTensor(representative.tensorCount ?? 1));
      const numelByName = new Map(list.map((t) => [t.name, t.numel]));
      const members: GroupMember[] = group.map((draft) => {
        const entry = draft.entries[0];
        const nameStep = checkpointStepFromName(path.basename(entry.path));
        const run = entry.trainer
          ? { dir: entry.trainer.runDir, step: entry.trainer.globalStep ?? nameStep ?? Number.NaN }
          : nameStep !== undefined ? { dir: path.dirname(entry.path), step: nameStep } : undefined;
        return {
          id: draft.node.id,
          values: fingerprints.get(entry.path)!,
          declaredParent: withParent.has(draft.node.id),
          declaredChildren: withChildren.has(draft.node.id),
          ...(run && Number.isFinite(run.step) ? { run } : {}),
          ...(entry.bytes !== undefined ? { bytes: entry.bytes } : {}),
          ...(draft.node.dtype ? { dtype: draft.node.dtype } : {}),
        };
      });
      // A large group's neighbour search runs on every thread of the pool (even one: the extension host stays free).
      const searchRange = (search: NeighbourSearch, from: number, to: number) => runner.run('nearestCandidates', { search, from, to }, { signal: options.signal });
      const metrics = await groupMetricsOn(options.runner ? searchRange : undefined, runner.concurrency, members.map((m) => m.values), segments, segments.map((s) => numelByName.get(s.name) ?? s.count));
      for (const edge of inferGroupEdges(members, metrics, declared)) addEdge(edge);
    }
  }

  // 6. Kinds from what the entries are and what points at them.
  const edges = [...edgeMap.values()].sort((a, b) => (a.parent < b.parent ? -1 : a.parent > b.parent ? 1 : a.child < b.child ? -1 : a.child > b.child ? 1 : 0));
  const incoming = new Map<string, LineageEdge[]>();
  for (const e of edges) appendTo(incoming, e.child, e);
  const all = [...drafts, ...externals.values()];
  for (const draft of all) draft.node.kind = kindOf(draft, incoming.get(draft.node.id) ?? []);
  const nodes = all.map((d) => d.node).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { nodes, edges };
}

function kindOf(draft: NodeDraft, incoming: LineageEdge[]): NodeKind {
  if (draft.external) return 'external';
  const kinds = new Set(draft.entries.map((e) => e.kind));
  if (kinds.has('patch')) return 'patch';
  if (kinds.has('adapter')) return 'adapter';
  if (kinds.has('trainer-checkpoint')) return 'checkpoint';
  if (kinds.has('merge') || incoming.some((e) => e.relation === 'merge')) return 'merge';
  if (kinds.has('gguf') || draft.entries.some((e) => e.config?.quantization) || incoming.some((e) => e.relation === 'quantized')) return 'quantized';
  return incoming.length > 0 ? 'finetune' : 'base';
}
