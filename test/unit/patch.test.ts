// Weight patches: extract then apply gives the model back (exactly with a float32 patch of a bf16
// model or a float64 patch of a float32 one, within one rounding of the patch dtype otherwise),
// apply then remove gives the base back, a patch of another base is refused naming both, top-k
// density keeps the largest differences, several patches compose in one pass.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { InlineRunner } from '../../src/core/engine/pool';
import { applyPatches, extractPatch, patchBaseDistance, patchLayerNorms, patchTasks, readPatch, type PatchTasks } from '../../src/core/patch';
import { bf16ToF32Table, f32BitsToBf16, openCheckpoint, readElements, type CheckpointLayout } from '../../src/core/safetensors';
import { parseTensorName } from '../../src/core/tensors/names';
import { TINY, tinyValues, writeTinyModel } from '../support/tinyModels';
import { fixture, tempDir } from './helpers';

const models = fixture('zoo', 'workspace', 'models');
const runner = new InlineRunner<PatchTasks>(patchTasks);

async function tensors(dir: string): Promise<Map<string, Float64Array>> {
  const layout = await openCheckpoint(dir);
  const out = new Map<string, Float64Array>();
  for (const t of layout.tensors) out.set(t.name, Float64Array.from(await readElements(t, 0, t.numel)));
  return out;
}

async function open(name: string): Promise<CheckpointLayout> {
  return openCheckpoint(path.join(models, name));
}

function bf16(x: number): number {
  const f = new Float32Array([x]);
  return bf16ToF32Table()[f32BitsToBf16(new Uint32Array(f.buffer)[0])];
}

test('a float32 patch of a bf16 model round-trips exactly; apply then remove gives the base back', async () => {
  const dir = tempDir();
  try {
    const [math, base] = await Promise.all([open('tiny-llama-math'), open('tiny-llama-base')]);
    const file = path.join(dir, 'math.safetensors');
    const extracted = await extractPatch({ runner, model: math, base, out: file, dtype: 'F32', graftVersion: 'test', chunkElements: 5000 });
    assert.equal(extracted.inexact, 0);
    const info = await readPatch(file);
    assert.equal(info.tensors, 57);
    assert.equal(info.baseWeights, extracted.baseWeights);

    await applyPatches({ runner, model: base, patches: [{ info, scale: 1 }], out: path.join(dir, 'rebuilt'), graftVersion: 'test', chunkElements: 3000 });
    const rebuilt = fs.readFileSync(path.join(dir, 'rebuilt', 'model.safetensors'));
    const [want, got] = [await tensors(math.path), await tensors(path.join(dir, 'rebuilt'))];
    for (const [name, values] of want) assert.deepEqual(got.get(name), values, name);
    assert.ok(rebuilt.length > 0);
    const provenance = JSON.parse(fs.readFileSync(path.join(dir, 'rebuilt', 'graft_provenance.json'), 'utf8'));
    assert.equal(provenance.method, 'patch');
    assert.equal(provenance.recipe.patches[0].scale, 1);
    assert.ok(fs.existsSync(path.join(dir, 'rebuilt', 'config.json')));

    // The rebuilt model has the fine-tune's weights, so removing the patch from it is allowed.
    await applyPatches({ runner, model: await openCheckpoint(path.join(dir, 'rebuilt')), patches: [{ info, scale: -1 }], out: path.join(dir, 'removed'), graftVersion: 'test' });
    // x - d is b exactly wherever d = x - b is exact in float32 (|b| within 2^16 of |x|); elsewhere it
    // is b within one bf16 rounding of x.
    const [baseValues, removed] = [await tensors(base.path), await tensors(path.join(dir, 'removed'))];
    let exactDifferences = 0;
    for (const [name, values] of baseValues) {
      const x = want.get(name)!;
      const actual = removed.get(name)!;
      for (let i = 0; i < values.length; i++) {
        if (Math.fround(x[i] - values[i]) === x[i] - values[i]) {
          exactDifferences++;
          assert.equal(actual[i], values[i], `${name}[${i}]`);
        } else {
          assert.ok(Math.abs(actual[i] - values[i]) <= Math.abs(x[i]) * 2 ** -8, `${name}[${i}]`);
        }
      }
    }
    assert.ok(exactDifferences > 0.99 * 324416, `${exactDifferences} exact differences`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a bf16 patch round-trips within one bf16 rounding, and counts the elements it cannot give back exactly', async () => {
  const dir = tempDir();
  try {
    const [math, base] = await Promise.all([open('tiny-llama-math'), open('tiny-llama-base')]);
    const file = path.join(dir, 'math.safetensors');
    const extracted = await extractPatch({ runner, model: math, base, out: file, graftVersion: 'test' });
    assert.equal((await readPatch(file)).dtype, 'BF16');
    await applyPatches({ runner, model: base, patches: [{ info: await readPatch(file), scale: 1 }], out: path.join(dir, 'rebuilt'), graftVersion: 'test' });
    const [want, got, baseValues] = [await tensors(math.path), await tensors(path.join(dir, 'rebuilt')), await tensors(base.path)];
    let differ = 0;
    for (const [name, values] of want) {
      const actual = got.get(name)!;
      const b = baseValues.get(name)!;
      for (let i = 0; i < values.length; i++) {
        // Expected: base + bf16(float32(x - b)), rounded to bf16, computed here without the kernels.
        const expected = bf16(b[i] + bf16(Math.fround(values[i] - b[i])));
        assert.equal(actual[i], expected, `${name}[${i}]`);
        if (actual[i] !== values[i]) {
          differ++;
          // One bf16 rounding of the difference: at most half a bf16 step of |x - b| away, and one step of x.
          assert.ok(Math.abs(actual[i] - values[i]) <= Math.abs(values[i] - b[i]) * 2 ** -8 + Math.abs(values[i]) * 2 ** -8, `${name}[${i}]`);
        }
      }
    }
    assert.equal(differ, extracted.inexact);
    assert.ok(differ > 0, 'bf16 rounding of the differences shows on this pair');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a float64 patch of a float32 model round-trips and removes exactly; a float32 patch reports what it cannot', async () => {
  const dir = tempDir();
  try {
    const spec = { ...TINY, dtype: 'F32' as const };
    const baseValues = tinyValues(spec, 7);
    await writeTinyModel(path.join(dir, 'base'), spec, baseValues);
    await writeTinyModel(path.join(dir, 'ft'), spec, tinyValues(spec, 8, baseValues));
    const [base, ft] = await Promise.all([openCheckpoint(path.join(dir, 'base')), openCheckpoint(path.join(dir, 'ft'))]);
    const exact = await extractPatch({ runner, model: ft, base, out: path.join(dir, 'p64.safetensors'), dtype: 'F64', graftVersion: 'test' });
    assert.equal(exact.inexact, 0);
    await applyPatches({ runner, model: base, patches: [{ info: await readPatch(path.join(dir, 'p64.safetensors')), scale: 1 }], out: path.join(dir, 'r64'), graftVersion: 'test' });
    const want = await tensors(ft.path);
    const got = await tensors(path.join(dir, 'r64'));
    for (const [name, values] of want) assert.deepEqual(got.get(name), values, name);
    await applyPatches({ runner, model: await openCheckpoint(path.join(dir, 'r64')), patches: [{ info: await readPatch(path.join(dir, 'p64.safetensors')), scale: -1 }], out: path.join(dir, 'back'), graftVersion: 'test' });
    const back = await tensors(path.join(dir, 'back'));
    for (const [name, values] of await tensors(base.path)) assert.deepEqual(back.get(name), values, name);

    const plain = await extractPatch({ runner, model: ft, base, out: path.join(dir, 'p32.safetensors'), graftVersion: 'test' });
    await applyPatches({ runner, model: base, patches: [{ info: await readPatch(path.join(dir, 'p32.safetensors')), scale: 1 }], out: path.join(dir, 'r32'), graftVersion: 'test' });
    const got32 = await tensors(path.join(dir, 'r32'));
    let differ = 0;
    for (const [name, values] of want) {
      const actual = got32.get(name)!;
      for (let i = 0; i < values.length; i++) if (actual[i] !== values[i]) differ++;
    }
    assert.equal(differ, plain.inexact);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a patch made against another base is refused naming both; --force reports the distance', async () => {
  const dir = tempDir();
  try {
    const [math, base, v2] = await Promise.all([open('tiny-llama-math'), open('tiny-llama-base'), open('tiny-llama-base-v2')]);
    const file = path.join(dir, 'math.safetensors');
    await extractPatch({ runner, model: math, base, out: file, dtype: 'F32', graftVersion: 'test' });
    const info = await readPatch(file);
    await assert.rejects(
      applyPatches({ runner, model: v2, patches: [{ info, scale: 1 }], out: path.join(dir, 'out'), graftVersion: 'test' }),
      (error: Error) => error.name === 'PatchError' && error.message.includes('tiny-llama-base"') && error.message.includes(info.baseWeights) && error.message.includes(v2.path) && error.message.includes('--force'),
    );
    assert.equal(fs.existsSync(path.join(dir, 'out')), false);
    assert.equal(fs.existsSync(path.join(dir, 'out.partial')), false);

    const forced = await applyPatches({ runner, model: v2, patches: [{ info, scale: 1 }], out: path.join(dir, 'out'), force: true, graftVersion: 'test' });
    assert.equal(forced.mismatched.length, 1);
    // The lower bound recomputed here in float64: sqrt(sum (||v2_t|| - ||base_t||)^2 / sum ||base_t||^2).
    const [v2Values, baseValues] = [await tensors(v2.path), await tensors(base.path)];
    let gap2 = 0;
    let base2 = 0;
    for (const t of info.layout.tensors) {
      const norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      const [m, b] = [norm(v2Values.get(t.name)!), norm(baseValues.get(t.name)!)];
      gap2 += (m - b) ** 2;
      base2 += b * b;
    }
    assert.ok(Math.abs(forced.mismatched[0].relativeDistanceAtLeast - Math.sqrt(gap2 / base2)) < 1e-9);
    assert.ok(forced.mismatched[0].relativeDistanceAtLeast > 0);
    // The same figure before applying (what the editor shows when it asks whether to apply anyway).
    const before = await patchBaseDistance(runner, v2, info);
    assert.equal(before.matches, false);
    assert.ok(Math.abs(before.relativeDistanceAtLeast - Math.sqrt(gap2 / base2)) < 1e-9);
    assert.deepEqual(await patchBaseDistance(runner, base, info), { modelWeights: info.baseWeights, matches: true, relativeDistanceAtLeast: 0 });

    // An existing output is never replaced without force.
    await assert.rejects(applyPatches({ runner, model: base, patches: [{ info, scale: 1 }], out: path.join(dir, 'out'), graftVersion: 'test' }), /already exists/);
    await assert.rejects(extractPatch({ runner, model: math, base, out: file, graftVersion: 'test' }), /already exists/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--density keeps each tensor\'s largest differences; two patches compose in one pass; info gives norms per layer', async () => {
  const dir = tempDir();
  try {
    const [math, code, base] = await Promise.all([open('tiny-llama-math'), open('tiny-llama-code'), open('tiny-llama-base')]);
    const sparse = path.join(dir, 'sparse.safetensors');
    await extractPatch({ runner, model: math, base, out: sparse, dtype: 'F32', density: 0.2, graftVersion: 'test', chunkElements: 4096 });
    const stored = await tensors(sparse);
    const [mathValues, baseValues, codeValues] = [await tensors(math.path), await tensors(base.path), await tensors(code.path)];
    for (const [name, d] of stored) {
      const full = mathValues.get(name)!.map((x, i) => Math.fround(x - baseValues.get(name)![i]));
      let keptMin = Infinity;
      let droppedMax = 0;
      let kept = 0;
      for (let i = 0; i < d.length; i++) {
        if (d[i] !== 0) {
          assert.equal(d[i], full[i]);
          keptMin = Math.min(keptMin, Math.abs(full[i]));
          kept++;
        } else droppedMax = Math.max(droppedMax, Math.abs(full[i]));
      }
      assert.ok(kept >= Math.ceil(0.2 * d.length), `${name}: ${kept} kept`);
      assert.ok(droppedMax <= keptMin, `${name}: a dropped difference is larger than a kept one`);
    }

    const dense = path.join(dir, 'code.safetensors');
    await extractPatch({ runner, model: code, base, out: dense, dtype: 'F32', graftVersion: 'test' });
    const mathPatch = path.join(dir, 'math.safetensors');
    await extractPatch({ runner, model: math, base, out: mathPatch, dtype: 'F32', graftVersion: 'test' });
    await applyPatches({ runner, model: base, patches: [{ info: await readPatch(mathPatch), scale: 0.5 }, { info: await readPatch(dense), scale: 0.25 }], out: path.join(dir, 'both'), graftVersion: 'test' });
    const both = await tensors(path.join(dir, 'both'));
    for (const [name, b] of baseValues) {
      const m = mathValues.get(name)!;
      const c = codeValues.get(name)!;
      const actual = both.get(name)!;
      for (let i = 0; i < b.length; i++) assert.equal(actual[i], bf16(b[i] + 0.5 * Math.fround(m[i] - b[i]) + 0.25 * Math.fround(c[i] - b[i])), `${name}[${i}]`);
    }

    const layers = patchLayerNorms(await readPatch(mathPatch));
    const layer2 = layers.find((l) => l.layer === 2)!;
    let d2 = 0;
    let b2 = 0;
    for (const [name, b] of baseValues) {
      if (parseTensorName(name).layer !== 2) continue;
      const m = mathValues.get(name)!;
      for (let i = 0; i < b.length; i++) {
        d2 += Math.fround(m[i] - b[i]) ** 2;
        b2 += b[i] * b[i];
      }
    }
    assert.ok(Math.abs(layer2.norm - Math.sqrt(d2)) < 1e-9 * Math.sqrt(d2));
    assert.ok(Math.abs(layer2.relative! - Math.sqrt(d2 / b2)) < 1e-9);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a model and base with different tensors cannot make a patch; the problem names the tensor', async () => {
  const [math, gpt2] = await Promise.all([open('tiny-llama-math'), open('tiny-gpt2')]);
  await assert.rejects(extractPatch({ runner, model: math, base: gpt2, out: path.join(tempDir(), 'x.safetensors'), graftVersion: 'test' }), /do not have the same tensors.*"lm_head\.weight" is in the model but not in the base;.*tiny-gpt2" the model's base\?/);
});
