// Scores a lineage graph against a generated zoo's truth (lineage-zoo.ts).
import * as path from 'node:path';
import type { LineageEdge, LineageGraph } from '../../src/core/lineage';
import type { Zoo } from './lineage-zoo';

export interface ZooScore {
  trueEdges: number;
  foundEdges: number;
  /** Found edges joining a true pair (either direction). */
  rightPairs: number;
  /** Found edges joining a true pair, directed (not marked undirected) and the right way round. */
  rightDirected: number;
  /** Found edges joining a true pair but marked undirected or pointing the wrong way. */
  wrongOrUnsureDirection: number;
  merges: number;
  /** Merges whose 'merge' parents are exactly the true parents (and the base when over one). */
  mergesExact: number;
  /** Mean absolute error of the estimated coefficients of exactly recovered linear / task-arithmetic merges. */
  coefficientErrors: number[];
  casts: number;
  castsRecognised: number;
  copies: number;
  copiesRecognised: number;
  adapters: number;
  adaptersRecognised: number;
  /** Edges touching a model that is unrelated to everything else. */
  unrelatedEdges: number;
  /** Found edges that join no true pair. */
  falseEdges: LineageEdge[];
  /** True links not found (as node ids). */
  missed: { parent: string; child: string; relation: string }[];
  wrongMerges: { child: string; method: string; expected: string[]; found: string[] }[];
}

const key = (a: string, b: string) => (a < b ? `${a}\0${b}` : `${b}\0${a}`);

/** `root` is the folder the zoo was written to and the graph built from. */
export function scoreZoo(zoo: Zoo, graph: LineageGraph, root: string): ZooScore {
  // Model path -> node id (copies share a node).
  const nodeOf = new Map<string, string>();
  for (const node of graph.nodes) {
    for (const location of node.locations ?? []) {
      const relative = path.relative(root, location).split(path.sep).join('/');
      nodeOf.set(relative.endsWith('/model.safetensors') ? relative.slice(0, -'/model.safetensors'.length) : relative, node.id);
    }
  }
  const id = (p: string) => nodeOf.get(p) ?? `missing:${p}`;
  const truth = zoo.truth;
  const trueByPair = new Map<string, { parent: string; child: string; relation: string }>();
  for (const e of truth.edges) trueByPair.set(key(id(e.parent), id(e.child)), { parent: id(e.parent), child: id(e.child), relation: e.relation });

  const found = graph.edges;
  const foundByPair = new Map<string, LineageEdge>();
  for (const e of found) foundByPair.set(key(e.parent, e.child), e);
  let rightPairs = 0;
  let rightDirected = 0;
  const falseEdges: LineageEdge[] = [];
  for (const e of found) {
    const t = trueByPair.get(key(e.parent, e.child));
    if (!t) {
      falseEdges.push(e);
      continue;
    }
    rightPairs++;
    if (!e.undirected && e.parent === t.parent) rightDirected++;
  }
  const missed = [...trueByPair.entries()].filter(([k]) => !foundByPair.has(k)).map(([, t]) => t);

  let mergesExact = 0;
  const coefficientErrors: number[] = [];
  const wrongMerges: ZooScore['wrongMerges'] = [];
  for (const m of truth.merges) {
    const expected = [...m.parents, ...(m.base ? [m.base] : [])].map(id).sort();
    const incoming = found.filter((e) => e.child === id(m.child) && e.relation === 'merge');
    const parents = incoming.map((e) => e.parent).sort();
    if (JSON.stringify(parents) === JSON.stringify(expected)) {
      mergesExact++;
      if (m.method === 'linear' || m.method === 'task_arithmetic') {
        const errors = m.parents.map((p, i) => Math.abs((incoming.find((e) => e.parent === id(p))?.weight ?? Number.NaN) - m.coefficients[i]));
        coefficientErrors.push(errors.reduce((a, b) => a + b, 0) / errors.length);
      }
    } else wrongMerges.push({ child: id(m.child), method: m.method, expected, found: parents });
  }

  const castsRecognised = truth.casts.filter((c) => found.some((e) => e.parent === id(c.source) && e.child === id(c.cast) && e.relation === 'quantized' && !e.undirected)).length;
  const copiesRecognised = truth.copies.filter((c) => id(c.original) === id(c.copy) && !id(c.copy).startsWith('missing:')).length;
  const adaptersRecognised = truth.adapters.filter((a) => found.some((e) => key(e.parent, e.child) === key(id(a.parent), id(a.child)) && e.relation === 'adapter')).length;
  const unrelated = new Set(truth.unrelated.map(id));
  const unrelatedEdges = found.filter((e) => unrelated.has(e.parent) || unrelated.has(e.child)).length;
  return {
    trueEdges: trueByPair.size,
    foundEdges: found.length,
    rightPairs,
    rightDirected,
    wrongOrUnsureDirection: rightPairs - rightDirected,
    merges: truth.merges.length,
    mergesExact,
    coefficientErrors,
    casts: truth.casts.length,
    castsRecognised,
    copies: truth.copies.length,
    copiesRecognised,
    adapters: truth.adapters.length,
    adaptersRecognised,
    unrelatedEdges,
    falseEdges,
    missed,
    wrongMerges,
  };
}

export interface ScoreTotals {
  zoos: number;
  precision: number;
  recall: number;
  directedPrecision: number;
  directedRecall: number;
  mergesExactShare: number;
  meanCoefficientError: number;
  castsRecognised: string;
  copiesRecognised: string;
  adaptersRecognised: string;
  unrelatedEdges: number;
}

export function totalScores(scores: readonly ZooScore[]): ScoreTotals {
  const sum = (f: (s: ZooScore) => number) => scores.reduce((a, s) => a + f(s), 0);
  const errors = scores.flatMap((s) => s.coefficientErrors);
  return {
    zoos: scores.length,
    precision: sum((s) => s.rightPairs) / Math.max(1, sum((s) => s.foundEdges)),
    recall: sum((s) => s.rightPairs) / Math.max(1, sum((s) => s.trueEdges)),
    directedPrecision: sum((s) => s.rightDirected) / Math.max(1, sum((s) => s.foundEdges)),
    directedRecall: sum((s) => s.rightDirected) / Math.max(1, sum((s) => s.trueEdges)),
    mergesExactShare: sum((s) => s.mergesExact) / Math.max(1, sum((s) => s.merges)),
    meanCoefficientError: errors.length ? errors.reduce((a, b) => a + b, 0) / errors.length : 0,
    castsRecognised: `${sum((s) => s.castsRecognised)}/${sum((s) => s.casts)}`,
    copiesRecognised: `${sum((s) => s.copiesRecognised)}/${sum((s) => s.copies)}`,
    adaptersRecognised: `${sum((s) => s.adaptersRecognised)}/${sum((s) => s.adapters)}`,
    unrelatedEdges: sum((s) => s.unrelatedEdges),
  };
}
