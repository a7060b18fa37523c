// LoRA extraction: on a difference with a known low-rank part plus noise, the extracted adapter's
// reconstruction error is within 1% of the exact truncated SVD's (a plain one-sided Jacobi SVD
// here); the adapter is peft-shaped and Graft's own LoRA merge applies it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { combineTaskMaps, InlineRunner } from '../../src/core/engine/pool';
import { loraTasks } from '../../src/core/lora';
import { extractLora } from '../../src/core/lora/extract';
import { executeMerge, mergeTasks, parseRecipe, planMerge } from '../../src/core/merge';
import { patchTasks } from '../../src/core/patch';
import { openCheckpoint, readElements, writeSafetensors } from '../../src/core/safetensors';
import { normal, rng } from '../support/tinyModels';
import { tempDir } from './helpers';

const M = 72;
const N = 48;
const TRUE_RANK = 5;
const runner = new InlineRunner(combineTaskMaps(loraTasks, patchTasks));

/** Singular values of a rows x cols matrix by one-sided Jacobi (columns orthogonalized in place). */
function exactSingularValues(matrix: Float64Array, rows: number, cols: number): number[] {
  const a = Float64Array.from(matrix);
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < cols; p++) {
      for (let q = p + 1; q < cols; q++) {
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < rows; i++) {
          alpha += a[i * cols + p] ** 2;
          beta += a[i * cols + q] ** 2;
          gamma += a[i * cols + p] * a[i * cols + q];
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = a[i * cols + p];
          const y = a[i * cols + q];
          a[i * cols + p] = c * x - s * y;
          a[i * cols + q] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const sigma: number[] = [];
  for (let k = 0; k < cols; k++) {
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += a[i * cols + k] ** 2;
    sigma.push(Math.sqrt(norm));
  }
  return sigma.sort((x, y) => y - x);
}

async function writeModel(dir: string, up: Float32Array, norm: Float32Array): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), [
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [M, N], data: new Uint8Array(up.buffer) },
    { name: 'model.layers.0.post_attention_layernorm.weight', dtype: 'F32', shape: [N], data: new Uint8Array(norm.buffer) },
  ], { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama' }));
}

async function values(dir: string, name: string): Promise<Float64Array> {
  const t = (await openCheckpoint(dir)).tensors.find((x) => x.name === name)!;
  return Float64Array.from(await readElements(t, 0, t.numel));
}

test('a rank-r adapter reconstructs within 1% of the exact truncated SVD, and Graft\'s LoRA merge applies it', async () => {
  const dir = tempDir();
  try {
    const random = rng(42);
    const base = Float32Array.from({ length: M * N }, () => 0.05 * normal(random));
    const left = Array.from({ length: TRUE_RANK }, () => Float64Array.from({ length: M }, () => normal(random)));
    const right = Array.from({ length: TRUE_RANK }, () => Float64Array.from({ length: N }, () => normal(random)));
    const model = new Float32Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let low = 0;
        for (let k = 0; k < TRUE_RANK; k++) low += (0.01 / (k + 1)) * left[k][i] * right[k][j];
        model[i * N + j] = base[i * N + j] + low + 0.002 * normal(random);
      }
    }
    const norm = Float32Array.from({ length: N }, () => 1 + 0.05 * normal(random));
    const tunedNorm = norm.map((x) => x + 0.01);
    await writeModel(path.join(dir, 'base'), base, norm);
    await writeModel(path.join(dir, 'ft'), model, tunedNorm);
    const d = Float64Array.from(model, (x, i) => x - base[i]);
    const sigma = exactSingularValues(d, M, N);
    const total = sigma.reduce((s, x) => s + x * x, 0);

    for (const rank of [TRUE_RANK, 3]) {
      const out = path.join(dir, `adapter-${rank}`);
      const result = await extractLora({
        runner, model: await openCheckpoint(path.join(dir, 'ft')), base: await openCheckpoint(path.join(dir, 'base')), out, rank, graftVersion: 'test',
      });
      assert.deepEqual(result.modulesToSave, ['model.layers.0.post_attention_layernorm']);
      const module = result.modules[0];
      assert.equal(module.rank, rank);
      const a = await values(out, 'base_model.model.model.layers.0.mlp.up_proj.lora_A.weight');
      const b = await values(out, 'base_model.model.model.layers.0.mlp.up_proj.lora_B.weight');
      let error2 = 0;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let ba = 0;
          for (let k = 0; k < rank; k++) ba += b[i * rank + k] * a[k * N + j];
          error2 += (d[i * N + j] - ba) ** 2;
        }
      }
      const exactError = Math.sqrt(sigma.slice(rank).reduce((s, x) => s + x * x, 0) / total);
      const extractedError = Math.sqrt(error2 / total);
      assert.ok(extractedError <= exactError * 1.01, `rank ${rank}: ${extractedError} vs exact ${exactError}`);
      assert.ok(Math.abs(module.relativeError - extractedError) < 1e-4, `reported ${module.relativeError} vs measured ${extractedError}`);
      const retainedExact = sigma.slice(0, rank).reduce((s, x) => s + x * x, 0) / total;
      assert.ok(Math.abs(module.retained - retainedExact) < 0.01 * retainedExact);

      const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
      assert.equal(config.r, rank);
      assert.equal(config.lora_alpha, rank);
      assert.deepEqual(config.target_modules, ['up_proj']);
      assert.equal(config.peft_type, 'LORA');
      assert.equal(config.base_model_name_or_path, '../base');

      // Graft's LoRA merge: base + B A (scale alpha / r = 1), the norm replaced by the fine-tune's.
      const recipe = `merge_method: passthrough\nmodels:\n  - model: base+adapter-${rank}\ndtype: float32\n`;
      const file = path.join(dir, `merge-${rank}.yml`);
      fs.writeFileSync(file, recipe);
      const plan = await planMerge(parseRecipe(recipe, file), { out: path.join(dir, `merged-${rank}`) });
      await executeMerge(plan, { runner: new InlineRunner(mergeTasks), out: path.join(dir, `merged-${rank}`), graftVersion: 'test' });
      const merged = await values(path.join(dir, `merged-${rank}`), 'model.layers.0.mlp.up_proj.weight');
      let mergedError2 = 0;
      for (let i = 0; i < M * N; i++) mergedError2 += (merged[i] - model[i]) ** 2;
      assert.ok(Math.abs(Math.sqrt(mergedError2 / total) - extractedError) < 1e-3);
      assert.deepEqual(await values(path.join(dir, `merged-${rank}`), 'model.layers.0.post_attention_layernorm.weight'), Float64Array.from(tunedNorm));
    }

    // --energy keeps the smallest rank holding the share asked for.
    const energy = await extractLora({ runner, model: await openCheckpoint(path.join(dir, 'ft')), base: await openCheckpoint(path.join(dir, 'base')), out: path.join(dir, 'energy'), rank: 20, energy: 0.8, graftVersion: 'test' });
    let held = 0;
    let want = 0;
    while (held < 0.8 * total) held += sigma[want++] ** 2;
    assert.equal(energy.modules[0].rank, want);
    await assert.rejects(extractLora({ runner, model: await openCheckpoint(path.join(dir, 'ft')), base: await openCheckpoint(path.join(dir, 'base')), out: path.join(dir, 'energy'), rank: 4, graftVersion: 'test' }), /already exists/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
