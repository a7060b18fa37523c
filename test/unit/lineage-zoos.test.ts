// Weight-based lineage on generated zoos (test/support/lineage-zoo.ts) whose truth is known: the
// scores the bench reports over 50 zoos, asserted here on a few held-out seeds.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { scanCatalog } from '../../src/core/catalog';
import { buildLineage, type LineageGraph } from '../../src/core/lineage';
import { generateZoo, writeZoo, type Zoo } from '../support/lineage-zoo';
import { scoreZoo, totalScores, type ZooScore } from '../support/lineage-score';
import { tempDir } from './helpers';

async function lineageOfZoo(zoo: Zoo): Promise<{ graph: LineageGraph; score: ZooScore; root: string }> {
  const root = tempDir('graft-zoo-');
  await writeZoo(root, zoo);
  const catalog = await scanCatalog([root]);
  assert.deepEqual(catalog.problems, []);
  assert.equal(catalog.entries.some((e) => e.card || e.adapter || e.merge || e.trainer), false, 'nothing is declared');
  const graph = await buildLineage(catalog, { root, infer: true });
  return { graph, score: scoreZoo(zoo, graph, root), root };
}

test('five held-out zoos: edge precision and recall, merges, casts, copies and strangers', async (t) => {
  const scores: ZooScore[] = [];
  for (const seed of [101, 102, 103, 104, 105]) {
    const { score, root } = await lineageOfZoo(generateZoo(seed));
    fs.rmSync(root, { recursive: true });
    scores.push(score);
  }
  const total = totalScores(scores);
  t.diagnostic(JSON.stringify(total));
  assert.ok(total.precision >= 0.95, `precision ${total.precision}`);
  assert.ok(total.recall >= 0.9, `recall ${total.recall}`);
  assert.ok(total.mergesExactShare >= 0.9, `merges with the right parents ${total.mergesExactShare}`);
  assert.ok(total.meanCoefficientError < 0.02, `coefficient error ${total.meanCoefficientError}`);
  for (const s of scores) {
    assert.equal(s.castsRecognised, s.casts, 'every cast');
    assert.equal(s.copiesRecognised, s.copies, 'every copy');
    assert.equal(s.unrelatedEdges, 0, 'no link to an unrelated model');
  }
});

test('each kind of link carries its relation: merges with recipe and coefficients, casts, merged adapters with their rank', async () => {
  const zoo = generateZoo(102);
  const { graph, score, root } = await lineageOfZoo(zoo);
  try {
    assert.equal(score.falseEdges.length, 0, JSON.stringify(score.falseEdges));
    const id = (p: string) => graph.nodes.find((n) => n.locations?.some((l) => l === path.join(root, p) || l === path.join(root, p, 'model.safetensors')))!.id;
    const incoming = (child: string) => graph.edges.filter((e) => e.child === id(child));
    const methods = new Set(zoo.truth.merges.map((m) => m.method));
    assert.ok(methods.has('linear') && methods.has('task_arithmetic') && methods.has('dare'), 'this zoo holds these merges');
    for (const merge of zoo.truth.merges) {
      const edges = incoming(merge.child);
      assert.ok(edges.every((e) => e.relation === 'merge' && !e.undirected && e.recipe), `${merge.child}: ${JSON.stringify(edges)}`);
      const recipe = edges[0].recipe!;
      if (merge.method === 'linear') {
        assert.match(recipe, /^≈ /);
        merge.parents.forEach((p, i) => assert.ok(Math.abs(edges.find((e) => e.parent === id(p))!.weight! - merge.coefficients[i]) < 0.01));
      }
      if (merge.method === 'task_arithmetic') {
        // With lambdas summing below 1 the base's coefficient is positive: a plain weighted sum of three.
        assert.match(recipe, /^(task arithmetic over |≈ )/);
        assert.ok(edges.some((e) => e.parent === id(merge.base!)), 'the base is a parent');
        merge.parents.forEach((p, i) => assert.ok(Math.abs(edges.find((e) => e.parent === id(p))!.weight! - merge.coefficients[i]) < 0.01));
      }
      if (merge.method === 'dare') assert.match(recipe, /^(DARE|TIES)-like/);
    }
    for (const cast of zoo.truth.casts) {
      assert.deepEqual(incoming(cast.cast).map((e) => [e.parent, e.relation, e.undirected]), [[id(cast.source), 'quantized', undefined]]);
      assert.equal(graph.nodes.find((n) => n.id === id(cast.cast))?.kind, 'quantized');
    }
    for (const adapter of zoo.truth.adapters) {
      const edge = graph.edges.find((e) => e.relation === 'adapter' && [e.parent, e.child].sort().join() === [id(adapter.parent), id(adapter.child)].sort().join());
      assert.equal(edge?.rank, adapter.rank, `${adapter.child}: rank`);
    }
  } finally {
    fs.rmSync(root, { recursive: true });
  }
});
