// The sidebar's lineage tree: roots are models with no parent (base models, external hub ids),
// children follow lineage edges. A model with several parents (a merge) sits under one of them,
// the one closest to the root (for a TIES merge, its base), and every other parent gets a link
// row pointing to it: VS Code's tree shows an item in one place only.
import * as vscode from 'vscode';
import { formatBytes, formatParameters } from '../../core/format';
import type { LineageEdge, LineageGraph, LineageNode, NodeKind } from '../../core/lineage/types';
import { escapeControl } from '../../core/text';
import { KIND_COLOURS } from '../../shared/kindColours';
import type { ModelIndex } from './modelIndex';

export interface LineageElement {
  /** Unique in the tree: the node id, or `parent>child` for a link row. */
  key: string;
  /** A link row: the node itself sits under another parent. */
  link?: boolean;
  node: LineageNode;
  /** The edge from the parent element (undefined for roots). */
  edge?: LineageEdge;
  parent?: LineageElement;
  children: LineageElement[];
}

/** Icon per kind; the colour is the kind's (as in the graph), and a link found only in the weights gets a sparkle. */
const ICONS: Record<NodeKind, string> = {
  base: 'package',
  finetune: 'git-commit',
  adapter: 'plug',
  merge: 'git-merge',
  quantized: 'file-zip',
  checkpoint: 'history',
  patch: 'diff',
  external: 'cloud',
};
const INFERRED_ICON = 'sparkle';

const RELATION_LABEL: Record<string, string> = {
  finetune: 'fine-tune of',
  adapter: 'adapter for',
  merge: 'merged from',
  quantized: 'quantized from',
  checkpoint: 'checkpoint after',
  copy: 'copy of',
  patch: 'patch of',
};

export class LineageTreeProvider implements vscode.TreeDataProvider<LineageElement>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.emitter.event;
  private roots: LineageElement[] = [];
  /** The element of each node (not its link rows), for reveal(). */
  private byNode = new Map<string, LineageElement>();
  /** Every link into each node (a merge has several), for tooltips. */
  private parentsOf = new Map<string, LineageEdge[]>();
  private readonly subscription: vscode.Disposable;

  constructor(private readonly index: ModelIndex) {
    this.rebuild();
    this.subscription = index.onDidChange(() => {
      this.rebuild();
      this.emitter.fire();
    });
  }

  /** The first place a node appears in the tree. */
  elementFor(nodeId: string): LineageElement | undefined {
    return this.byNode.get(nodeId);
  }

  getChildren(element?: LineageElement): LineageElement[] {
    return element ? element.children : this.roots;
  }

  getParent(element: LineageElement): LineageElement | undefined {
    return element.parent;
  }

  getTreeItem(element: LineageElement): vscode.TreeItem {
    const { node, edge } = element;
    // Roots open, deeper levels closed: VS Code 1.100 drops the children of all but the first of
    // several sibling items that start expanded, and reveal() opens what it needs anyway.
    const state = element.children.length === 0 ? vscode.TreeItemCollapsibleState.None : element.parent ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.Expanded;
    // Labels and descriptions come from file and folder names, card fields and GGUF strings.
    const item = new vscode.TreeItem(escapeControl(node.label), state);
    item.id = element.key;
    const inferred = edge?.source === 'weights';
    // A kind this version does not know (an index saved by another version) is drawn as a finetune.
    const kind = node.kind in ICONS ? node.kind : 'finetune';
    const [icon, colour] = element.link ? ['link', 'descriptionForeground'] : [inferred ? INFERRED_ICON : ICONS[kind], KIND_COLOURS[kind].themeColour];
    item.iconPath = new vscode.ThemeIcon(icon, new vscode.ThemeColor(colour));
    const home = element.link ? this.byNode.get(node.id)?.parent?.node.label : undefined;
    item.description = escapeControl(element.link ? `${node.kind}${home ? ` · listed under ${home}` : ''}` : describe(node, edge));
    item.tooltip = tooltip(node, edge, this.parentsOf.get(node.id) ?? []);
    const entryPath = node.locations?.[0];
    item.contextValue = contextValue(element);
    if (entryPath) item.command = { command: 'graft.inspectCheckpoint', title: 'Inspect Checkpoint', arguments: [element] };
    return item;
  }

  private rebuild(): void {
    const graph = this.index.graph;
    this.byNode = new Map();
    this.roots = graph ? buildForest(graph, this.byNode) : [];
    this.parentsOf = new Map();
    for (const e of graph?.edges ?? []) {
      const list = this.parentsOf.get(e.child);
      if (list) list.push(e);
      else this.parentsOf.set(e.child, [e]);
    }
  }

  dispose(): void {
    this.subscription.dispose();
    this.emitter.dispose();
  }
}

function buildForest(graph: LineageGraph, byNode: Map<string, LineageElement>): LineageElement[] {
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  // Incoming edges per child, one per parent: when several files declare the same link (a card
  // and a mergekit config), the declared fact wins over an inference.
  const incoming = new Map<string, LineageEdge[]>();
  for (const edge of graph.edges) {
    if (!nodes.has(edge.parent) || !nodes.has(edge.child) || edge.parent === edge.child) continue;
    let list = incoming.get(edge.child);
    if (!list) incoming.set(edge.child, (list = []));
    const same = list.findIndex((e) => e.parent === edge.parent);
    if (same < 0) list.push(edge);
    else if (list[same].source === 'weights' && edge.source !== 'weights') list[same] = edge;
  }
  const ancestorsOf = (id: string): Set<string> => {
    const seen = new Set<string>();
    const stack = (incoming.get(id) ?? []).map((e) => e.parent);
    while (stack.length) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      for (const e of incoming.get(next) ?? []) stack.push(e.parent);
    }
    return seen;
  };
  const byLabel = (a: LineageNode, b: LineageNode) => a.label.localeCompare(b.label, undefined, { numeric: true });
  // Each child's home: the parent that is an ancestor of most of its other parents (a merge's
  // base), then a declared link over an inferred one, then by name.
  const home = new Map<string, LineageEdge>();
  for (const [child, edges] of incoming) {
    const ranked = edges
      .map((edge) => {
        const ancestors = ancestorsOf(edge.parent);
        const covers = edges.filter((other) => other !== edge && ancestorsOf(other.parent).has(edge.parent)).length;
        return { edge, covers, cyclic: ancestors.has(child) };
      })
      .sort((x, y) => Number(x.cyclic) - Number(y.cyclic) || y.covers - x.covers || Number(x.edge.source === 'weights') - Number(y.edge.source === 'weights') || byLabel(nodes.get(x.edge.parent)!, nodes.get(y.edge.parent)!));
    home.set(child, ranked[0].edge);
  }
  const childrenOf = new Map<string, LineageEdge[]>();
  for (const edges of incoming.values()) {
    for (const edge of edges) {
      let list = childrenOf.get(edge.parent);
      if (!list) childrenOf.set(edge.parent, (list = []));
      list.push(edge);
    }
  }

  const make = (node: LineageNode, edge: LineageEdge | undefined, parent: LineageElement | undefined): LineageElement => {
    const element: LineageElement = { key: node.id, node, edge, parent, children: [] };
    byNode.set(node.id, element);
    const edges = (childrenOf.get(node.id) ?? []).slice().sort((a, b) => byLabel(nodes.get(a.child)!, nodes.get(b.child)!));
    for (const childEdge of edges) {
      const child = nodes.get(childEdge.child)!;
      if (home.get(child.id) === childEdge && !byNode.has(child.id)) element.children.push(make(child, childEdge, element));
      else element.children.push({ key: `${node.id}>${child.id}`, link: true, node: child, edge: childEdge, parent: element, children: [] });
    }
    return element;
  };
  const roots = graph.nodes.filter((n) => !incoming.has(n.id)).sort(byLabel).map((n) => make(n, undefined, undefined));
  // Nodes only reachable through a cycle (inconsistent declarations) still get a row.
  for (const node of graph.nodes) if (!byNode.has(node.id)) roots.push(make(node, undefined, undefined));
  return roots;
}

function describe(node: LineageNode, edge: LineageEdge | undefined): string {
  const parts: string[] = [];
  if (node.parameters) parts.push(formatParameters(node.parameters));
  if (node.dtype) parts.push(node.dtype);
  if (node.bytes) parts.push(formatBytes(node.bytes));
  if (node.kind === 'external') parts.push('not on disk');
  if (node.source) parts.push(`from ${node.source.label}`);
  if (edge?.relation === 'adapter' && edge.rank !== undefined) parts.push(`merged adapter, rank ≈ ${edge.rank}`);
  if (edge?.relation === 'quantized' && edge.source === 'weights') parts.push('cast');
  if (edge?.source === 'weights') parts.push(`inferred ${Math.round((edge.confidence ?? 0) * 100)}%`);
  if (node.locations && node.locations.length > 1) parts.push(`${node.locations.length} copies`);
  return parts.join(' · ');
}

function tooltip(node: LineageNode, edge: LineageEdge | undefined, parents: readonly LineageEdge[]): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.supportThemeIcons = true;
  md.appendMarkdown(`**${escape(node.label)}** — ${node.kind}\n\n`);
  // Every parent, not just the one the row sits under: a merge lists all it was made from.
  const links = parents.length > 0 ? parents : edge ? [edge] : [];
  for (const link of links) {
    const how = link.source === 'weights' ? `inferred from weights (confidence ${((link.confidence ?? 0) * 100).toFixed(0)}%${link.undirected ? ', direction unknown' : ''})` : `declared by ${link.source.replace('_', ' ')}`;
    const weight = link.weight !== undefined ? ` (coefficient ≈ ${link.weight})` : '';
    const rank = link.rank !== undefined ? ` (rank ≈ ${link.rank})` : '';
    md.appendMarkdown(`${RELATION_LABEL[link.relation] ?? link.relation} \`${escape(link.parent)}\`${weight}${rank}, ${how}  \n`);
  }
  if (node.source) md.appendMarkdown(`Difference taken from \`${escape(node.source.id ?? node.source.label)}\`${node.source.id ? '' : ' (not found on disk)'}  \n`);
  const recipe = links.find((l) => l.recipe)?.recipe;
  if (recipe) md.appendMarkdown(`Recipe: ${escape(recipe)}  \n`);
  if (links.length) md.appendMarkdown('\n');
  const rows: [string, string | undefined][] = [
    ['Hub id', node.hubId],
    ['Revision', node.revision],
    ['Parameters', node.parameters ? `${formatParameters(node.parameters)} (${node.parameters.toLocaleString()})` : undefined],
    ['Dtype', node.dtype],
    ['Size', node.bytes ? formatBytes(node.bytes) : undefined],
    ['License', node.card?.license],
    ['Relation (card)', node.card?.baseModelRelation],
    ['Datasets', node.card?.datasets?.join(', ')],
    ['Languages', node.card?.language?.join(', ')],
    ['Tags', node.card?.tags?.join(', ')],
    ['CO₂', node.card?.co2?.emissions !== undefined ? `${node.card.co2.emissions} g${node.card.co2.source ? ` (${node.card.co2.source})` : ''}` : undefined],
    ['Newer version', node.card?.newVersion],
  ];
  for (const [label, value] of rows) if (value) md.appendMarkdown(`${label}: ${escape(value)}  \n`);
  const evals = node.card?.evalResults ?? [];
  if (evals.length) {
    md.appendMarkdown('\n**Evaluation results**\n\n');
    for (const r of evals.slice(0, 8)) md.appendMarkdown(`- ${escape([r.task, r.dataset, r.metric].filter(Boolean).join(' / '))}: ${escape(String(r.value))}\n`);
  }
  if (node.locations?.length) {
    md.appendMarkdown('\n**Locations**\n\n');
    for (const location of node.locations) md.appendMarkdown(`- \`${escape(location)}\`\n`);
  }
  return md;
}

/** Markdown-safe and control-free text for hovers. */
function escape(text: string): string {
  return escapeControl(text).replace(/[\\`*_{}[\]<>()#+!|]/g, (c) => `\\${c}`);
}

function contextValue(element: LineageElement): string {
  const { node } = element;
  const tokens = ['node', `kind-${node.kind}`];
  if (element.link) tokens.push('link');
  if (node.locations?.length) tokens.push('local', 'comparable');
  // A whole model (not an adapter, patch or hub-only reference): what the surgery actions take.
  if (node.locations?.length && node.kind !== 'adapter' && node.kind !== 'patch' && node.format !== 'gguf' && node.format !== 'pytorch') tokens.push('model');
  if (element.edge && element.edge.relation !== 'adapter' && element.edge.relation !== 'patch' && element.parent?.node.locations?.length && node.locations?.length) tokens.push('hasParent');
  if (node.card) tokens.push('hasCard');
  return tokens.join(' ');
}
