// A layered (Sugiyama-style) layout for the lineage DAG, computed once per graph:
//   1. split into connected components, laid out independently and packed in rows;
//   2. break cycles (inferred edges may close one) by reversing DFS back edges;
//   3. longest-path layering, then a network-simplex-like pass that moves each node to the
//      end of its free range that shortens its edges (sources sit just above their children);
//   4. dummy vertices on edges spanning several layers;
//   5. barycenter sweeps plus adjacent swaps to reduce crossings, keeping the best order seen;
//   6. x coordinates by alternating sweeps that pull each vertex towards its neighbours, solved
//      per layer as an isotonic regression with minimum separations (so order is kept, no overlap).
// Pure: no DOM, so it can be measured and tested outside the webview.

export interface LayoutNodeInput {
  id: string;
  width: number;
  height: number;
}

export interface LayoutEdgeInput {
  parent: string;
  child: string;
}

export interface LayoutOptions {
  /** Vertical space between layers. */
  layerGap: number;
  /** Horizontal space between two nodes of a layer. */
  nodeGap: number;
  /** Horizontal space next to an edge passing through a layer. */
  edgeGap: number;
  /** Space between packed components. */
  componentGap: number;
  /** Crossing-reduction rounds (each a down and an up sweep). */
  sweeps: number;
  /** Width/height ratio the component packing aims for. */
  aspectRatio: number;
}

export const defaultLayoutOptions: LayoutOptions = {
  layerGap: 56,
  nodeGap: 24,
  edgeGap: 16,
  componentGap: 64,
  sweeps: 8,
  aspectRatio: 1.6,
};

/** Centre coordinates. */
export interface PlacedNode {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Layer inside its component (0 = top). */
  layer: number;
  component: number;
}

export interface RoutedEdge {
  /** Index into the input edge array. */
  index: number;
  /** Polyline from the parent's bottom to the child's top (or the reverse for a reversed edge). */
  points: [number, number][];
  /** Drawn against the layer direction because it closed a cycle. */
  reversed: boolean;
}

export interface Layout {
  nodes: Map<string, PlacedNode>;
  edges: RoutedEdge[];
  width: number;
  height: number;
  /** Edge crossings left after ordering (summed over components). */
  crossings: number;
  components: number;
}

/** Lays out nodes and edges; edges to unknown nodes and self loops are left out of `edges`. */
export function layoutDag(nodes: readonly LayoutNodeInput[], edges: readonly LayoutEdgeInput[], options: LayoutOptions = defaultLayoutOptions): Layout {
  const indexOf = new Map<string, number>();
  nodes.forEach((node, i) => {
    if (!indexOf.has(node.id)) indexOf.set(node.id, i);
  });
  const usable: { index: number; from: number; to: number }[] = [];
  edges.forEach((edge, index) => {
    const from = indexOf.get(edge.parent);
    const to = indexOf.get(edge.child);
    if (from !== undefined && to !== undefined && from !== to) usable.push({ index, from, to });
  });

  const componentOf = findComponents(nodes.length, usable, indexOf, nodes);
  const componentCount = componentOf.reduce((max, c) => Math.max(max, c + 1), 0);
  const members: number[][] = Array.from({ length: componentCount }, () => []);
  componentOf.forEach((c, i) => {
    if (c >= 0) members[c].push(i);
  });
  const componentEdges: { index: number; from: number; to: number }[][] = Array.from({ length: componentCount }, () => []);
  for (const edge of usable) componentEdges[componentOf[edge.from]].push(edge);

  const laidOut = members.map((list, c) => layoutComponent(list, componentEdges[c], nodes, options));

  // Pack components in rows: biggest first, wrapping near a width that gives the aimed aspect ratio.
  const order = laidOut.map((_, c) => c).sort((a, b) => members[b].length - members[a].length || a - b);
  const area = laidOut.reduce((sum, l) => sum + (l.width + options.componentGap) * (l.height + options.componentGap), 0);
  const widest = laidOut.reduce((max, l) => Math.max(max, l.width), 0);
  const rowLimit = Math.max(widest, Math.sqrt(area * options.aspectRatio));
  const placedNodes = new Map<string, PlacedNode>();
  const routed: RoutedEdge[] = [];
  let cursorX = 0;
  let cursorY = 0;
  let rowHeight = 0;
  let width = 0;
  let crossings = 0;
  for (const c of order) {
    const part = laidOut[c];
    if (cursorX > 0 && cursorX + part.width > rowLimit) {
      cursorX = 0;
      cursorY += rowHeight + options.componentGap;
      rowHeight = 0;
    }
    for (const node of part.nodes) {
      placedNodes.set(node.id, { ...node, x: node.x + cursorX, y: node.y + cursorY, component: c });
    }
    for (const edge of part.edges) {
      routed.push({ ...edge, points: edge.points.map(([x, y]) => [x + cursorX, y + cursorY]) });
    }
    crossings += part.crossings;
    width = Math.max(width, cursorX + part.width);
    rowHeight = Math.max(rowHeight, part.height);
    cursorX += part.width + options.componentGap;
  }
  routed.sort((a, b) => a.index - b.index);
  return { nodes: placedNodes, edges: routed, width, height: cursorY + rowHeight, crossings, components: componentCount };
}

function findComponents(count: number, edges: { from: number; to: number }[], indexOf: Map<string, number>, nodes: readonly LayoutNodeInput[]): number[] {
  const parent = Array.from({ length: count }, (_, i) => i);
  const root = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  for (const { from, to } of edges) {
    const a = root(from);
    const b = root(to);
    if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
  }
  // Duplicate ids keep only their first occurrence (-1 = not laid out).
  const numberOf = new Map<number, number>();
  return nodes.map((node, i) => {
    if (indexOf.get(node.id) !== i) return -1;
    const r = root(i);
    let n = numberOf.get(r);
    if (n === undefined) {
      n = numberOf.size;
      numberOf.set(r, n);
    }
    return n;
  });
}

interface ComponentLayout {
  nodes: Omit<PlacedNode, 'component'>[];
  edges: RoutedEdge[];
  width: number;
  height: number;
  crossings: number;
}

/** A real node or a dummy vertex in the layered graph. */
interface Vertex {
  /** Input node index, or -1 for a dummy. */
  node: number;
  layer: number;
  width: number;
  up: number[];
  down: number[];
  x: number;
}

function layoutComponent(list: number[], edges: { index: number; from: number; to: number }[], nodes: readonly LayoutNodeInput[], options: LayoutOptions): ComponentLayout {
  const local = new Map<number, number>();
  list.forEach((n, i) => local.set(n, i));
  const n = list.length;
  const oriented = edges.map((edge) => ({ index: edge.index, from: local.get(edge.from)!, to: local.get(edge.to)!, reversed: false }));
  reverseBackEdges(n, oriented);
  const layer = assignLayers(n, oriented);

  // Vertices: real nodes first, dummies after; each edge becomes a chain of segments.
  const vertices: Vertex[] = list.map((node, i) => ({ node, layer: layer[i], width: nodes[node].width, up: [], down: [], x: 0 }));
  const chains: number[][] = [];
  for (const edge of oriented) {
    const chain = [edge.from];
    for (let l = layer[edge.from] + 1; l < layer[edge.to]; l++) {
      vertices.push({ node: -1, layer: l, width: 0, up: [], down: [], x: 0 });
      chain.push(vertices.length - 1);
    }
    chain.push(edge.to);
    for (let i = 1; i < chain.length; i++) {
      vertices[chain[i - 1]].down.push(chain[i]);
      vertices[chain[i]].up.push(chain[i - 1]);
    }
    chains.push(chain);
  }

  const layerCount = layer.reduce((max, l) => Math.max(max, l + 1), 0);
  const layers = orderLayers(vertices, layerCount, n, options.sweeps);
  const crossings = totalCrossings(layers, vertices);
  assignX(layers, vertices, options);

  // y: each layer as tall as its tallest node.
  const layerHeight = new Array<number>(layerCount).fill(0);
  for (let i = 0; i < n; i++) layerHeight[layer[i]] = Math.max(layerHeight[layer[i]], nodes[list[i]].height);
  const layerTop: number[] = [];
  let y = 0;
  for (let l = 0; l < layerCount; l++) {
    layerTop.push(y);
    y += layerHeight[l] + (l < layerCount - 1 ? options.layerGap : 0);
  }
  const height = y;

  let minX = Infinity;
  let maxX = -Infinity;
  for (const v of vertices) {
    minX = Math.min(minX, v.x - v.width / 2);
    maxX = Math.max(maxX, v.x + v.width / 2);
  }
  const shift = -minX;

  const placed = list.map((node, i) => ({
    id: nodes[node].id,
    x: vertices[i].x + shift,
    y: layerTop[layer[i]] + layerHeight[layer[i]] / 2,
    width: nodes[node].width,
    height: nodes[node].height,
    layer: layer[i],
  }));

  const ports = portOffsets(vertices, n);
  const routed: RoutedEdge[] = oriented.map((edge, e) => {
    const chain = chains[e];
    const head = placed[edge.from];
    const tail = placed[edge.to];
    const points: [number, number][] = [[head.x + ports.out.get(`${edge.from}>${chain[1]}`)!, head.y + head.height / 2]];
    for (let i = 1; i < chain.length - 1; i++) {
      const v = vertices[chain[i]];
      points.push([v.x + shift, layerTop[v.layer]], [v.x + shift, layerTop[v.layer] + layerHeight[v.layer]]);
    }
    points.push([tail.x + ports.in.get(`${chain[chain.length - 2]}>${edge.to}`)!, tail.y - tail.height / 2]);
    if (edge.reversed) points.reverse();
    return { index: edge.index, points, reversed: edge.reversed };
  });

  return { nodes: placed, edges: routed, width: maxX - minX, height, crossings };
}

/** Reverses the edges that close a cycle, found by an iterative DFS started from sources first. */
function reverseBackEdges(n: number, edges: { from: number; to: number; reversed: boolean }[]): void {
  const out: number[][] = Array.from({ length: n }, () => []);
  const indegree = new Array<number>(n).fill(0);
  edges.forEach((edge, e) => {
    out[edge.from].push(e);
    indegree[edge.to]++;
  });
  const state = new Uint8Array(n); // 0 unvisited, 1 on stack, 2 done
  const starts = [...Array(n).keys()].sort((a, b) => (indegree[a] === 0 ? 0 : 1) - (indegree[b] === 0 ? 0 : 1) || a - b);
  for (const start of starts) {
    if (state[start]) continue;
    const stack: { v: number; next: number }[] = [{ v: start, next: 0 }];
    state[start] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.next < out[top.v].length) {
        const e = out[top.v][top.next++];
        const w = edges[e].to;
        if (state[w] === 1) edges[e].reversed = true;
        else if (state[w] === 0) {
          state[w] = 1;
          stack.push({ v: w, next: 0 });
        }
      } else {
        state[top.v] = 2;
        stack.pop();
      }
    }
  }
  for (const edge of edges) {
    if (edge.reversed) [edge.from, edge.to] = [edge.to, edge.from];
  }
}

/** Longest-path layers, then each node slides within its free range towards its majority of edges. */
function assignLayers(n: number, edges: { from: number; to: number }[]): number[] {
  const parents: number[][] = Array.from({ length: n }, () => []);
  const children: number[][] = Array.from({ length: n }, () => []);
  for (const { from, to } of edges) {
    children[from].push(to);
    parents[to].push(from);
  }
  const layer = new Array<number>(n).fill(0);
  const pending = parents.map((p) => p.length);
  const queue = [...Array(n).keys()].filter((v) => pending[v] === 0);
  const topo: number[] = [];
  while (queue.length) {
    const v = queue.shift()!;
    topo.push(v);
    for (const w of children[v]) {
      layer[w] = Math.max(layer[w], layer[v] + 1);
      if (--pending[w] === 0) queue.push(w);
    }
  }
  // Moving a node one layer down lengthens its incoming edges and shortens its outgoing ones, so
  // it goes to the bottom of its range if it has more children than parents, to the top if fewer.
  for (let pass = 0; pass < 8; pass++) {
    let moved = false;
    for (const v of topo) {
      const top = parents[v].reduce((max, p) => Math.max(max, layer[p] + 1), 0);
      const bottom = children[v].reduce((min, c) => Math.min(min, layer[c] - 1), Infinity);
      const target = children[v].length > parents[v].length ? bottom : parents[v].length > children[v].length ? top : layer[v];
      if (Number.isFinite(target) && target !== layer[v]) {
        layer[v] = target;
        moved = true;
      }
    }
    if (!moved) break;
  }
  const min = layer.reduce((m, l) => Math.min(m, l), Infinity);
  return layer.map((l) => l - (Number.isFinite(min) ? min : 0));
}

/** Orders vertices inside each layer; returns the layers as vertex lists, left to right. */
function orderLayers(vertices: Vertex[], layerCount: number, realCount: number, sweeps: number): number[][] {
  // Initial order: depth-first from the real sources, so subtrees start out together.
  const layers: number[][] = Array.from({ length: layerCount }, () => []);
  const seen = new Uint8Array(vertices.length);
  const visit = (start: number): void => {
    const stack = [start];
    while (stack.length) {
      const v = stack.pop()!;
      if (seen[v]) continue;
      seen[v] = 1;
      layers[vertices[v].layer].push(v);
      for (let i = vertices[v].down.length - 1; i >= 0; i--) stack.push(vertices[v].down[i]);
    }
  };
  for (let v = 0; v < realCount; v++) if (vertices[v].up.length === 0) visit(v);
  for (let v = 0; v < vertices.length; v++) visit(v);

  const position = new Float64Array(vertices.length);
  const reindex = (l: number): void => layers[l].forEach((v, i) => (position[v] = i));
  for (let l = 0; l < layerCount; l++) reindex(l);

  let best = layers.map((list) => list.slice());
  let bestCrossings = totalCrossings(layers, vertices);
  for (let round = 0; round < sweeps && bestCrossings > 0; round++) {
    const downward = round % 2 === 0;
    for (let step = 1; step < layerCount; step++) {
      const l = downward ? step : layerCount - 1 - step;
      const key = new Map<number, number>();
      for (const v of layers[l]) {
        const neighbours = downward ? vertices[v].up : vertices[v].down;
        // A vertex without neighbours on that side keeps its place.
        key.set(v, neighbours.length ? neighbours.reduce((s, w) => s + position[w], 0) / neighbours.length : position[v]);
      }
      layers[l].sort((a, b) => key.get(a)! - key.get(b)! || position[a] - position[b]);
      reindex(l);
    }
    transpose(layers, vertices, position);
    const crossings = totalCrossings(layers, vertices);
    if (crossings < bestCrossings) {
      bestCrossings = crossings;
      best = layers.map((list) => list.slice());
    }
  }
  return best;
}

/** Swaps adjacent vertices while that removes crossings with both neighbouring layers. */
function transpose(layers: number[][], vertices: Vertex[], position: Float64Array): void {
  const pairCrossings = (a: number, b: number): number => {
    // Crossings among edges of a and b when a is left of b.
    let count = 0;
    for (const side of ['up', 'down'] as const) {
      for (const p of vertices[a][side]) for (const q of vertices[b][side]) if (position[p] > position[q]) count++;
    }
    return count;
  };
  for (let pass = 0; pass < 4; pass++) {
    let improved = false;
    for (const list of layers) {
      for (let i = 0; i + 1 < list.length; i++) {
        const a = list[i];
        const b = list[i + 1];
        if (pairCrossings(b, a) < pairCrossings(a, b)) {
          list[i] = b;
          list[i + 1] = a;
          position[a] = i + 1;
          position[b] = i;
          improved = true;
        }
      }
    }
    if (!improved) break;
  }
}

function totalCrossings(layers: number[][], vertices: Vertex[]): number {
  const position = new Map<number, number>();
  for (const list of layers) list.forEach((v, i) => position.set(v, i));
  let total = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const pairs: [number, number][] = [];
    for (const v of layers[l]) for (const w of vertices[v].down) pairs.push([position.get(v)!, position.get(w)!]);
    total += countInversions(pairs, layers[l + 1].length);
  }
  return total;
}

/** Crossings between two layers: inversions of the lower ends once sorted by upper end (Fenwick tree). */
export function countInversions(pairs: [number, number][], lowerSize: number): number {
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const tree = new Int32Array(lowerSize + 1);
  let inversions = 0;
  let inserted = 0;
  for (const [, lower] of pairs) {
    // Earlier edges that end strictly right of this one cross it.
    let atMost = 0;
    for (let i = lower + 1; i > 0; i -= i & -i) atMost += tree[i];
    inversions += inserted - atMost;
    for (let i = lower + 1; i <= lowerSize; i += i & -i) tree[i]++;
    inserted++;
  }
  return inversions;
}

/** Alternating sweeps towards the mean of the neighbours above, then below, then both; then one-to-one links straightened. */
function assignX(layers: number[][], vertices: Vertex[], options: LayoutOptions): void {
  for (const list of layers) {
    let x = 0;
    list.forEach((v, i) => {
      if (i > 0) x += separation(vertices[list[i - 1]], vertices[v], options);
      vertices[v].x = x;
    });
  }
  const mean = (v: number, sides: ('up' | 'down')[]): number => {
    const neighbours = sides.flatMap((side) => vertices[v][side]);
    return neighbours.length ? neighbours.reduce((sum, w) => sum + vertices[w].x, 0) / neighbours.length : vertices[v].x;
  };
  // A one-to-one link (trainer chains, long edges through dummies) should run straight down:
  // line the child up under the parent, or where the child's layer has no room, the parent
  // up over the child.
  const oneToOne = (v: number, side: 'up' | 'down'): number => {
    const other = vertices[v][side];
    const back = side === 'up' ? 'down' : 'up';
    return other.length === 1 && vertices[other[0]][back].length === 1 ? vertices[other[0]].x : vertices[v].x;
  };
  const sweep = (desiredOf: (v: number) => number, order: number[]): void => {
    for (const l of order) {
      const list = layers[l];
      const desired = list.map(desiredOf);
      // Dummies pull harder so long edges run straight; well-connected nodes over leaves.
      const weights = list.map((v) => (vertices[v].node < 0 ? 4 : 1 + 0.5 * (vertices[v].up.length + vertices[v].down.length)));
      const gaps = list.slice(1).map((v, i) => separation(vertices[list[i]], vertices[v], options));
      const xs = placeInOrder(desired, weights, gaps);
      list.forEach((v, i) => (vertices[v].x = xs[i]));
    }
  };
  const down = layers.map((_, l) => l);
  const up = down.slice().reverse();
  for (let round = 0; round < 6; round++) {
    sweep((v) => mean(v, ['up']), down);
    sweep((v) => mean(v, ['down']), up);
  }
  for (let round = 0; round < 4; round++) {
    sweep((v) => mean(v, ['up', 'down']), down);
    sweep((v) => mean(v, ['up', 'down']), up);
  }
  sweep((v) => oneToOne(v, 'up'), down);
  sweep((v) => oneToOne(v, 'down'), up);
  sweep((v) => oneToOne(v, 'up'), down);
}

function separation(left: Vertex, right: Vertex, options: LayoutOptions): number {
  const gap = left.node >= 0 && right.node >= 0 ? options.nodeGap : options.edgeGap;
  return left.width / 2 + right.width / 2 + gap;
}

/**
 * Positions closest (weighted least squares) to `desired` with x[i+1] - x[i] >= gaps[i]: shifting by
 * the cumulative gaps turns it into isotonic regression, solved by pooling adjacent violators.
 */
export function placeInOrder(desired: number[], weights: number[], gaps: number[]): number[] {
  const offset = [0];
  for (const gap of gaps) offset.push(offset[offset.length - 1] + gap);
  const blocks: { mean: number; weight: number; count: number }[] = [];
  desired.forEach((d, i) => {
    let block = { mean: d - offset[i], weight: weights[i], count: 1 };
    while (blocks.length && blocks[blocks.length - 1].mean >= block.mean) {
      const prev = blocks.pop()!;
      const weight = prev.weight + block.weight;
      block = { mean: (prev.mean * prev.weight + block.mean * block.weight) / weight, weight, count: prev.count + block.count };
    }
    blocks.push(block);
  });
  const out: number[] = [];
  for (const block of blocks) for (let j = 0; j < block.count; j++) out.push(block.mean + offset[out.length]);
  return out;
}

/** Horizontal offsets of the edge ends on each node, spread out in the order of the other ends. */
function portOffsets(vertices: Vertex[], realCount: number): { out: Map<string, number>; in: Map<string, number> } {
  const out = new Map<string, number>();
  const into = new Map<string, number>();
  for (let v = 0; v < realCount; v++) {
    const spread = (others: number[], record: (w: number, offset: number) => void): void => {
      const sorted = others.slice().sort((a, b) => vertices[a].x - vertices[b].x);
      const step = Math.min(14, vertices[v].width / (sorted.length + 1));
      sorted.forEach((w, i) => record(w, (i - (sorted.length - 1) / 2) * step));
    };
    spread(vertices[v].down, (w, offset) => out.set(`${v}>${w}`, offset));
    spread(vertices[v].up, (w, offset) => into.set(`${w}>${v}`, offset));
  }
  return { out, in: into };
}
