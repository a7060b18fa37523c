// Lineage from weights on generated zoos whose truth is known (test/support/lineage-zoo.ts): 50
// zoos of fine-tunes, training runs, merges of every kind, merged LoRAs, casts, copies and
// unrelated models, nothing declared. Prints edge precision / recall (undirected and directed),
// merges with exactly the right parents, casts, copies and adapters recognised, links to unrelated
// models, against the targets: precision >= 0.95, recall >= 0.90, merges >= 90%, every cast and
// copy, no link to an unrelated model.
// Then the scale: 10,000 checkpoints of one architecture (a long training run with branches),
// their fingerprints in memory, through the nearest-neighbour index: target < 10 s.
//
// Run: npm run bench -- lineage-zoos   (GRAFT_ZOOS=<count> for fewer zoos, GRAFT_ZOO_SEED=<seed> for one)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scanCatalog } from '../src/core/catalog';
import { buildLineage, groupMetrics, inferGroupEdges, type GroupMember } from '../src/core/lineage';
import { generateZoo, makeRng, normal, writeZoo } from '../test/support/lineage-zoo';
import { scoreZoo, totalScores, type ZooScore } from '../test/support/lineage-score';

const ZOOS = Number(process.env.GRAFT_ZOOS ?? 50);
const FIRST_SEED = 1;
const SCALE_MEMBERS = 10_000;
const SCALE_TARGET_MS = 10_000;

async function zoos(): Promise<void> {
  const only = process.env.GRAFT_ZOO_SEED;
  const seeds = only ? [Number(only)] : Array.from({ length: ZOOS }, (_, i) => FIRST_SEED + i);
  const scores: ZooScore[] = [];
  let models = 0;
  const started = performance.now();
  for (const seed of seeds) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-zoo-'));
    try {
      const zoo = generateZoo(seed);
      models += zoo.models.length;
      await writeZoo(root, zoo);
      const catalog = await scanCatalog([root]);
      const graph = await buildLineage(catalog, { root, infer: true });
      const score = scoreZoo(zoo, graph, root);
      scores.push(score);
      const problems = score.falseEdges.length + score.missed.length + score.wrongMerges.length + (score.casts - score.castsRecognised) + (score.copies - score.copiesRecognised);
      if (problems > 0 && (only || process.env.GRAFT_ZOO_VERBOSE)) {
        console.log(`zoo ${seed}: ${score.rightPairs}/${score.trueEdges} true links, ${score.falseEdges.length} false`);
        for (const e of score.falseEdges) console.log(`  false: ${e.parent} -> ${e.child} ${e.relation} ${e.recipe ?? ''}`);
        for (const e of score.missed) console.log(`  missed: ${e.parent} -> ${e.child} ${e.relation}`);
        for (const m of score.wrongMerges) console.log(`  merge ${m.child} (${m.method}): expected ${m.expected.join(', ')}; found ${m.found.join(', ') || 'none'}`);
        if (score.casts !== score.castsRecognised) console.log(`  casts ${score.castsRecognised}/${score.casts}`);
        if (score.adapters !== score.adaptersRecognised) console.log(`  adapters ${score.adaptersRecognised}/${score.adapters}`);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const t = totalScores(scores);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`${t.zoos} zoos, ${models} checkpoints, ${((performance.now() - started) / 1000).toFixed(1)} s (write, scan, infer)`);
  console.log(`  undirected: precision ${pct(t.precision)} (target >= 95%), recall ${pct(t.recall)} (target >= 90%)`);
  console.log(`  directed:   precision ${pct(t.directedPrecision)}, recall ${pct(t.directedRecall)}`);
  console.log(`  merges with exactly the right parents: ${pct(t.mergesExactShare)} (target >= 90%); mean coefficient error (linear, task arithmetic) ${t.meanCoefficientError.toFixed(3)}`);
  console.log(`  casts ${t.castsRecognised}, copies ${t.copiesRecognised}, merged adapters ${t.adaptersRecognised}; links to unrelated models: ${t.unrelatedEdges} (target 0)`);
}

/** 10,000 fingerprints of one architecture: a base, branches, and long runs along each. */
function scale(): void {
  const rng = makeRng(99);
  const segments = Array.from({ length: 24 }, (_, s) => ({ name: `layers.${s}.weight`, offset: s * 96, count: 96 }));
  const length = 24 * 96;
  const base = Float32Array.from({ length }, () => 0.02 * normal(rng));
  const values: Float32Array[] = [base];
  while (values.length < SCALE_MEMBERS) {
    // A branch from a random earlier checkpoint, then a run of steps along it.
    let current = values[Math.floor(rng() * values.length)];
    const direction = Float32Array.from({ length }, () => 0.0004 * normal(rng));
    for (let step = 0; step < 50 && values.length < SCALE_MEMBERS; step++) {
      current = current.map((x, k) => x + direction[k] + 0.0002 * normal(rng));
      values.push(current);
    }
  }
  const members: GroupMember[] = values.map((v, i) => ({ id: `run/${i}`, values: v, declaredParent: false, declaredChildren: false }));
  const started = performance.now();
  const metrics = groupMetrics(values, segments, segments.map((s) => s.count * 64));
  const indexed = performance.now();
  const edges = inferGroupEdges(members, metrics, []);
  const elapsed = performance.now() - started;
  console.log(`scale: ${SCALE_MEMBERS} checkpoints of one architecture: ${elapsed.toFixed(0)} ms (index ${(indexed - started).toFixed(0)} ms, inference ${(elapsed - (indexed - started)).toFixed(0)} ms) ` +
    `${elapsed < SCALE_TARGET_MS ? 'within' : 'OVER'} the ${SCALE_TARGET_MS} ms target; ${edges.length} edges`);
}

async function main(): Promise<void> {
  await zoos();
  if (!process.env.GRAFT_ZOO_SEED) scale();
}

void main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
