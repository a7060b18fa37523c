// `graft lineage <dir> [--json] [--no-infer] [--hf-cache <dir> | --no-hf-cache]`: where every model
// under a folder came from, from what its files declare and, where they declare nothing, its weights.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scanCatalog } from '../../core/catalog';
import { buildLineage } from '../../core/lineage/build';
import type { LineageEdge, LineageGraph, LineageNode } from '../../core/lineage/types';
import { describeFsError } from '../../core/files';
import { escapeControl } from '../../core/text';
import { displayPath, parseCommandLine } from '../args';
import { UsageError, type CliCommand } from '../context';
import { writeJson, writeLines } from '../output';

const USAGE = `Usage: graft lineage <dir> [--json] [--no-infer] [--hf-cache <dir> | --no-hf-cache]

Finds every model under <dir> (HF model folders, single .safetensors files, sharded sets, PEFT
adapters, trainer checkpoints, merges, GGUF files) and prints where each came from: model cards
(base_model), adapter_config.json, mergekit_config.yml, graft_provenance.json and trainer runs.
Checkpoints that declare nothing are linked by comparing a small sample of their weights.
Identical copies (e.g. a Hugging Face cache snapshot and a local folder) are one model.

Options:
  --json          print the graph as JSON: {"nodes": [...], "edges": [...]}
  --no-infer      only declared edges (identical copies are still recognised)
  --hf-cache <d>  also scan this Hugging Face hub cache (e.g. ~/.cache/huggingface/hub)
  --no-hf-cache   scan only <dir> (the default, so runs are reproducible on any machine)

Node ids are paths relative to <dir>, or hub:<org/name> for models referenced but not on disk.
Graft weight patches (graft patch extract) are nodes of kind patch under their base; they and
adapters made by graft lora extract note the fine-tune they were taken from ("from ...").
Edges: relation finetune | adapter | merge | quantized | checkpoint | copy | patch, and source
card | adapter_config | mergekit_config | trainer | provenance | patch_metadata | weights (with a
confidence).`;

export const lineageCommand: CliCommand = {
  name: 'lineage',
  summary: 'show where every model under a folder came from',
  usage: USAGE,
  async run(args, ctx) {
    const { values, positionals } = parseOptions(args);
    if (positionals.length !== 1) {
      throw new UsageError(positionals.length === 0 ? 'give the folder to scan.' : `expected one folder, got ${positionals.length}: ${positionals.join(' ')}.`);
    }
    if (values['hf-cache'] !== undefined && values['no-hf-cache']) throw new UsageError('--hf-cache and --no-hf-cache contradict each other; give one.');
    const dir = path.resolve(ctx.cwd, positionals[0]);
    checkFolder(dir, '<dir>');
    const hfCache = values['hf-cache'] !== undefined ? path.resolve(ctx.cwd, values['hf-cache']) : null;
    if (hfCache) checkFolder(hfCache, '--hf-cache');

    // All threads start loading now, while the roots are resolved, not one at the scan's first task.
    ctx.startRunner?.();
    const catalog = await scanCatalog([dir], { hfCache, signal: ctx.signal, runner: ctx.runner() });
    const graph = await buildLineage(catalog, { root: dir, infer: !values['no-infer'], runner: ctx.runner(), signal: ctx.signal });
    for (const problem of catalog.problems) ctx.stderr(`graft lineage: warning: ${escapeControl(`${displayPath(problem.path, ctx.cwd)}: ${problem.message}`)}\n`);
    if (values.json) writeJson(ctx.stdout, graph);
    else writeLines(ctx.stdout, lineageTreeLines(graph));
    return 0;
  },
};

function parseOptions(args: string[]) {
  return parseCommandLine(args, {
    json: { type: 'boolean', default: false },
    'no-infer': { type: 'boolean', default: false },
    'hf-cache': { type: 'string' },
    'no-hf-cache': { type: 'boolean', default: false },
  });
}

function checkFolder(dir: string, what: string): void {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`${what} "${dir}" does not exist; check the path.`);
    throw new UsageError(`${what} "${dir}" cannot be opened: ${describeFsError(error)}.`);
  }
  if (!stats.isDirectory()) throw new UsageError(`${what} "${dir}" is a file; give the folder that holds your models.`);
}

function describeNode(node: LineageNode): string {
  const facts: string[] = [node.kind];
  if (node.hubId && !node.id.startsWith('hub:')) facts.push(node.hubId);
  if (node.revision) facts.push(`rev ${node.revision.slice(0, 10)}`);
  if (node.parameters !== undefined) facts.push(`${formatCount(node.parameters)} params`);
  if (node.dtype) facts.push(node.dtype);
  if (node.format === 'gguf') facts.push('gguf');
  if ((node.locations?.length ?? 0) > 1) facts.push(`${node.locations!.length} copies`);
  if (node.source) facts.push(`from ${node.source.id ?? node.source.label}`);
  return escapeControl(`${node.id}  (${facts.join(', ')})`);
}

function describeEdge(edge: LineageEdge): string {
  let text = `${edge.relation} <- ${edge.source}`;
  if (edge.confidence !== undefined) text += ` ${edge.confidence.toFixed(2)}`;
  if (edge.undirected) text += ', direction unsure';
  return `[${escapeControl(text)}]`;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/**
 * The graph as an indented tree: roots (nodes without parents: bases, external models, lone
 * checkpoints) at the left, each child under its parent with the edge's relation and source. A
 * node with several parents (a merge) is printed in full once and referenced under its other parents.
 */
export function formatLineageTree(graph: LineageGraph): string {
  return lineageTreeLines(graph).join('\n') + '\n';
}

function lineageTreeLines(graph: LineageGraph): string[] {
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const children = new Map<string, LineageEdge[]>();
  const hasParent = new Set<string>();
  for (const edge of graph.edges) {
    children.set(edge.parent, [...(children.get(edge.parent) ?? []), edge]);
    hasParent.add(edge.child);
  }
  const lines: string[] = [];
  const printed = new Set<string>();
  const walk = (id: string, prefix: string, childPrefix: string, edge?: LineageEdge) => {
    const node = nodes.get(id);
    const label = node ? describeNode(node) : escapeControl(id);
    const edgeText = edge ? `${describeEdge(edge)} ` : '';
    if (printed.has(id)) {
      lines.push(`${prefix}${edgeText}${escapeControl(id)}  (see above)`);
      return;
    }
    printed.add(id);
    lines.push(`${prefix}${edgeText}${label}`);
    const kids = children.get(id) ?? [];
    kids.forEach((child, i) => {
      const last = i === kids.length - 1;
      walk(child.child, `${childPrefix}${last ? '└── ' : '├── '}`, `${childPrefix}${last ? '    ' : '│   '}`, child);
    });
  };
  const roots = graph.nodes.filter((n) => !hasParent.has(n.id));
  for (const root of roots) walk(root.id, '', '');
  // Nodes only reachable through a cycle of declared edges (contradictory cards) still get listed.
  for (const node of graph.nodes) if (!printed.has(node.id)) walk(node.id, '', '');
  const declared = graph.edges.filter((e) => e.source !== 'weights').length;
  const inferred = graph.edges.length - declared;
  lines.push('');
  lines.push(`${graph.nodes.length} models, ${graph.edges.length} links (${declared} declared, ${inferred} inferred from weights).`);
  return lines;
}
