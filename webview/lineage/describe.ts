// Text about nodes and edges: the one-line summary drawn under a node's name, tooltips and
// accessible labels.
import { formatBytes, formatCount, formatParameters } from '../../src/core/format';
import type { EdgeSource, LineageEdge, LineageNode } from '../../src/core/lineage/types';
import type { DrawnEdge, GraphModel } from './model';

const sourceNames: Record<EdgeSource, string> = {
  card: 'model card',
  adapter_config: 'adapter_config.json',
  mergekit_config: 'mergekit config',
  trainer: 'trainer state',
  provenance: 'provenance record',
  patch_metadata: 'patch metadata',
  weights: 'inferred from weights',
};

/** Drawn under the name: kind, parameters, dtype. */
export function nodeSummary(node: LineageNode): string {
  const parts: string[] = [node.kind];
  if (node.parameters !== undefined) parts.push(formatParameters(node.parameters));
  if (node.dtype) parts.push(node.dtype.toLowerCase());
  return parts.join(' · ');
}

/** "finetune, model card" / "merge, inferred from weights, confidence 80%". */
function factText(fact: LineageEdge): string {
  const confidence = fact.confidence !== undefined ? `, confidence ${Math.round(fact.confidence * 100)}%` : '';
  const weight = fact.weight !== undefined ? `, coefficient ≈ ${fact.weight}` : '';
  const rank = fact.rank !== undefined ? `, rank ≈ ${fact.rank}` : '';
  return `${fact.relation}${fact.undirected ? ' (direction unknown)' : ''}${weight}${rank}, ${sourceNames[fact.source] ?? fact.source}${confidence}`;
}

/** The estimated recipe of an inferred merge ("≈ 0.7 A + 0.3 B", "TIES-like: ..."), from any of its links. */
function recipeOf(edges: readonly DrawnEdge[]): string | undefined {
  for (const edge of edges) for (const fact of edge.facts) if (fact.recipe) return fact.recipe;
  return undefined;
}

export interface TooltipText {
  title: string;
  lines: string[];
}

export function nodeTooltip(node: LineageNode, model: GraphModel): TooltipText {
  const lines: string[] = [`Kind: ${node.kind}`];
  if (node.id !== node.label) lines.push(`Path: ${node.id}`);
  if (node.hubId) lines.push(`Hub id: ${node.hubId}`);
  if (node.revision) lines.push(`Revision: ${/^[0-9a-f]{40}$/i.test(node.revision) ? node.revision.slice(0, 12) : node.revision}`);
  if (node.parameters !== undefined) lines.push(`Parameters: ${formatParameters(node.parameters)} (${formatCount(node.parameters)})`);
  if (node.dtype) lines.push(`Dtype: ${node.dtype}`);
  if (node.bytes !== undefined) lines.push(`Size: ${formatBytes(node.bytes)}`);
  if (node.format) lines.push(`Format: ${node.format}`);
  const copies = node.locations?.length ?? 0;
  lines.push(copies === 0 ? 'Locations: none on disk (hub only)' : `Locations: ${copies}${copies > 1 ? ' identical copies' : ''}`);
  if (node.card?.license) lines.push(`License: ${node.card.license}`);
  if (node.source) lines.push(`Difference taken from: ${node.source.id ? (model.nodeById.get(node.source.id)?.label ?? node.source.label) : `${node.source.label} (not found on disk)`}`);
  const parents = model.incoming.get(node.id) ?? [];
  if (parents.length) {
    lines.push(parents.length === 1 ? 'Parent:' : `Parents (${parents.length}):`);
    for (const edge of parents) {
      lines.push(`  ${edge.undirected ? '—' : '←'} ${model.nodeById.get(edge.parent)?.label ?? edge.parent}: ${edge.facts.map(factText).join('; ')}`);
    }
    const recipe = recipeOf(parents);
    if (recipe) lines.push(`Recipe: ${recipe}`);
  }
  const children = model.outgoing.get(node.id)?.length ?? 0;
  if (children) lines.push(`Children: ${children}`);
  return { title: node.label, lines };
}

/** The accessible name of a node element. */
export function nodeAriaLabel(node: LineageNode, model: GraphModel): string {
  const parents = model.incoming.get(node.id)?.length ?? 0;
  const children = model.outgoing.get(node.id)?.length ?? 0;
  return `${node.label}, ${nodeSummary(node)}, ${parents} parent${parents === 1 ? '' : 's'}, ${children} child${children === 1 ? '' : 'ren'}`;
}

export function edgeTooltip(edge: DrawnEdge, model: GraphModel): TooltipText {
  const name = (id: string): string => model.nodeById.get(id)?.label ?? id;
  const lines = edge.facts.map(factText);
  // A merge link: the other parents and the recipe, so one hover tells how the merge was made.
  const siblings = (model.incoming.get(edge.child) ?? []).filter((e) => e !== edge && e.facts.some((f) => f.relation === 'merge'));
  if (edge.facts.some((f) => f.relation === 'merge') && siblings.length) lines.push(`Merged with: ${siblings.map((e) => name(e.parent)).join(', ')}`);
  const recipe = recipeOf([edge]);
  if (recipe) lines.push(`Recipe: ${recipe}`);
  return { title: `${name(edge.parent)} ${edge.undirected ? '—' : '→'} ${name(edge.child)}`, lines };
}
