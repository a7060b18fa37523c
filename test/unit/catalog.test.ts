import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import {
  CatalogCache, defaultHfCacheDir, parseModelCard, scanCatalog, type Catalog, type CatalogEntry,
} from '../../src/core/catalog';
import { WorkerPool } from '../../src/core/engine/pool';
import { CancelledError } from '../../src/core/engine/task';
import type { GraftTasks } from '../../src/worker/tasks';
import { GgufValueType, writeGguf } from '../../src/core/gguf';
import { parseProvenance, writeProvenance } from '../../src/core/catalog/provenance';
import { encodeFromFloat32, writeSafetensors, writeShardedSafetensors } from '../../src/core/safetensors';
import { fixture, tempDir, workerScript } from './helpers';

const workspace = fixture('zoo', 'workspace');

function byRelativePath(catalog: Catalog, root: string): Map<string, CatalogEntry> {
  return new Map(catalog.entries.map((e) => [path.relative(root, e.path).split(path.sep).join('/'), e]));
}

function tensor(name: string, shape: number[], fill: (i: number) => number) {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Float32Array.from({ length: n }, (_, i) => fill(i));
  return { name, dtype: 'F32' as const, shape, data: encodeFromFloat32('F32', values) };
}

test('the zoo workspace: one entry per model, adapter, merge and trainer checkpoint, with what their files declare', async () => {
  const catalog = await scanCatalog([workspace]);
  assert.deepEqual(catalog.problems, []);
  const entries = byRelativePath(catalog, workspace);
  assert.deepEqual([...entries.keys()].sort(), [
    'adapters/tiny-llama-math-lora', 'merges/tiny-llama-math-code-ties', 'models/tiny-bert', 'models/tiny-gpt2', 'models/tiny-llama-base',
    'models/tiny-llama-base-v2', 'models/tiny-llama-code', 'models/tiny-llama-math',
    'runs/math-sft/checkpoint-10', 'runs/math-sft/checkpoint-20', 'runs/math-sft/checkpoint-30',
  ]);
  const get = (p: string) => entries.get(p)!;
  assert.equal(get('models/tiny-llama-base').kind, 'model');
  assert.equal(get('models/tiny-llama-base').root, workspace);
  assert.deepEqual(get('models/tiny-llama-base').config, { architectures: ['LlamaForCausalLM'], modelType: 'llama', dtype: 'bfloat16' });
  assert.deepEqual(get('models/tiny-llama-base').dtypes, { BF16: 648832 });
  assert.equal(get('models/tiny-llama-base').parameters, 324416);

  const code = get('models/tiny-llama-code');
  assert.equal(code.format, 'safetensors-sharded');
  assert.equal(code.weightFiles.length, 4);
  assert.equal(code.tensorCount, 57);
  assert.equal(code.indexFile, path.join(workspace, 'models/tiny-llama-code/model.safetensors.index.json'));
  assert.deepEqual(code.card?.baseModel, ['acme/tiny-llama-base']);
  assert.equal(code.card?.baseModelRelation, undefined);

  // One architecture signature for every llama checkpoint, whatever the dtype or sharding.
  const llama = ['models/tiny-llama-base', 'models/tiny-llama-code', 'runs/math-sft/checkpoint-20', 'merges/tiny-llama-math-code-ties'].map((p) => get(p).architecture);
  assert.equal(new Set(llama).size, 1);
  assert.notEqual(get('models/tiny-gpt2').architecture, llama[0]);
  assert.notEqual(get('models/tiny-bert').architecture, get('models/tiny-gpt2').architecture);

  assert.deepEqual(get('models/tiny-llama-math').card, {
    baseModel: ['acme/tiny-llama-base'], baseModelRelation: 'finetune', license: 'apache-2.0', datasets: ['acme/synthetic-math'], tags: ['math'], libraryName: 'transformers',
  });
  assert.equal(get('models/tiny-bert').card, undefined);

  const adapter = get('adapters/tiny-llama-math-lora');
  assert.equal(adapter.kind, 'adapter');
  assert.deepEqual(adapter.adapter, { baseModel: 'acme/tiny-llama-base', peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], taskType: 'CAUSAL_LM' });
  assert.equal(adapter.weightFiles[0], path.join(workspace, 'adapters/tiny-llama-math-lora/adapter_model.safetensors'));

  const merge = get('merges/tiny-llama-math-code-ties');
  assert.equal(merge.kind, 'merge');
  assert.deepEqual(merge.merge, { tool: 'mergekit', method: 'ties', baseModel: 'acme/tiny-llama-base', models: ['acme/tiny-llama-math', 'acme/tiny-llama-code'], dtype: 'bfloat16' });

  const checkpoint = get('runs/math-sft/checkpoint-20');
  assert.equal(checkpoint.kind, 'trainer-checkpoint');
  assert.deepEqual(checkpoint.trainer, { globalStep: 20, epoch: 0.6666666666666666, runDir: path.join(workspace, 'runs/math-sft') });
  assert.deepEqual(checkpoint.dtypes, { F32: 1297664 });

  // Every entry lists the files it was built from (weights and side files), for the cache.
  const sources = get('models/tiny-llama-math').sources.map((s) => path.basename(s.path));
  assert.deepEqual(sources, ['README.md', 'config.json', 'model.safetensors']);
});

test('HF cache snapshots are entries with their repo id, revision and refs; blobs are not scanned', async () => {
  const hub = fixture('zoo', 'hf-cache', 'hub');
  const catalog = await scanCatalog([], { hfCache: hub });
  assert.deepEqual(catalog.problems, []);
  assert.deepEqual(catalog.entries.map((e) => [e.name, e.kind, e.hfCache?.repoId, e.hfCache?.revision, e.hfCache?.refs, e.root]), [
    ['acme/tiny-llama-base', 'model', 'acme/tiny-llama-base', '1f2e3d4c5b6a79880123456789abcdef01234567', ['main'], hub],
    ['acme/tiny-llama-math', 'model', 'acme/tiny-llama-math', 'aa11bb22cc33dd44ee55ff6677889900aabbccdd', ['main'], hub],
  ]);
  assert.equal(catalog.entries[1].card?.baseModel?.[0], 'acme/tiny-llama-base');
  // Found the same way when the cache sits inside a scanned folder.
  const whole = await scanCatalog([fixture('zoo')]);
  assert.equal(whole.entries.filter((e) => e.hfCache).length, 2);
  assert.equal(whole.entries.length, 13);
});

test('model cards: front matter delimited as huggingface_hub does, fields normalised, wrong types reported', () => {
  const card = parseModelCard('\ufeff---\nbase_model: org/a\nbase_model_relation: Merge\nlanguage: en\ndatasets: [d1, d2]\ntags: [x, 3]\nlicense: mit\nnew_version: org/b\n'
    + 'co2_eq_emissions:\n  emissions: 12.5\n  source: codecarbon\n  training_type: fine-tuning\n  hardware_used: 1 x A100\n'
    + 'model-index:\n- name: m\n  results:\n  - task: {type: text-generation}\n    dataset: {name: GSM8K, type: gsm8k}\n    metrics:\n    - {type: accuracy, value: 0.42}\n    - {type: f1}\n---\n# Title\n---\nnot: yaml\n');
  assert.deepEqual(card.facts, {
    baseModel: ['org/a'], baseModelRelation: 'merge', license: 'mit', datasets: ['d1', 'd2'], language: ['en'], tags: ['x'], newVersion: 'org/b',
    evalResults: [{ task: 'text-generation', dataset: 'GSM8K', metric: 'accuracy', value: 0.42 }],
    co2: { emissions: 12.5, source: 'codecarbon', trainingType: 'fine-tuning', hardwareUsed: '1 x A100' },
  });
  assert.deepEqual(card.warnings, ['"tags" should be a string or a list of strings; ignored 1 other item(s)']);

  assert.deepEqual(parseModelCard('# No front matter\n---\nbase_model: x\n---\n'), { facts: null, warnings: [] }, 'the block must open the file');
  assert.deepEqual(parseModelCard('---\nbase_model: x\n--- trailing\n'), { facts: null, warnings: [] }, 'the closing line must be exactly ---');
  assert.deepEqual(parseModelCard('  \n---\r\nbase_model: x\r\n---'), { facts: { baseModel: ['x'] }, warnings: [] }, 'leading blank lines, CRLF, closing at the end');
  assert.deepEqual(parseModelCard('---\nlicense: 3\n---\n').warnings, ['"license" should be a string, found number 3']);

  const broken = parseModelCard('---\nbase_model: [unclosed\n---\n');
  assert.equal(broken.facts, null);
  assert.match(broken.error!, /YAML front matter does not parse/);
  assert.match(parseModelCard('---\n- a\n- b\n---\n').error!, /not a mapping/);
  assert.match(parseModelCard('---\nbase_model: *nothing\n---\n').error!, /does not parse/);
});

test('defaultHfCacheDir follows huggingface_hub: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME, ~/.cache', () => {
  const home = path.resolve('/home/someone');
  assert.equal(defaultHfCacheDir({}, home), path.join(home, '.cache', 'huggingface', 'hub'));
  assert.equal(defaultHfCacheDir({ XDG_CACHE_HOME: path.resolve('/x') }, home), path.resolve('/x/huggingface/hub'));
  assert.equal(defaultHfCacheDir({ XDG_CACHE_HOME: path.resolve('/x'), HF_HOME: '~/hf' }, home), path.join(home, 'hf', 'hub'));
  assert.equal(defaultHfCacheDir({ HF_HOME: path.resolve('/h'), HUGGINGFACE_HUB_CACHE: path.resolve('/legacy') }, home), path.resolve('/legacy'));
  assert.equal(defaultHfCacheDir({ HF_HUB_CACHE: path.resolve('/c'), HUGGINGFACE_HUB_CACHE: path.resolve('/legacy') }, home), path.resolve('/c'));
});

test('broken cards, dangling links, folders named like files, corrupt weights and symlink cycles are reported, not fatal', async () => {
  const dir = tempDir();
  try {
    const good = path.join(dir, 'good');
    fs.cpSync(path.join(workspace, 'models/tiny-gpt2'), good, { recursive: true });
    fs.writeFileSync(path.join(good, 'README.md'), '---\nbase_model: [broken\n---\n');

    const dangling = path.join(dir, 'dangling');
    fs.mkdirSync(dangling);
    fs.copyFileSync(path.join(workspace, 'models/tiny-gpt2/config.json'), path.join(dangling, 'config.json'));
    fs.symlinkSync(path.join(dir, 'nowhere.safetensors'), path.join(dangling, 'model.safetensors'));

    const folderAsFile = path.join(dir, 'folder-as-file');
    fs.cpSync(path.join(workspace, 'models/tiny-bert'), folderAsFile, { recursive: true });
    fs.rmSync(path.join(folderAsFile, 'config.json'));
    fs.mkdirSync(path.join(folderAsFile, 'config.json'));

    const corrupt = path.join(dir, 'corrupt');
    fs.mkdirSync(corrupt);
    fs.writeFileSync(path.join(corrupt, 'weights.safetensors'), Buffer.from([1, 2, 3]));
    fs.writeFileSync(path.join(corrupt, 'model.gguf'), 'GGUF but not really');
    fs.writeFileSync(path.join(corrupt, 'config.json'), '{not json');

    fs.mkdirSync(path.join(dir, 'loop', 'inner'), { recursive: true });
    fs.symlinkSync(path.join(dir, 'loop'), path.join(dir, 'loop', 'inner', 'back'));

    const catalog = await scanCatalog([dir, path.join(dir, 'missing-root')]);
    const problem = (fragment: string) => catalog.problems.find((p) => p.path.includes(fragment));
    assert.match(problem('good/README.md')!.message, /model card ignored: the YAML front matter does not parse/);
    assert.match(problem('dangling/model.safetensors')!.message, /broken symbolic link \(target .*nowhere.safetensors does not exist\)/);
    assert.match(problem('folder-as-file/config.json')!.message, /"config.json" is a folder where a file was expected/);
    assert.match(problem('corrupt/weights.safetensors')!.message, /weights not readable: .*header/i);
    assert.match(problem('corrupt/model.gguf')!.message, /GGUF header not readable/);
    assert.match(problem('corrupt/config.json')!.message, /config.json is not valid JSON/);
    assert.match(problem('loop/inner/back')!.message, /symbolic link cycle/);
    assert.match(problem('missing-root')!.message, /does not exist/);

    // What could be read still is.
    const entries = byRelativePath(catalog, dir);
    assert.equal(entries.get('good')?.kind, 'model');
    assert.equal(entries.get('good')?.card, undefined);
    assert.equal(entries.get('folder-as-file/model.safetensors')?.kind, 'file', 'without a config the weights are a loose file');
    assert.equal(entries.has('dangling'), false);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('loose files, header-less sharded sets, GGUF files and Graft provenance become entries of their own kind', async () => {
  const dir = tempDir();
  try {
    const loose = path.join(dir, 'loose');
    fs.mkdirSync(loose);
    await writeSafetensors(path.join(loose, 'a.safetensors'), [tensor('w', [4, 4], (i) => i)]);
    await writeSafetensors(path.join(loose, 'b.safetensors'), [tensor('w', [4, 4], (i) => -i)]);
    fs.writeFileSync(path.join(loose, 'README.md'), '---\nbase_model: org/base\n---\n');
    await writeShardedSafetensors(path.join(dir, 'sharded'), [tensor('x', [8], (i) => i), tensor('y', [8], (i) => i)], { maxShardBytes: 40 });

    const gguf = path.join(dir, 'gguf');
    fs.mkdirSync(gguf);
    await writeGguf(path.join(gguf, 'tiny-Q8_0.gguf'), {
      metadata: [
        { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
        { key: 'general.name', type: GgufValueType.STRING, value: 'Tiny' },
        { key: 'general.file_type', type: GgufValueType.UINT32, value: 7 },
        { key: 'general.base_model.count', type: GgufValueType.UINT32, value: 1 },
        { key: 'general.base_model.0.repo_url', type: GgufValueType.STRING, value: 'https://huggingface.co/acme/tiny-llama-base' },
        { key: 'general.tags', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, length: 2, items: ['a', 'b'] } },
        { key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, length: 500, items: Array.from({ length: 500 }, (_, i) => `t${i}`) } },
      ],
      tensors: [{ name: 'output.weight', dims: [32, 2], type: 8, data: new Uint8Array(68) }],
    });

    const merged = path.join(dir, 'merged');
    fs.cpSync(path.join(workspace, 'models/tiny-gpt2'), merged, { recursive: true });
    await writeProvenance(merged, { version: '0.1.0', method: 'linear', base: 'org/base', models: ['org/a', { model: '../loose/a.safetensors', weight: 0.5 }] });

    const catalog = await scanCatalog([dir]);
    assert.deepEqual(catalog.problems, []);
    const entries = byRelativePath(catalog, dir);
    assert.deepEqual([...entries.keys()].sort(), ['gguf/tiny-Q8_0.gguf', 'loose/a.safetensors', 'loose/b.safetensors', 'merged', 'sharded/model.safetensors.index.json']);
    for (const name of ['loose/a.safetensors', 'loose/b.safetensors']) {
      assert.equal(entries.get(name)!.kind, 'file');
      assert.deepEqual(entries.get(name)!.card?.baseModel, ['org/base'], 'a folder card describes the files beside it');
    }
    const sharded = entries.get('sharded/model.safetensors.index.json')!;
    assert.deepEqual([sharded.kind, sharded.format, sharded.name, sharded.weightFiles.length, sharded.tensorCount], ['file', 'safetensors-sharded', 'sharded', 2, 2]);

    const g = entries.get('gguf/tiny-Q8_0.gguf')!;
    assert.equal(g.kind, 'gguf');
    assert.deepEqual(g.dtypes, { Q8_0: 68 });
    assert.equal(g.gguf?.architecture, 'llama');
    assert.equal(g.gguf?.fileType, 7);
    assert.deepEqual(g.gguf?.baseModels, [{ repoUrl: 'https://huggingface.co/acme/tiny-llama-base', hubId: 'acme/tiny-llama-base' }]);
    assert.deepEqual(g.gguf?.general['general.tags'], ['a', 'b']);
    assert.deepEqual(g.gguf?.tensors, [{ name: 'output.weight', dims: [32, 2], type: 'Q8_0', offset: 0 }]);

    const m = entries.get('merged')!;
    assert.equal(m.kind, 'merge');
    assert.equal(m.merge?.tool, 'graft');
    assert.deepEqual(m.merge?.models, ['org/a', '../loose/a.safetensors']);
    assert.equal(m.merge?.baseModel, 'org/base');
    assert.throws(() => parseProvenance('{"tool":"graft","version":"1","method":"x","created":"now","models":[3]}'), /models\[0\] must be a string or an object/);
    assert.throws(() => parseProvenance('{"tool":"mergekit"}'), /expected "graft"/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('the cache: an unchanged rescan opens no file, a changed folder alone is re-read, and the cache survives JSON', async () => {
  const dir = tempDir();
  const realOpen = fs.promises.open;
  try {
    for (const model of ['tiny-gpt2', 'tiny-bert', 'tiny-llama-code']) fs.cpSync(path.join(workspace, 'models', model), path.join(dir, model), { recursive: true });
    const cache = new CatalogCache();
    const cold = await scanCatalog([dir], { cache });
    assert.equal(cache.stats.folderMisses, 3, 'the three model folders (the root holds no model files)');

    let opened = 0;
    fs.promises.open = (async (...args: Parameters<typeof realOpen>) => {
      opened++;
      return realOpen(...args);
    }) as typeof realOpen;
    const warm = await scanCatalog([dir], { cache });
    assert.equal(opened, 0, 'a warm scan only lists folders and stats files');
    assert.deepEqual(warm, cold);
    assert.equal(cache.stats.folderHits, 3);

    fs.appendFileSync(path.join(dir, 'tiny-gpt2', 'README.md'), '\nmore text\n');
    const before = { ...cache.stats };
    await scanCatalog([dir], { cache });
    assert.equal(cache.stats.folderMisses - before.folderMisses, 1, 'only the changed folder');
    assert.equal(cache.stats.folderHits - before.folderHits, 2);
    assert.ok(opened > 0);
    fs.promises.open = realOpen;

    const restored = CatalogCache.fromJSON(JSON.parse(JSON.stringify(cache.toJSON())));
    assert.deepEqual(await scanCatalog([dir], { cache: restored }), await scanCatalog([dir]));
    assert.equal(restored.stats.folderHits, 3);
    assert.equal(CatalogCache.fromJSON({ ...cache.toJSON(), version: 999 }).folderCount, 0, 'a cache of another version is ignored');
    assert.equal(CatalogCache.fromJSON('garbage').folderCount, 0);

    // Deleted folders leave the cache.
    fs.rmSync(path.join(dir, 'tiny-bert'), { recursive: true });
    const after = await scanCatalog([dir], { cache });
    assert.equal(after.entries.length, 2);
    assert.equal(cache.folderCount, 2, 'the two remaining model folders');
  } finally {
    fs.promises.open = realOpen;
    fs.rmSync(dir, { recursive: true });
  }
});

test('a scan on the worker pool (folders listed and read in batches with blocking calls) finds what the calling thread finds', async () => {
  const dir = tempDir();
  const pool = new WorkerPool<GraftTasks>({ workerScript, size: 2 });
  try {
    fs.cpSync(fixture('zoo'), path.join(dir, 'zoo'), { recursive: true, verbatimSymlinks: true });
    // Many small folders (several batches per level), a link cycle, a dangling link, a link to a folder inside the root.
    for (let i = 0; i < 40; i++) fs.cpSync(path.join(workspace, 'models/tiny-gpt2'), path.join(dir, 'run', `step-${String(i).padStart(2, '0')}`), { recursive: true });
    fs.mkdirSync(path.join(dir, 'loop', 'inner'), { recursive: true });
    fs.symlinkSync(path.join(dir, 'loop'), path.join(dir, 'loop', 'inner', 'back'));
    fs.mkdirSync(path.join(dir, 'dangling'));
    fs.symlinkSync(path.join(dir, 'nowhere.safetensors'), path.join(dir, 'dangling', 'model.safetensors'));
    fs.symlinkSync(path.join(dir, 'run', 'step-03'), path.join(dir, 'linked-step'));

    const inline = await scanCatalog([dir]);
    assert.ok(inline.entries.length > 50);
    assert.ok(inline.problems.some((p) => /symbolic link cycle/.test(p.message)));
    const cache = new CatalogCache();
    const pooled = await scanCatalog([dir], { runner: pool, cache });
    assert.deepEqual(pooled, inline);
    const missesBefore = cache.stats.folderMisses;
    // Unchanged folders are not read again on the workers either, and give the same catalog.
    assert.deepEqual(await scanCatalog([dir], { runner: pool, cache }), inline);
    assert.equal(cache.stats.folderMisses, missesBefore);
  } finally {
    await pool.dispose();
    fs.rmSync(dir, { recursive: true });
  }
});

test('a scan stops with CancelledError when its signal is aborted', async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(scanCatalog([workspace], { signal: controller.signal }), CancelledError);
  const later = new AbortController();
  let calls = 0;
  await assert.rejects(scanCatalog([workspace], {
    signal: later.signal,
    onProgress: () => {
      if (++calls === 2) later.abort();
    },
  }), CancelledError);
});

test('a Graft patch is an entry of kind "patch" with its metadata\'s facts, also inside a model folder; other safetensors stay files', async () => {
  const dir = tempDir();
  try {
    const patchMetadata = (base: string) => ({
      format: 'pt', graft_patch: '1', graft_patch_base: base, graft_patch_base_weights: 'b'.repeat(32), graft_patch_source: '../models/ft',
      graft_patch_source_weights: 's'.repeat(32), graft_patch_tensors: '1', graft_patch_density: '0.5', graft_patch_dtype: 'F32', graft_patch_norms: '{}',
    });
    const patches = path.join(dir, 'patches');
    fs.mkdirSync(patches);
    await writeSafetensors(path.join(patches, 'ft.safetensors'), [tensor('w', [4, 4], (i) => i / 16)], patchMetadata('../models/base'));
    await writeSafetensors(path.join(patches, 'plain.safetensors'), [tensor('w', [4, 4], (i) => i)], { format: 'pt', note: 'not a patch' });
    // A patch saved into a model folder beside its config: the folder's only safetensors file.
    const folder = path.join(dir, 'with-config');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'config.json'), '{"model_type": "llama"}');
    fs.writeFileSync(path.join(folder, 'README.md'), '---\nbase_model: org/other\n---\n');
    await writeSafetensors(path.join(folder, 'delta.safetensors'), [tensor('w', [4, 4], (i) => -i)], patchMetadata('org/base'));

    const catalog = await scanCatalog([dir]);
    assert.deepEqual(catalog.problems, []);
    const entries = byRelativePath(catalog, dir);
    assert.deepEqual([...entries.keys()].sort(), ['patches/ft.safetensors', 'patches/plain.safetensors', 'with-config/delta.safetensors']);
    const patch = entries.get('patches/ft.safetensors')!;
    assert.equal(patch.kind, 'patch');
    assert.deepEqual(patch.patch, { base: '../models/base', baseWeights: 'b'.repeat(32), source: '../models/ft', sourceWeights: 's'.repeat(32), tensors: 1, density: 0.5, dtype: 'F32' });
    assert.equal(entries.get('patches/plain.safetensors')!.kind, 'file');
    assert.equal(entries.get('patches/plain.safetensors')!.patch, undefined);
    const inFolder = entries.get('with-config/delta.safetensors')!;
    assert.equal(inFolder.kind, 'patch', 'the folder is not a model made of a patch');
    assert.equal(inFolder.patch?.base, 'org/base');
    assert.equal(inFolder.card, undefined, 'the folder\'s card does not describe the patch');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
