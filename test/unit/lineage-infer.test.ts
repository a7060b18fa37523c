// The weight-based heuristics on synthetic families, where the true lineage is known by construction.
import assert from 'node:assert/strict';
import test from 'node:test';
import { WorkerPool } from '../../src/core/engine/pool';
import { groupMetrics, inferGroupEdges, type GroupMember, type LineageEdge } from '../../src/core/lineage';
import { groupMetricsOn } from '../../src/core/lineage/metrics';
import type { lineageTasks } from '../../src/core/lineage/tasks';
import { workerScript } from './helpers';

const L = 4000;

/** Seeded normal samples (mulberry32 + Box-Muller), so the families are the same on every run. */
function normals(seed: number, n: number, sigma: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

const add = (...vs: Float32Array[]) => vs.reduce((acc, v) => acc.map((x, i) => x + v[i]));
const scale = (v: Float32Array, k: number) => v.map((x) => x * k);

function infer(models: Record<string, Float32Array>, options: { declared?: LineageEdge[]; runs?: Record<string, number> } = {}): LineageEdge[] {
  const declared = options.declared ?? [];
  const members: GroupMember[] = Object.entries(models).map(([id, values]) => ({
    id,
    values,
    declaredParent: declared.some((e) => e.child === id),
    declaredChildren: declared.some((e) => e.parent === id),
    ...(options.runs?.[id] !== undefined ? { run: { dir: 'run', step: options.runs[id] } } : {}),
  }));
  const metrics = groupMetrics(members.map((m) => m.values), [{ name: 'w', offset: 0, count: L }], [L]);
  return inferGroupEdges(members, metrics, declared);
}

const summary = (edges: LineageEdge[]) => edges.map((e) => `${e.parent}->${e.child}:${e.relation}${e.undirected ? '?' : ''}`).sort();

function family() {
  const base = normals(1, L, 1);
  const d1 = normals(2, L, 0.3);
  const d2 = normals(3, L, 0.3);
  const step = normals(5, L, 0.15);
  const a = add(base, d1);
  const b = add(base, d2);
  const c = add(base, normals(4, L, 0.25));
  const k1 = add(base, step, normals(6, L, 0.05));
  const k2 = add(k1, step, normals(7, L, 0.05));
  const k3 = add(k2, step, normals(8, L, 0.05));
  const merged = add(base, scale(add(d1, d2), 0.5));
  const stranger = normals(9, L, 1);
  return { base, a, b, c, k1, k2, k3, merged, stranger };
}

test('a star of fine-tunes, a training run and a merge are recovered with their directions; a stranger stays apart', () => {
  const edges = infer(family());
  assert.deepEqual(summary(edges), [
    'a->merged:merge', 'b->merged:merge',
    'base->a:finetune', 'base->b:finetune', 'base->c:finetune', 'base->k1:finetune',
    'k1->k2:finetune', 'k2->k3:finetune',
  ]);
  for (const e of edges) {
    assert.equal(e.source, 'weights');
    assert.ok(e.confidence! >= 0.4 && e.confidence! <= 0.95, `${e.parent}->${e.child} confidence ${e.confidence}`);
  }
});

test('declared parents are not second-guessed, and trainer steps orient a run whatever the norms say', () => {
  const f = family();
  const declared: LineageEdge[] = [{ parent: 'elsewhere', child: 'a', relation: 'finetune', source: 'card' }];
  const edges = infer(f, { declared });
  assert.equal(edges.some((e) => e.child === 'a'), false, 'a already has its parent');
  assert.ok(edges.some((e) => e.parent === 'a' && e.child === 'merged'), 'a can still be a parent');

  // Shrink the later checkpoints (as weight decay would): norms now say k3 -> k2 -> k1, steps say otherwise.
  const shrunk = { base: f.base, k1: f.k1, k2: scale(f.k2, 0.97), k3: scale(f.k3, 0.94) };
  const oriented = infer(shrunk, { runs: { k1: 10, k2: 20, k3: 30 } });
  assert.ok(oriented.some((e) => e.parent === 'k1' && e.child === 'k2' && !e.undirected));
  assert.ok(oriented.some((e) => e.parent === 'k2' && e.child === 'k3' && !e.undirected));
});

test('without evidence of direction an edge is marked undirected', () => {
  const base = normals(11, L, 1);
  // A child whose norm did not grow: an update orthogonal to the weights, rescaled to the parent's norm.
  const moved = add(base, normals(12, L, 0.3));
  let nb = 0;
  let nm = 0;
  for (let i = 0; i < L; i++) {
    nb += base[i] * base[i];
    nm += moved[i] * moved[i];
  }
  const edges = infer({ parent: base, child: scale(moved, Math.sqrt(nb / nm)) });
  assert.equal(edges.length, 1);
  assert.equal(edges[0].undirected, true);
});

test('shared bit-identical values outrank distance: a closer model that shares none is not the parent', () => {
  const base = normals(21, L, 1);
  const drift = normals(22, L, 0.3);
  // A training run drifting along `drift` (every weight moves), and a fine-tune that moved 70% of
  // the weights further along the same direction: it ends up nearer the run's last checkpoint than
  // its true parent, but shares 30% bit-identical values with that parent and none with the run.
  const r1 = add(base, scale(drift, 0.5), normals(24, L, 0.05));
  const r2 = add(base, scale(drift, 0.9), normals(25, L, 0.05));
  const keep = normals(23, L, 1).map((x) => (x > 0.52 ? 1 : 0));
  const tuned = base.map((x, i) => (keep[i] ? x : x + 1.1 * drift[i]));
  const edges = infer({ base, r1, r2, tuned });
  assert.deepEqual(summary(edges), ['base->r1:finetune', 'base->tuned:finetune', 'r1->r2:finetune']);
  const tunedEdge = edges.find((e) => e.child === 'tuned')!;
  const runEdge = edges.find((e) => e.child === 'r1')!;
  assert.ok(tunedEdge.confidence! > runEdge.confidence!, 'bit-identical values are stronger evidence');
  // Without the shared values (every weight nudged), distance alone would pick the run's end.
  const nudged = tuned.map((x, i) => (keep[i] ? x + 1e-3 : x));
  assert.ok(infer({ base, r1, r2, tuned: nudged }).some((e) => e.parent === 'r2' && e.child === 'tuned'));
});

test('unrelated models of one architecture get no edge at all', () => {
  assert.deepEqual(infer({ x: normals(31, L, 1), y: normals(32, L, 1), z: normals(33, L, 0.5) }), []);
});

test('a large group (past EXACT_PAIRS_MAX) gets the same neighbours, distances and shared values whether its candidate search runs inline or on the worker pool', async () => {
  // A branching run of 400 checkpoints, in 3 tensors of unequal scale (with a value that cannot be decoded).
  const segments = [{ name: 'a', offset: 0, count: 96 }, { name: 'b', offset: 96, count: 64 }, { name: 'c', offset: 160, count: 37 }];
  const length = 197;
  const values: Float32Array[] = [normals(11, length, 0.05)];
  for (let i = 1; i < 400; i++) {
    const parent = values[Math.floor(i / 3)];
    const child = add(parent, normals(100 + i, length, 0.002));
    // Some leave part of their parent bit-identical (as partial fine-tunes do).
    if (i % 5 === 0) child.set(parent.subarray(0, 40 + (i % 50)));
    values.push(child);
  }
  for (const v of values) v.fill(Number.NaN, 160, 161);
  const numel = [96 * 64, 64, 37];
  const inline = groupMetrics(values, segments, numel);
  assert.equal(inline.indexed, true);
  const pool = new WorkerPool<typeof lineageTasks>({ workerScript, size: 2 });
  let tasks = 0;
  try {
    const pooled = await groupMetricsOn((search, from, to) => {
      tasks++;
      return pool.run('nearestCandidates', { search, from, to });
    }, pool.concurrency, values, segments, numel);
    assert.ok(tasks > 1, 'the search was split over the threads');
    assert.deepEqual(pooled.neighbours, inline.neighbours);
    let sharing = 0;
    for (let i = 0; i < values.length; i++) {
      for (const j of inline.neighbours[i]) {
        assert.equal(pooled.dist(i, j), inline.dist(i, j));
        assert.equal(pooled.shared(i, j), inline.shared(i, j));
        if (inline.shared(i, j) > 0) sharing++;
      }
    }
    assert.ok(sharing > 0, 'some neighbours share values');
  } finally {
    await pool.dispose();
  }
});
