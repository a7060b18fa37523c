// The graph as the view draws it: one drawn edge per pair of models (several facts about the same
// link, e.g. a card and a mergekit config, are merged into it), adjacency both ways, and the
// lineage (ancestors and descendants) of a node for highlighting.
import type { LineageEdge, LineageGraph, LineageNode } from '../../src/core/lineage/types';

export interface DrawnEdge {
  /** Stable key: parent and child ids. */
  key: string;
  parent: string;
  child: string;
  /** Every fact the graph states about this link, declared ones first. */
  facts: LineageEdge[];
  /** Only inferred from weights (drawn dashed). */
  inferred: boolean;
  /** No fact settles the direction (drawn without arrowhead). */
  undirected: boolean;
  /** Highest confidence among inferred facts. */
  confidence?: number;
}

export interface GraphModel {
  nodes: LineageNode[];
  nodeById: Map<string, LineageNode>;
  edges: DrawnEdge[];
  incoming: Map<string, DrawnEdge[]>;
  outgoing: Map<string, DrawnEdge[]>;
  /** Edges naming a model the graph does not list (left out of the drawing). */
  dangling: number;
}

export function buildModel(graph: LineageGraph): GraphModel {
  const nodeById = new Map<string, LineageNode>();
  for (const node of graph.nodes) if (!nodeById.has(node.id)) nodeById.set(node.id, node);
  const nodes = [...nodeById.values()];
  const byKey = new Map<string, DrawnEdge>();
  let dangling = 0;
  // Declared (directed) facts first, so a later undirected fact joins the declared direction.
  const ordered = graph.edges.slice().sort((a, b) => Number(!!a.undirected) - Number(!!b.undirected));
  for (const fact of ordered) {
    if (!nodeById.has(fact.parent) || !nodeById.has(fact.child)) {
      dangling++;
      continue;
    }
    if (fact.parent === fact.child) continue;
    const key = edgeKey(fact.parent, fact.child);
    const existing = byKey.get(key) ?? (fact.undirected ? byKey.get(edgeKey(fact.child, fact.parent)) : undefined);
    if (existing) existing.facts.push(fact);
    else byKey.set(key, { key, parent: fact.parent, child: fact.child, facts: [fact], inferred: true, undirected: true });
  }
  const edges = [...byKey.values()];
  const incoming = new Map<string, DrawnEdge[]>();
  const outgoing = new Map<string, DrawnEdge[]>();
  for (const edge of edges) {
    edge.facts.sort((a, b) => Number(a.source === 'weights') - Number(b.source === 'weights'));
    edge.inferred = edge.facts.every((f) => f.source === 'weights');
    edge.undirected = edge.facts.every((f) => f.undirected === true);
    const confidences = edge.facts.filter((f) => f.confidence !== undefined).map((f) => f.confidence!);
    if (confidences.length) edge.confidence = Math.max(...confidences);
    push(incoming, edge.child, edge);
    push(outgoing, edge.parent, edge);
  }
  return { nodes, nodeById, edges, incoming, outgoing, dangling };
}

export function edgeKey(parent: string, child: string): string {
  return `${parent}\u0000${child}`;
}

/** Ancestors and descendants of a node (itself included) and the edges between them. */
export function lineageOf(model: GraphModel, id: string): { nodes: Set<string>; edges: Set<string> } {
  const nodes = new Set<string>([id]);
  const edges = new Set<string>();
  const walk = (next: (node: string) => DrawnEdge[] | undefined, far: (edge: DrawnEdge) => string): void => {
    const stack = [id];
    const seen = new Set<string>([id]);
    while (stack.length) {
      const current = stack.pop()!;
      for (const edge of next(current) ?? []) {
        edges.add(edge.key);
        const other = far(edge);
        nodes.add(other);
        if (!seen.has(other)) {
          seen.add(other);
          stack.push(other);
        }
      }
    }
  };
  walk((n) => model.incoming.get(n), (e) => e.parent);
  walk((n) => model.outgoing.get(n), (e) => e.child);
  return { nodes, edges };
}

/**
 * Nodes whose label, id or hub id contains the query (case-insensitive): exact names first, then
 * names starting with it, names containing it, and paths or hub ids containing it; graph order within each.
 */
export function findNodes(model: GraphModel, query: string): LineageNode[] {
  const needle = query.trim().toLowerCase();
  if (!needle) return [];
  const rank = (node: LineageNode): number => {
    const label = node.label.toLowerCase();
    if (label === needle) return 0;
    if (label.startsWith(needle)) return 1;
    if (label.includes(needle)) return 2;
    return node.id.toLowerCase().includes(needle) || (node.hubId ?? '').toLowerCase().includes(needle) ? 3 : 4;
  };
  return model.nodes
    .map((node, order) => ({ node, order, rank: rank(node) }))
    .filter((entry) => entry.rank < 4)
    .sort((a, b) => a.rank - b.rank || a.order - b.order)
    .map((entry) => entry.node);
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
