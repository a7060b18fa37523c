import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { CatalogCache, scanCatalog, writeProvenance } from '../../src/core/catalog';
import { combineTaskMaps, InlineRunner, WorkerPool, type TaskRunner } from '../../src/core/engine/pool';
import { GgufValueType, writeGguf } from '../../src/core/gguf';
import { buildLineage, lineageTasks, type LineageEdge, type LineageGraph } from '../../src/core/lineage';
import { extractLora, loraTasks } from '../../src/core/lora';
import { extractPatch, patchTasks } from '../../src/core/patch';
import { encodeFromFloat32, openCheckpoint, readElements, writeSafetensors } from '../../src/core/safetensors';
import { readSampledValues, samplePlan } from '../../src/core/sampling';
import { fixture, tempDir, workerScript } from './helpers';

const zoo = fixture('zoo');
const workspace = fixture('zoo', 'workspace');
const hub = fixture('zoo', 'hf-cache', 'hub');

interface TrueLineage {
  edges: { parent: string; child: string; relation: string }[];
}
const truth = JSON.parse(fs.readFileSync(path.join(zoo, 'LINEAGE.json'), 'utf8')) as TrueLineage;
const CHECKPOINT_10_LINK = { parent: 'models/tiny-llama-base', child: 'runs/math-sft/checkpoint-10' };

async function lineageOf(root: string, infer: boolean, extra: { hfCache?: string; cache?: CatalogCache; runner?: TaskRunner<typeof lineageTasks> } = {}): Promise<LineageGraph> {
  const catalog = await scanCatalog([root], { hfCache: extra.hfCache, cache: extra.cache });
  assert.deepEqual(catalog.problems, []);
  return buildLineage(catalog, { root, infer, cache: extra.cache, runner: extra.runner });
}

function edgeBetween(graph: LineageGraph, parent: string, child: string): LineageEdge | undefined {
  return graph.edges.find((e) => e.parent === parent && e.child === child);
}

/** LINEAGE.json has no "checkpoint" relation: steps of one trainer run are, to it, fine-tuning. */
function sameRelation(found: string, expected: string): boolean {
  return found === expected || (found === 'checkpoint' && expected === 'finetune');
}

test('declared lineage of the zoo (--no-infer): every edge of LINEAGE.json but the weights-only one, with its relation', async () => {
  const graph = await lineageOf(workspace, false);
  for (const expected of truth.edges) {
    const found = edgeBetween(graph, expected.parent, expected.child);
    if (expected.parent === CHECKPOINT_10_LINK.parent && expected.child === CHECKPOINT_10_LINK.child) {
      assert.equal(found, undefined, 'checkpoint-10 declares no parent: only its weights tell');
      continue;
    }
    assert.ok(found, `missing ${expected.parent} -> ${expected.child}`);
    assert.ok(sameRelation(found.relation, expected.relation), `${expected.parent} -> ${expected.child}: ${found.relation}, expected ${expected.relation}`);
    assert.notEqual(found.source, 'weights');
  }
  assert.deepEqual(
    ['10', '20', '30'].slice(1).map((step, i) => edgeBetween(graph, `runs/math-sft/checkpoint-${['10', '20'][i]}`, `runs/math-sft/checkpoint-${step}`)),
    [
      { parent: 'runs/math-sft/checkpoint-10', child: 'runs/math-sft/checkpoint-20', relation: 'checkpoint', source: 'trainer' },
      { parent: 'runs/math-sft/checkpoint-20', child: 'runs/math-sft/checkpoint-30', relation: 'checkpoint', source: 'trainer' },
    ],
  );
  assert.equal(edgeBetween(graph, 'models/tiny-llama-base', 'adapters/tiny-llama-math-lora')?.source, 'adapter_config');
  assert.equal(edgeBetween(graph, 'models/tiny-llama-math', 'merges/tiny-llama-math-code-ties')?.source, 'mergekit_config');
  assert.equal(edgeBetween(graph, 'models/tiny-llama-base', 'models/tiny-llama-code')?.relation, 'finetune', 'no base_model_relation on the card: finetune');
  assert.equal(graph.edges.filter((e) => e.source === 'weights').length, 0);

  // Hub ids on cards resolved to local folders by name: no external nodes left.
  assert.deepEqual(graph.nodes.filter((n) => n.kind === 'external'), []);
  const node = (id: string) => graph.nodes.find((n) => n.id === id)!;
  assert.equal(node('models/tiny-llama-base').hubId, 'acme/tiny-llama-base');
  assert.deepEqual(
    Object.fromEntries(graph.nodes.map((n) => [n.id, n.kind])),
    {
      'adapters/tiny-llama-math-lora': 'adapter', 'merges/tiny-llama-math-code-ties': 'merge', 'models/tiny-bert': 'base', 'models/tiny-gpt2': 'base',
      'models/tiny-llama-base': 'base', 'models/tiny-llama-base-v2': 'finetune', 'models/tiny-llama-code': 'finetune', 'models/tiny-llama-math': 'finetune',
      'runs/math-sft/checkpoint-10': 'checkpoint', 'runs/math-sft/checkpoint-20': 'checkpoint', 'runs/math-sft/checkpoint-30': 'checkpoint',
    },
  );
  assert.deepEqual(node('models/tiny-llama-math').locations, [path.join(workspace, 'models/tiny-llama-math')]);
  assert.equal(node('models/tiny-llama-math').card?.baseModelRelation, 'finetune');
  assert.equal(node('models/tiny-llama-code').dtype, 'BF16');
});

test('with inference, checkpoint-10 is linked to the base from its weights, and nothing declared is second-guessed', async () => {
  const declared = await lineageOf(workspace, false);
  const graph = await lineageOf(workspace, true);
  const inferred = graph.edges.filter((e) => e.source === 'weights');
  assert.equal(inferred.length, 1);
  const edge = inferred[0];
  assert.deepEqual({ parent: edge.parent, child: edge.child, relation: edge.relation, undirected: edge.undirected }, { ...CHECKPOINT_10_LINK, relation: 'finetune', undirected: undefined });
  assert.ok(edge.confidence! > 0 && edge.confidence! <= 1);
  assert.deepEqual(graph.edges.filter((e) => e.source !== 'weights'), declared.edges);
});

/** The zoo as if nothing were declared: no cards, adapter configs, mergekit configs or trainer states, and no adapter. */
function weightsOnlyCopy(dir: string): void {
  fs.cpSync(workspace, dir, { recursive: true });
  const strip = (folder: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) strip(full);
      else if (['README.md', 'adapter_config.json', 'mergekit_config.yml', 'trainer_state.json'].includes(entry.name)) fs.rmSync(full);
    }
  };
  strip(dir);
  fs.rmSync(path.join(dir, 'adapters', 'tiny-llama-math-lora'), { recursive: true });
}

test('weights alone recover the zoo lineage, and identical copies become one node', async (t) => {
  const dir = tempDir();
  try {
    weightsOnlyCopy(dir);
    fs.cpSync(path.join(dir, 'models', 'tiny-llama-code'), path.join(dir, 'models', 'zz-copy-of-code'), { recursive: true });
    const catalog = await scanCatalog([dir]);
    assert.equal(catalog.entries.some((e) => e.card || e.adapter || e.merge || e.trainer), false, 'nothing is declared any more');
    const graph = await buildLineage(catalog, { root: dir, infer: true });

    const copy = graph.nodes.find((n) => n.locations?.includes(path.join(dir, 'models', 'zz-copy-of-code')))!;
    assert.equal(copy.id, 'models/tiny-llama-code', 'the first location names the node');
    assert.deepEqual(copy.locations, [path.join(dir, 'models', 'tiny-llama-code'), path.join(dir, 'models', 'zz-copy-of-code')]);

    // The TIES merge is over the base (its mergekit config names base_model): the base is a merge parent too.
    const expected = [
      ...truth.edges.filter((e) => !e.child.startsWith('adapters/')),
      { parent: 'models/tiny-llama-base', child: 'merges/tiny-llama-math-code-ties', relation: 'merge' },
    ];
    assert.equal(expected.length, 9);
    const key = (a: string, b: string) => [a, b].sort().join(' <-> ');
    const truePairs = new Map(expected.map((e) => [key(e.parent, e.child), e]));
    let found = 0;
    let rightDirection = 0;
    const falseEdges: LineageEdge[] = [];
    for (const edge of graph.edges) {
      assert.equal(edge.source, 'weights');
      const match = truePairs.get(key(edge.parent, edge.child));
      if (!match) {
        falseEdges.push(edge);
        continue;
      }
      found++;
      if (edge.parent === match.parent) rightDirection++;
      assert.ok(sameRelation(edge.relation, match.relation), `${edge.parent} -> ${edge.child}: ${edge.relation}, expected ${match.relation}`);
    }
    t.diagnostic(`weights only: ${found}/9 true edges, ${rightDirection} with the right direction, ${falseEdges.length} false: ${JSON.stringify(falseEdges)}`);
    assert.equal(found, 9, `only ${found} of 9 true edges recovered`);
    assert.deepEqual(falseEdges, []);
    assert.ok(rightDirection >= 8, `only ${rightDirection} directions right`);
    assert.equal(graph.nodes.find((n) => n.id === 'merges/tiny-llama-math-code-ties')?.kind, 'merge');
    assert.match(graph.edges.find((e) => e.child === 'merges/tiny-llama-math-code-ties')?.recipe ?? '', /^TIES-like: sparse, sign-elected/);
    for (const edge of graph.edges) assert.ok(edge.confidence! > 0 && edge.confidence! < 1);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('HF cache snapshots are the same nodes as the local folders holding the same weights, with hub id and revision', async () => {
  const check = (graph: LineageGraph, prefix: string, snapshotRoot: string) => {
    const node = (id: string) => graph.nodes.find((n) => n.id === `${prefix}${id}`)!;
    const base = node('models/tiny-llama-base');
    assert.equal(base.hubId, 'acme/tiny-llama-base');
    assert.equal(base.revision, '1f2e3d4c5b6a79880123456789abcdef01234567');
    assert.deepEqual(base.locations, [
      path.join(workspace, 'models/tiny-llama-base'),
      path.join(snapshotRoot, 'models--acme--tiny-llama-base/snapshots/1f2e3d4c5b6a79880123456789abcdef01234567'),
    ]);
    const math = node('models/tiny-llama-math');
    assert.equal(math.hubId, 'acme/tiny-llama-math');
    assert.equal(math.revision, 'aa11bb22cc33dd44ee55ff6677889900aabbccdd');
    assert.equal(math.locations?.length, 2);
    assert.equal(graph.nodes.length, 11, 'no node of its own for a snapshot');
    assert.equal(graph.nodes.some((n) => n.id.startsWith('hub:')), false);
    assert.equal(edgeBetween(graph, `${prefix}models/tiny-llama-base`, `${prefix}models/tiny-llama-math`)?.source, 'card');
  };
  check(await lineageOf(zoo, false), 'workspace/', hub);
  check(await lineageOf(workspace, false, { hfCache: hub }), '', hub);

  // Only the cache: its models are hub nodes, linked by their cards.
  const cacheOnly = await lineageOf(hub, false);
  assert.deepEqual(cacheOnly.nodes.map((n) => [n.id, n.kind, n.revision]), [
    ['hub:acme/tiny-llama-base', 'base', '1f2e3d4c5b6a79880123456789abcdef01234567'],
    ['hub:acme/tiny-llama-math', 'finetune', 'aa11bb22cc33dd44ee55ff6677889900aabbccdd'],
  ]);
  assert.deepEqual(cacheOnly.edges, [{ parent: 'hub:acme/tiny-llama-base', child: 'hub:acme/tiny-llama-math', relation: 'finetune', source: 'card' }]);
});

test('references that match nothing on disk become external hub nodes; relations follow cards, configs and tags', async () => {
  const dir = tempDir();
  try {
    // Distinct weights per folder: identical ones would be one node.
    let seed = 0;
    const model = async (name: string, card?: string, extra: Record<string, string> = {}, weightsFile = 'model.safetensors') => {
      const folder = path.join(dir, name);
      fs.mkdirSync(folder);
      seed++;
      await writeSafetensors(path.join(folder, weightsFile), [{ name: 'w', dtype: 'F32', shape: [8], data: encodeFromFloat32('F32', Float32Array.from({ length: 8 }, (_, i) => seed * 10 + i)) }]);
      fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ model_type: 'tiny' }));
      if (card !== undefined) fs.writeFileSync(path.join(folder, 'README.md'), `---\n${card}\n---\n`);
      for (const [file, text] of Object.entries(extra)) fs.writeFileSync(path.join(folder, file), text);
    };
    await model('from-hub', 'base_model: someone/upstream');
    await model('quantized', 'base_model: from-hub', { 'config.json': JSON.stringify({ model_type: 'tiny', quantization_config: { quant_method: 'gptq', bits: 4 } }) });
    await model('tagged-merge', 'base_model: [from-hub]\ntags: [merge]');
    await model('relation-wins', 'base_model: from-hub\nbase_model_relation: adapter');
    await model('old', 'new_version: someone/new');
    await model('adapter-by-path', undefined, { 'adapter_config.json': JSON.stringify({ base_model_name_or_path: '../from-hub', peft_type: 'LORA' }) }, 'adapter_model.safetensors');
    await model('graft-merge');
    await writeProvenance(path.join(dir, 'graft-merge'), { version: '0.1.0', method: 'ties', base: 'someone/upstream', models: ['from-hub', { model: '../old', weight: 0.5 }] });
    // A trainer run whose folder also holds the final model.
    await model('run', undefined, { 'README.md': '---\nbase_model: from-hub\n---\n' });
    for (const step of [5, 10]) await model(`run/checkpoint-${step}`, undefined, { 'trainer_state.json': JSON.stringify({ global_step: step }) });
    fs.mkdirSync(path.join(dir, 'gguf'));
    await writeGguf(path.join(dir, 'gguf', 'from-hub-Q8_0.gguf'), {
      metadata: [
        { key: 'general.base_model.count', type: GgufValueType.UINT32, value: 1 },
        { key: 'general.base_model.0.name', type: GgufValueType.STRING, value: 'from-hub' },
      ],
      tensors: [{ name: 'w', dims: [32], type: 8, data: new Uint8Array(34) }],
    });
    const graph = await lineageOf(dir, false);
    const relation = (parent: string, child: string) => {
      const e = edgeBetween(graph, parent, child);
      return e && `${e.relation}/${e.source}`;
    };
    assert.equal(relation('hub:someone/upstream', 'from-hub'), 'finetune/card');
    assert.equal(relation('from-hub', 'quantized'), 'quantized/card');
    assert.equal(relation('from-hub', 'tagged-merge'), 'merge/card');
    assert.equal(relation('from-hub', 'relation-wins'), 'adapter/card');
    assert.equal(relation('old', 'hub:someone/new'), 'finetune/card');
    assert.equal(relation('from-hub', 'adapter-by-path'), 'adapter/adapter_config');
    assert.equal(relation('from-hub', 'graft-merge'), 'merge/provenance');
    assert.equal(relation('old', 'graft-merge'), 'merge/provenance', 'a relative path in the provenance resolves from its folder');
    assert.equal(relation('hub:someone/upstream', 'graft-merge'), 'merge/provenance');
    assert.equal(relation('run/checkpoint-5', 'run/checkpoint-10'), 'checkpoint/trainer');
    assert.equal(relation('run/checkpoint-10', 'run'), 'checkpoint/trainer', 'the last checkpoint leads to the final model in the run folder');
    assert.equal(relation('from-hub', 'run'), 'finetune/card');
    assert.equal(relation('from-hub', 'gguf/from-hub-Q8_0.gguf'), 'quantized/card', 'GGUF general.base_model');
    const kinds = Object.fromEntries(graph.nodes.map((n) => [n.id, n.kind]));
    assert.deepEqual(kinds, {
      'adapter-by-path': 'adapter', 'from-hub': 'finetune', 'graft-merge': 'merge', 'gguf/from-hub-Q8_0.gguf': 'quantized',
      'hub:someone/new': 'external', 'hub:someone/upstream': 'external', old: 'base', quantized: 'quantized', 'relation-wins': 'finetune',
      run: 'finetune', 'run/checkpoint-10': 'checkpoint', 'run/checkpoint-5': 'checkpoint', 'tagged-merge': 'merge',
    });
    assert.equal(graph.nodes.find((n) => n.id === 'gguf/from-hub-Q8_0.gguf')?.format, 'gguf');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('the same values in two dtypes (an exact upcast) are linked as a copy, from the smaller dtype', async () => {
  const dir = tempDir();
  try {
    fs.cpSync(path.join(workspace, 'models/tiny-llama-base'), path.join(dir, 'base'), { recursive: true });
    fs.rmSync(path.join(dir, 'base', 'README.md'));
    const layout = await openCheckpoint(path.join(dir, 'base'));
    const upcast = await Promise.all(layout.tensors.map(async (t) => ({
      name: t.name, dtype: 'F32' as const, shape: t.shape, data: encodeFromFloat32('F32', Float32Array.from(await readElements(t, 0, t.numel))),
    })));
    fs.mkdirSync(path.join(dir, 'base-f32'));
    await writeSafetensors(path.join(dir, 'base-f32', 'model.safetensors'), upcast);
    fs.copyFileSync(path.join(dir, 'base', 'config.json'), path.join(dir, 'base-f32', 'config.json'));
    const graph = await lineageOf(dir, true);
    assert.equal(graph.nodes.length, 2, 'different bytes: not one node');
    assert.deepEqual(graph.edges.map((e) => [e.parent, e.child, e.relation, e.source, e.undirected]), [['base', 'base-f32', 'copy', 'weights', undefined]]);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

/** A runner that counts the fingerprints its tasks compute. */
function countingRunner(inner: TaskRunner<typeof lineageTasks>): TaskRunner<typeof lineageTasks> & { calls: number } {
  const runner = {
    concurrency: inner.concurrency,
    calls: 0,
    run: ((kind, input, options) => {
      if ('inputs' in input) runner.calls += input.inputs.length;
      return inner.run(kind, input, options);
    }) as TaskRunner<typeof lineageTasks>['run'],
  };
  return runner;
}

test('fingerprints come from the worker pool like inline, and from the cache on a rescan of unchanged files', async () => {
  const pool = new WorkerPool<typeof lineageTasks>({ workerScript, size: 2 });
  try {
    const inline = await lineageOf(workspace, true);
    const pooled = await lineageOf(workspace, true, { runner: pool });
    assert.deepEqual(pooled, inline);

    const cache = new CatalogCache();
    const cold = countingRunner(new InlineRunner(lineageTasks));
    const first = await lineageOf(workspace, true, { cache, runner: cold });
    assert.equal(cold.calls, 8, 'one fingerprint per llama checkpoint (the only architecture with several members)');
    const restored = CatalogCache.fromJSON(JSON.parse(JSON.stringify(cache.toJSON())));
    const warm = countingRunner(new InlineRunner(lineageTasks));
    assert.deepEqual(await lineageOf(workspace, true, { cache: restored, runner: warm }), first);
    assert.equal(warm.calls, 0, 'every fingerprint came from the cache');
  } finally {
    await pool.dispose();
  }
});

test('readSampledValues returns the sampled elements in plan order, whether runs are read together or apart', async () => {
  const layout = await openCheckpoint(path.join(workspace, 'models/tiny-llama-code'));
  for (const ref of layout.tensors.filter((t) => t.numel > 1000).slice(0, 4)) {
    const whole = await readElements(ref, 0, ref.numel);
    for (const samples of [64, 256, 4096]) {
      const plan = samplePlan(ref.name, ref.numel, samples);
      const expected = plan.runs.flatMap((r) => Array.from(whole.subarray(r.start, r.start + r.length)));
      const out = new Float32Array(plan.count + 3);
      await readSampledValues(ref, plan, undefined, out, 3);
      assert.deepEqual(Array.from(out.subarray(3)), expected, `${ref.name} with ${samples} samples`);
    }
  }
});

test('a patch is its own kind under its base, with its source noted; an extracted LoRA adapter is an adapter of its base, not a merge of its source', async () => {
  const dir = tempDir();
  try {
    const models = path.join(dir, 'models');
    for (const name of ['tiny-llama-base', 'tiny-llama-math']) fs.cpSync(path.join(workspace, 'models', name), path.join(models, name), { recursive: true });
    const [math, base] = await Promise.all([openCheckpoint(path.join(models, 'tiny-llama-math')), openCheckpoint(path.join(models, 'tiny-llama-base'))]);
    const runner = new InlineRunner(combineTaskMaps(patchTasks, loraTasks));
    await extractPatch({ runner, model: math, base, out: path.join(dir, 'patches', 'math.safetensors'), graftVersion: 'test' });
    await extractLora({ runner, model: math, base, out: path.join(dir, 'adapters', 'math-lora'), rank: 2, graftVersion: 'test' });

    for (const infer of [false, true]) {
      const graph = await lineageOf(dir, infer);
      const node = (id: string) => graph.nodes.find((n) => n.id === id);
      const into = (id: string) => graph.edges.filter((e) => e.child === id).map((e) => ({ parent: e.parent, relation: e.relation, source: e.source }));
      assert.equal(node('patches/math.safetensors')?.kind, 'patch');
      assert.deepEqual(node('patches/math.safetensors')?.source, { id: 'models/tiny-llama-math', label: 'tiny-llama-math' });
      assert.deepEqual(into('patches/math.safetensors'), [{ parent: 'models/tiny-llama-base', relation: 'patch', source: 'patch_metadata' }], `infer: ${infer}`);
      assert.equal(node('adapters/math-lora')?.kind, 'adapter');
      assert.deepEqual(node('adapters/math-lora')?.source, { id: 'models/tiny-llama-math', label: 'tiny-llama-math' });
      assert.deepEqual(into('adapters/math-lora'), [{ parent: 'models/tiny-llama-base', relation: 'adapter', source: 'adapter_config' }], `infer: ${infer}`);
      assert.deepEqual(into('models/tiny-llama-math').map((e) => e.parent), ['models/tiny-llama-base'], 'the fine-tune keeps its own parent');
      assert.ok(!graph.edges.some((e) => e.parent === 'patches/math.safetensors' || e.parent === 'adapters/math-lora'), 'nothing descends from a patch or an adapter by its differences');
    }

    // Without adapter_config's base, the provenance alone still makes it an adapter of its base.
    const config = path.join(dir, 'adapters', 'math-lora', 'adapter_config.json');
    const json = JSON.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
    delete json.base_model_name_or_path;
    fs.writeFileSync(config, JSON.stringify(json));
    // A patch whose base and source are nowhere on disk: an external parent, the source a label only.
    await writeSafetensors(path.join(dir, 'patches', 'far.safetensors'), [{ name: 'w', dtype: 'F32', shape: [2], data: encodeFromFloat32('F32', new Float32Array([1, 2])) }], {
      format: 'pt', graft_patch: '1', graft_patch_base: 'acme/far-base', graft_patch_base_weights: 'x'.repeat(32), graft_patch_source: '../gone/ft',
    });
    const graph = await lineageOf(dir, false);
    assert.deepEqual(graph.edges.filter((e) => e.child === 'adapters/math-lora').map((e) => [e.parent, e.relation, e.source]), [['models/tiny-llama-base', 'adapter', 'provenance']]);
    assert.deepEqual(graph.edges.filter((e) => e.child === 'patches/far.safetensors').map((e) => [e.parent, e.relation]), [['hub:acme/far-base', 'patch']]);
    const far = graph.nodes.find((n) => n.id === 'patches/far.safetensors');
    assert.deepEqual(far?.source, { label: '../gone/ft' });
    assert.ok(!graph.nodes.some((n) => n.label === '../gone/ft'), 'a source that is not on disk adds no node');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
