// The merge engine end to end: the reference merges of the shared fixtures, results that do not
// depend on how work is split, slices and gradients, multi-stage fusion, LoRA variants, vocabulary
// alignment, the output folder and its lineage, cancellation.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { scanCatalog } from '../../src/core/catalog';
import { InlineRunner, WorkerPool, type RunOptions, type TaskRunner } from '../../src/core/engine/pool';
import { CancelledError } from '../../src/core/engine/task';
import { wasmKernels } from '../../src/core/kernels';
import { buildLineage, lineageTasks } from '../../src/core/lineage';
import { executeMerge, mergeTasks, parseRecipe, planMerge, type MergeTasks } from '../../src/core/merge';
import { estimateMerge } from '../../src/core/merge/estimate';
import { encodeFromFloat32, openCheckpoint, readElements, writeSafetensors, type CheckpointLayout } from '../../src/core/safetensors';
import type { GraftTasks } from '../../src/worker/tasks';
import { tinyValues, writeTinyFamily, writeTinyModel, TINY } from '../support/tinyModels';
import { fixture, tempDir, workerScript } from './helpers';

const zoo = fixture('zoo', 'workspace');

async function merge(recipeText: string, dir: string, out: string, options: { runner?: TaskRunner<MergeTasks>; chunkElements?: number; force?: boolean; signal?: AbortSignal } = {}) {
  const file = path.join(dir, `recipe-${createHash('md5').update(recipeText).digest('hex').slice(0, 6)}.yml`);
  fs.writeFileSync(file, recipeText);
  const plan = await planMerge(parseRecipe(recipeText, file), { out });
  return executeMerge(plan, { runner: options.runner ?? new InlineRunner(mergeTasks), out, graftVersion: 'test', chunkElements: options.chunkElements, force: options.force, signal: options.signal });
}

async function values(layout: CheckpointLayout, name: string): Promise<Float32Array> {
  const ref = layout.tensors.find((t) => t.name === name);
  assert.ok(ref, `tensor ${name} exists`);
  const v = await readElements(ref, 0, ref.numel);
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

/** Elements that differ between two checkpoints, over the tensors of `expected`. */
async function differences(actualDir: string, expectedFile: string): Promise<{ differ: number; total: number; maxAbs: number }> {
  const a = await openCheckpoint(actualDir);
  const e = await openCheckpoint(expectedFile);
  let differ = 0;
  let total = 0;
  let maxAbs = 0;
  for (const t of e.tensors) {
    const x = await values(a, t.name);
    const y = await values(e, t.name);
    for (let i = 0; i < y.length; i++) {
      total++;
      if (x[i] !== y[i]) {
        differ++;
        maxAbs = Math.max(maxAbs, Math.abs(x[i] - y[i]));
      }
    }
  }
  return { differ, total, maxAbs };
}

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

test('float32 merges equal the reference merges (torch, peft) of the fixtures', async () => {
  const dir = tempDir();
  try {
    const models = (...names: string[]) => names.map((n) => path.join(zoo, 'models', n));
    const [base, math, code] = models('tiny-llama-base', 'tiny-llama-math', 'tiny-llama-code');
    const ta = await merge(`merge_method: task_arithmetic\nbase_model: ${base}\nmodels:\n  - model: ${math}\n    parameters: {weight: 0.6}\n  - model: ${code}\n    parameters: {weight: 0.4}\ndtype: float32\n`, dir, path.join(dir, 'ta'));
    assert.deepEqual(await differences(ta.out, fixture('golden', 'task_arithmetic.safetensors')), { differ: 0, total: 324416, maxAbs: 0 });

    const lin = await merge(`merge_method: linear\nmodels:\n  - model: ${math}\n    parameters: {weight: 1}\n  - model: ${code}\n    parameters: {weight: 1}\ndtype: float32\n`, dir, path.join(dir, 'linear'));
    assert.deepEqual(await differences(lin.out, fixture('golden', 'linear_mean.safetensors')), { differ: 0, total: 324416, maxAbs: 0 });

    const lora = await merge(`merge_method: passthrough\nmodels:\n  - model: ${base}+${path.join(zoo, 'adapters', 'tiny-llama-math-lora')}\ndtype: float32\n`, dir, path.join(dir, 'lora'));
    assert.deepEqual(await differences(lora.out, fixture('golden', 'lora_merged.safetensors')), { differ: 0, total: 324416, maxAbs: 0 });

    // peft and torch break top-k ties arbitrarily; bf16 deltas have many equal magnitudes at the
    // threshold, so a share of elements (about 0.2%) legitimately differ.
    const ties = await merge(`merge_method: ties\nbase_model: ${base}\nparameters: {semantics: peft, majority_sign_method: total, density: 0.5}\nmodels:\n  - model: ${math}\n    parameters: {weight: 0.6}\n  - model: ${code}\n    parameters: {weight: 0.4}\ndtype: float32\n`, dir, path.join(dir, 'ties'));
    const d = await differences(ties.out, fixture('golden', 'ties_d0.5_total.safetensors'));
    assert.ok(d.differ / d.total < 0.005, `${d.differ} of ${d.total} differ`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const SPLIT_RECIPES: Record<string, string> = {
  ties: 'merge_method: ties\nbase_model: base\nparameters: {density: 0.4}\nmodels:\n  - model: ft1\n    parameters: {weight: 0.5}\n  - model: ft2\n    parameters: {weight: 0.3, density: 0.7}\n  - model: ft3\n    parameters: {weight: 0.2}\n',
  breadcrumbs_ties: 'merge_method: breadcrumbs_ties\nbase_model: base\nparameters: {density: 0.5, gamma: 0.05, weight: 0.5}\nmodels: [ft1, ft2]\n',
  dare_ties: 'merge_method: dare_ties\nbase_model: base\nrandom_seed: 3\nparameters: {density: 0.5, weight: 0.5}\nmodels: [ft1, ft2, ft3]\n',
  della: 'merge_method: della\nbase_model: base\nparameters: {density: 0.5, epsilon: 0.2, weight: 0.5}\nmodels: [ft1, ft2]\n',
  slerp: 'merge_method: slerp\nbase_model: base\nparameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 1]\n    - value: 0.3\nmodels: [ft1]\n',
  multislerp: 'merge_method: multislerp\nbase_model: base\nparameters: {weight: 1}\nmodels: [ft1, ft2, ft3]\n',
  karcher: 'merge_method: karcher\nmodels: [ft1, ft2, ft3]\n',
  model_stock: 'merge_method: model_stock\nbase_model: base\nmodels: [ft1, ft2, ft3]\n',
  sce: 'merge_method: sce\nbase_model: base\nparameters: {select_topk: 0.5}\nmodels: [ft1, ft2, ft3]\n',
  pcb: 'merge_method: pcb\nbase_model: base\nparameters: {density: 0.5}\nmodels: [ft1, ft2]\n',
  nuslerp_rows: 'merge_method: nuslerp\nparameters: {nuslerp_flatten: false}\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n  - model: ft2\n    parameters: {weight: 2}\n',
  nuslerp_columns: 'merge_method: nuslerp\nbase_model: base\nparameters: {nuslerp_flatten: false, nuslerp_row_wise: true}\nmodels:\n  - model: ft1\n    parameters: {weight: 0.4}\n  - model: ft2\n    parameters: {weight: 0.7}\n',
  two_stages: 'name: soup\nmerge_method: ties\nbase_model: base\nparameters: {density: 0.5, weight: 1}\nmodels: [ft1, ft2]\n---\nname: final\nmerge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\nmodels: [soup]\n',
};

test('results do not depend on chunk size or worker count (bit-identical outputs)', async () => {
  const dir = tempDir();
  const pools: WorkerPool<GraftTasks>[] = [];
  try {
    await writeTinyFamily(dir);
    for (const size of [1, 2]) pools.push(new WorkerPool<GraftTasks>({ workerScript, size }));
    for (const [name, recipe] of Object.entries(SPLIT_RECIPES)) {
      const hashes = new Set<string>();
      const runs: { label: string; runner: TaskRunner<MergeTasks>; chunk?: number }[] = [
        { label: 'inline, 4 KiB chunks', runner: new InlineRunner(mergeTasks), chunk: 1024 },
        { label: 'inline, 12 KiB chunks', runner: new InlineRunner(mergeTasks), chunk: 3072 },
        { label: 'inline, whole tensors', runner: new InlineRunner(mergeTasks), chunk: 1 << 30 },
        { label: '1 worker', runner: pools[0], chunk: 2048 },
        { label: '2 workers', runner: pools[1], chunk: 1024 },
      ];
      for (const run of runs) {
        const out = path.join(dir, `${name}-${hashes.size}-${run.chunk}-${run.label.replace(/\W+/g, '')}`);
        await merge(recipe, dir, out, { runner: run.runner, chunkElements: run.chunk });
        hashes.add(sha(path.join(out, 'model.safetensors')));
      }
      assert.equal(hashes.size, 1, `${name}: ${hashes.size} different outputs across ${runs.map((r) => r.label).join(', ')}`);
    }
  } finally {
    await Promise.all(pools.map((p) => p.dispose()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('slices stack and swap layers, renumbered, with the layer count in config.json; gradients follow the layers', async () => {
  const dir = tempDir();
  try {
    const { base, finetunes } = await writeTinyFamily(dir, TINY, 1);
    const swap = await merge('merge_method: passthrough\nslices:\n  - sources:\n      - model: base\n        layer_range: [0, 2]\n  - sources:\n      - model: ft1\n        layer_range: [2, 4]\n', dir, path.join(dir, 'swap'));
    const out = await openCheckpoint(swap.out);
    const b = await openCheckpoint(base);
    const f = await openCheckpoint(finetunes[0]);
    assert.deepEqual(await values(out, 'model.layers.1.mlp.up_proj.weight'), await values(b, 'model.layers.1.mlp.up_proj.weight'));
    assert.deepEqual(await values(out, 'model.layers.3.mlp.up_proj.weight'), await values(f, 'model.layers.3.mlp.up_proj.weight'));
    assert.deepEqual(await values(out, 'model.embed_tokens.weight'), await values(b, 'model.embed_tokens.weight'), 'embeddings from the first slice');
    assert.deepEqual(await values(out, 'lm_head.weight'), await values(f, 'lm_head.weight'), 'head from the last slice');

    const stack = await merge('merge_method: passthrough\nslices:\n  - sources: [{model: base, layer_range: [0, 3]}]\n  - sources: [{model: ft1, layer_range: [1, 4]}]\n', dir, path.join(dir, 'stack'));
    const stacked = await openCheckpoint(stack.out);
    assert.equal(stacked.tensors.filter((t) => t.name.endsWith('q_proj.weight')).length, 6);
    assert.deepEqual(await values(stacked, 'model.layers.3.self_attn.q_proj.weight'), await values(f, 'model.layers.1.self_attn.q_proj.weight'));
    assert.equal(JSON.parse(fs.readFileSync(path.join(stack.out, 'config.json'), 'utf8')).num_hidden_layers, 6);

    // A gradient t: [0, 1] over four layers: layer 0 is the base (t = 0), layer 3 the fine-tune.
    const grad = await merge('merge_method: slerp\nbase_model: base\nparameters: {t: [0, 1]}\nmodels: [ft1]\n', dir, path.join(dir, 'grad'));
    const g = await openCheckpoint(grad.out);
    assert.deepEqual(await values(g, 'model.layers.0.mlp.up_proj.weight'), await values(b, 'model.layers.0.mlp.up_proj.weight'));
    assert.deepEqual(await values(g, 'model.layers.3.mlp.up_proj.weight'), await values(f, 'model.layers.3.mlp.up_proj.weight'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a multi-stage recipe fused in one pass equals running its stages one after the other', async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir);
    const fused = await merge(SPLIT_RECIPES.two_stages, dir, path.join(dir, 'fused'));
    await merge('merge_method: ties\nbase_model: base\nparameters: {density: 0.5, weight: 1}\nmodels: [ft1, ft2]\n', dir, path.join(dir, 'soup'));
    const second = await merge('merge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\nmodels: [soup]\n', dir, path.join(dir, 'second'));
    // Same tensors bit for bit (the files differ only in the recipe hash of their metadata).
    assert.deepEqual(await differences(fused.out, path.join(second.out, 'model.safetensors')), { differ: 0, total: 35104, maxAbs: 0 });
    assert.equal(fs.existsSync(path.join(fused.out, 'intermediates')), false, 'no intermediate model written');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function writeAdapter(dir: string, config: Record<string, unknown>, tensors: Record<string, { shape: number[]; values: number[] }>): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', ...config }));
  await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), Object.entries(tensors).map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, data: encodeFromFloat32('F32', Float32Array.from(t.values)) })));
}

test('LoRA variants: fan_in_fan_out, embeddings, rslora, DoRA and modules_to_save', async () => {
  const dir = tempDir();
  try {
    const W = [1, 0, 0, 1]; // 2 x 2 identity
    fs.mkdirSync(path.join(dir, 'base'));
    fs.mkdirSync(path.join(dir, 'base2'));
    await writeSafetensors(path.join(dir, 'base', 'model.safetensors'), [
      { name: 'h.0.attn.c_attn.weight', dtype: 'F32', shape: [2, 2], data: encodeFromFloat32('F32', Float32Array.from(W)) },
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [3, 2], data: encodeFromFloat32('F32', Float32Array.from([0, 0, 0, 0, 0, 0])) },
      { name: 'lm_head.weight', dtype: 'F32', shape: [3, 2], data: encodeFromFloat32('F32', Float32Array.from([1, 1, 1, 1, 1, 1])) },
    ]);
    // Conv1D weights are [in, out]: the delta is (B A) transposed. r = 1, alpha = 2: scale 2.
    await writeAdapter(path.join(dir, 'conv'), { r: 1, lora_alpha: 2, fan_in_fan_out: true }, {
      'base_model.model.h.0.attn.c_attn.lora_A.weight': { shape: [1, 2], values: [1, 2] },
      'base_model.model.h.0.attn.c_attn.lora_B.weight': { shape: [2, 1], values: [3, 0] },
      'base_model.model.model.embed_tokens.lora_embedding_A': { shape: [1, 3], values: [1, 0, 2] },
      'base_model.model.model.embed_tokens.lora_embedding_B': { shape: [2, 1], values: [1, -1] },
      'base_model.model.lm_head.modules_to_save.weight': { shape: [3, 2], values: [5, 5, 5, 5, 5, 5] },
    });
    const conv = await merge('merge_method: passthrough\nmodels: [base+conv]\n', dir, path.join(dir, 'out-conv'));
    const c = await openCheckpoint(conv.out);
    // B A = [[3, 6], [0, 0]]; transposed [[3, 0], [6, 0]]; x 2 + I.
    assert.deepEqual(Array.from(await values(c, 'h.0.attn.c_attn.weight')), [7, 0, 12, 1]);
    // Embedding: W[i, j] += 2 * B[j] * A[i] with A = [1, 0, 2], B = [1, -1].
    assert.deepEqual(Array.from(await values(c, 'model.embed_tokens.weight')), [2, -2, 0, 0, 4, -4]);
    assert.deepEqual(Array.from(await values(c, 'lm_head.weight')), [5, 5, 5, 5, 5, 5]);

    // DoRA (rslora: scale alpha / sqrt(r) = 4 / 2): W + s B A, then each row scaled to its magnitude.
    await writeSafetensors(path.join(dir, 'base2', 'model.safetensors'), [
      { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F32', shape: [2, 2], data: encodeFromFloat32('F32', Float32Array.from(W)) },
    ]);
    await writeAdapter(path.join(dir, 'dora'), { r: 4, lora_alpha: 4, use_rslora: true, use_dora: true }, {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [4, 2], values: [0.5, 0, 0, 0, 0, 0, 0, 0] },
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [2, 4], values: [1, 0, 0, 0, 0, 0, 0, 0] },
      'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector': { shape: [2], values: [1, 3] },
    });
    const dora = await merge('merge_method: passthrough\nmodels: [base2+dora]\n', dir, path.join(dir, 'out-dora'));
    // B A = [[0.5, 0], [0, 0]] x 2 = [[1, 0], [0, 0]]; W + delta = [[2, 0], [0, 1]]; norms [2, 1]; magnitudes [1, 3].
    assert.deepEqual(Array.from(await values(await openCheckpoint(dora.out), 'model.layers.0.self_attn.q_proj.weight')), [1, 0, 0, 3]);

    // An adapter of another model is refused before anything is computed.
    await assert.rejects(merge('merge_method: passthrough\nmodels: [base2+conv]\n', dir, path.join(dir, 'out-bad')), /does not fit its base/);
    assert.equal(fs.existsSync(path.join(dir, 'out-bad')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('vocabularies: other models are cut to the base\'s rows with tokenizer_source: base, refused without', async () => {
  const dir = tempDir();
  try {
    const baseValues = tinyValues(TINY, 5);
    await writeTinyModel(path.join(dir, 'base'), TINY, baseValues);
    const big = { ...TINY, vocab: 80 };
    await writeTinyModel(path.join(dir, 'big'), big, tinyValues(big, 6));
    const recipe = 'merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: big\n    parameters: {weight: 1}\n';
    await assert.rejects(merge(recipe, dir, path.join(dir, 'refused')), (e: Error) => /Vocabulary sizes differ in "(model.embed_tokens|lm_head).weight": 80 rows in "big" but 64/.test(e.message) && /tokenizer_source: base/.test(e.message));
    const ok = await merge(recipe + 'tokenizer_source: base\n', dir, path.join(dir, 'aligned'));
    const out = await openCheckpoint(ok.out);
    assert.deepEqual(out.tensors.find((t) => t.name === 'lm_head.weight')!.shape, [64, 32]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the output folder: config, card, recipe and provenance, and the lineage graph places it under its inputs', async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir, TINY, 2);
    const result = await merge('merge_method: ties\nbase_model: base\nparameters: {density: 0.5, weight: 0.5}\nmodels: [ft1, ft2]\n', dir, path.join(dir, 'merged'));
    const files = fs.readdirSync(result.out).sort();
    assert.deepEqual(files, ['README.md', 'config.json', 'graft_provenance.json', 'mergekit_config.yml', 'model.safetensors']);
    const card = fs.readFileSync(path.join(result.out, 'README.md'), 'utf8');
    assert.match(card, /base_model_relation: merge/);
    assert.match(card, /- \.\.\/ft1/);
    const provenance = JSON.parse(fs.readFileSync(path.join(result.out, 'graft_provenance.json'), 'utf8'));
    assert.equal(provenance.method, 'ties');
    assert.equal(provenance.base, '../base');
    assert.ok(provenance.models.every((m: { weights: string }) => /^[0-9a-f]{32}$/.test(m.weights)));
    const header = await openCheckpoint(result.out);
    assert.match(String(header.metadata?.graft_recipe_sha256), /^[0-9a-f]{64}$/);
    assert.equal(fs.existsSync(`${result.out}.partial`), false);

    const graph = await buildLineage(await scanCatalog([dir]), { root: dir, infer: false, runner: new InlineRunner(lineageTasks) });
    const parents = graph.edges.filter((e) => e.child === 'merged').map((e) => `${e.parent}:${e.relation}`).sort();
    assert.deepEqual(parents, ['base:merge', 'ft1:merge', 'ft2:merge']);

    // An existing output is never replaced without force; with force it is, once complete.
    await assert.rejects(merge('merge_method: linear\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n', dir, path.join(dir, 'merged')), /already exists/);
    assert.equal(sha(path.join(result.out, 'model.safetensors')), sha(path.join(dir, 'merged', 'model.safetensors')));
    await merge('merge_method: linear\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n', dir, path.join(dir, 'merged'), { force: true });
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'merged', 'graft_provenance.json'), 'utf8')).method, 'linear');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a cancelled merge leaves no output and unchanged inputs', async () => {
  const dir = tempDir();
  const pool = new WorkerPool<GraftTasks>({ workerScript, size: 2 });
  try {
    await writeTinyFamily(dir);
    const inputs = ['base', 'ft1', 'ft2', 'ft3'].flatMap((m) => fs.readdirSync(path.join(dir, m)).map((f) => path.join(dir, m, f)));
    const before = inputs.map((f) => `${sha(f)}:${fs.statSync(f).mtimeMs}`);
    const controller = new AbortController();
    const recipe = SPLIT_RECIPES.ties;
    const file = path.join(dir, 'cancel.yml');
    fs.writeFileSync(file, recipe);
    const out = path.join(dir, 'cancelled');
    const plan = await planMerge(parseRecipe(recipe, file), { out });
    let calls = 0;
    await assert.rejects(
      executeMerge(plan, {
        runner: pool, out, graftVersion: 'test', chunkElements: 1024, signal: controller.signal,
        onProgress: () => {
          if (++calls === 3) controller.abort();
        },
      }),
      (e: Error) => e instanceof CancelledError || e.name === 'CancelledError',
    );
    assert.equal(fs.existsSync(out), false);
    assert.equal(fs.existsSync(`${out}.partial`), false);
    assert.deepEqual(inputs.map((f) => `${sha(f)}:${fs.statSync(f).mtimeMs}`), before);
  } finally {
    await pool.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A runner that cancels the merge once its `at`-th task is under way, and records the task kinds it saw. */
class CancellingRunner implements TaskRunner<MergeTasks> {
  readonly kinds: string[] = [];
  constructor(
    private readonly inner: TaskRunner<MergeTasks>,
    private readonly at: number,
    private readonly controller: AbortController,
  ) {}

  get concurrency(): number {
    return this.inner.concurrency;
  }

  run<K extends keyof MergeTasks & string>(kind: K, input: Parameters<MergeTasks[K]>[0], options?: RunOptions) {
    const running = this.inner.run(kind, input, options);
    this.kinds.push(kind);
    if (this.kinds.length === this.at) this.controller.abort();
    return running;
  }
}

test('a merge cancelled at any task settles, removes its partial folder and leaves no waiter behind', async () => {
  const dir = tempDir();
  const recipe = SPLIT_RECIPES.ties;
  try {
    await writeTinyFamily(dir);
    const file = path.join(dir, 'cancel.yml');
    fs.writeFileSync(file, recipe);
    const plan = async (out: string) => planMerge(parseRecipe(recipe, file), { out });
    const counting = new CancellingRunner(new InlineRunner(mergeTasks), 0, new AbortController());
    const reference = await executeMerge(await plan(path.join(dir, 'reference')), { runner: counting, out: path.join(dir, 'reference'), graftVersion: 'test', chunkElements: 1024 });
    const tasks = counting.kinds.length;
    assert.ok(counting.kinds.includes('mergeStage') && counting.kinds.includes('mergeApply'));

    const cancelAt = async (runner: TaskRunner<MergeTasks>, at: number, label: string): Promise<string> => {
      const out = path.join(dir, `cancelled-${label}-${at}`);
      const controller = new AbortController();
      const cancelling = new CancellingRunner(runner, at, controller);
      await assert.rejects(
        executeMerge(await plan(out), { runner: cancelling, out, graftVersion: 'test', chunkElements: 1024, signal: controller.signal }),
        (e: Error) => e.name === 'CancelledError',
        `${label}: cancelled at task ${at} of ${tasks}`,
      );
      assert.equal(fs.existsSync(out), false, `${label}, task ${at}: no output`);
      assert.equal(fs.existsSync(`${out}.partial`), false, `${label}, task ${at}: the partial folder is removed`);
      return cancelling.kinds[at - 1];
    };

    // Inline: the first tasks, then every third one to the last, stage passes and apply alike;
    // kernel memory is all given back each time.
    const kinds = new Set<string>();
    const inline = new InlineRunner(mergeTasks);
    for (let at = 1; at <= tasks; at += at < 6 ? 1 : 3) {
      kinds.add(await cancelAt(inline, at, 'inline'));
      const memory = wasmKernels()?.memory;
      assert.equal(memory?.regionsOut ?? 0, 0, `inline, task ${at}: kernel regions given back`);
      assert.equal(memory?.waiters ?? 0, 0, `inline, task ${at}: nobody waits for kernel memory`);
    }
    assert.deepEqual([...kinds].sort(), ['mergeApply', 'mergeStage']);

    // Worker threads: a fresh pool disposed right after each cancel (tasks still finishing on the
    // threads must neither outlive the merge nor keep dispose() from settling), at points spread
    // over the run; then one pool that takes cancel after cancel and still merges exactly.
    const points = [...new Set([1, 2, ...Array.from({ length: 5 }, (_, i) => Math.round(((i + 1) * tasks) / 6)), tasks])];
    for (const size of [1, 2]) {
      for (const at of points) {
        const pool = new WorkerPool<GraftTasks>({ workerScript, size });
        try {
          await cancelAt(pool, at, `${size} workers`);
        } finally {
          await pool.dispose();
        }
      }
      const pool = new WorkerPool<GraftTasks>({ workerScript, size });
      try {
        for (let at = 1; at <= tasks; at += 13) await cancelAt(pool, at, `${size} workers, one pool`);
        const out = path.join(dir, `after-cancels-${size}`);
        await executeMerge(await plan(out), { runner: pool, out, graftVersion: 'test', chunkElements: 1024 });
        assert.equal(sha(path.join(out, 'model.safetensors')), sha(path.join(reference.out, 'model.safetensors')), `${size} workers: a merge after the cancels is exact`);
      } finally {
        await pool.dispose();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a merge whose task fails stops its other tasks, removes its partial folder and reports that failure', async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir);
    const file = path.join(dir, 'fail.yml');
    fs.writeFileSync(file, SPLIT_RECIPES.ties);
    for (const at of [1, 7, 60, 150]) {
      const inner = new InlineRunner(mergeTasks);
      let calls = 0;
      let running = 0;
      const failing: TaskRunner<MergeTasks> = {
        concurrency: 2,
        run(kind, input, options) {
          if (++calls === at) return Promise.reject(new Error('the disk went away'));
          running++;
          return inner.run(kind, input, options).finally(() => running--);
        },
      };
      const out = path.join(dir, `failed-${at}`);
      await assert.rejects(executeMerge(await planMerge(parseRecipe(SPLIT_RECIPES.ties, file), { out }), { runner: failing, out, graftVersion: 'test', chunkElements: 1024 }), /the disk went away/);
      assert.equal(running, 0, `task ${at}: no task still runs once the merge has failed`);
      assert.equal(fs.existsSync(`${out}.partial`), false);
      assert.equal(fs.existsSync(out), false);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the plan estimate calibrates on the kernels the merge runs, and gives their memory back', async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir);
    const file = path.join(dir, 'estimate.yml');
    fs.writeFileSync(file, SPLIT_RECIPES.ties);
    const plan = await planMerge(parseRecipe(SPLIT_RECIPES.ties, file), { out: path.join(dir, 'merged') });
    for (const kernels of ['webassembly', 'javascript'] as const) {
      const estimate = estimateMerge(plan, 2, kernels);
      assert.ok(estimate.rates.ties > 0 && Number.isFinite(estimate.rates.ties), `${kernels}: a rate for ties`);
      assert.ok(estimate.seconds > 0 && estimate.peakBytes > 0);
      assert.equal(wasmKernels()?.memory.regionsOut ?? 0, 0, `${kernels}: calibration memory given back`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a model with tied embeddings lends its embedding as the head when merged with untied ones', async () => {
  const dir = tempDir();
  try {
    await writeTinyModel(path.join(dir, 'untied'), TINY, tinyValues(TINY, 11));
    const tiedValues = tinyValues(TINY, 12);
    await writeTinyModel(path.join(dir, 'tied'), TINY, tiedValues);
    // Make "tied" a tied-embedding model: no lm_head in its file, tie_word_embeddings in its config.
    const tiedLayout = await openCheckpoint(path.join(dir, 'tied'));
    const kept = await Promise.all(tiedLayout.tensors.filter((t) => t.name !== 'lm_head.weight').map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(fs.readFileSync(t.file).subarray(t.begin, t.end)) })));
    fs.rmSync(path.join(dir, 'tied', 'model.safetensors'));
    await writeSafetensors(path.join(dir, 'tied', 'model.safetensors'), kept);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'tied', 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'tied', 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: true }));

    const result = await merge('merge_method: linear\nmodels:\n  - model: untied\n    parameters: {weight: 1}\n  - model: tied\n    parameters: {weight: 1}\ndtype: float32\n', dir, path.join(dir, 'merged'));
    const head = await values(await openCheckpoint(result.out), 'lm_head.weight');
    const a = await values(await openCheckpoint(path.join(dir, 'untied')), 'lm_head.weight');
    const b = await values(await openCheckpoint(path.join(dir, 'tied')), 'model.embed_tokens.weight');
    for (let i = 0; i < head.length; i++) assert.equal(head[i], Math.fround(Math.fround(a[i] + b[i]) / 2));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
