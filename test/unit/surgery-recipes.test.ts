// Recipes Graft writes for the user (merge panel, layer swap, adapter merge, transfer) parse back
// to what was asked, run, and do what their name says; the contributed JSON schema matches the
// method registry.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { InlineRunner } from '../../src/core/engine/pool';
import { executeMerge, MERGE_METHODS, mergeTasks, parseRecipeText, planMerge } from '../../src/core/merge';
import { recipeJsonSchema } from '../../src/core/merge/recipe/schema';
import { missingModels, modelReferences } from '../../src/core/merge/recipe/references';
import { layerSwapSlices, recipeToYaml } from '../../src/core/merge/recipe/write';
import { openCheckpoint, readElements } from '../../src/core/safetensors';
import { TINY, writeTinyFamily } from '../support/tinyModels';
import { repoRoot, tempDir } from './helpers';

test('media/recipe.schema.json is the schema the method registry gives (run npm run schema after changing methods)', () => {
  const file = path.join(repoRoot, 'media', 'recipe.schema.json');
  assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), recipeJsonSchema());
  const schema = recipeJsonSchema() as { properties: { merge_method: { enum: string[] }; parameters: { properties: Record<string, unknown> } } };
  assert.deepEqual(schema.properties.merge_method.enum, MERGE_METHODS.map((m) => m.name));
  for (const method of MERGE_METHODS) {
    for (const p of [...method.parameters, ...method.tensorParameters]) assert.ok(p.name in schema.properties.parameters.properties, `${method.name}'s ${p.name} is in the schema`);
  }
});

test('a written recipe parses back with relative paths, parameters, gradients and base', () => {
  const dir = path.join(path.sep, 'work-area', 'recipes');
  const text = recipeToYaml({
    method: 'ties',
    baseModel: path.join(path.sep, 'work-area', 'models', 'base'),
    models: [
      { model: path.join(path.sep, 'work-area', 'models', 'ft1'), parameters: { weight: 0.6, density: [0.2, 0.8] } },
      { model: 'org/hub-model', parameters: { weight: 0.4 } },
    ],
    parameters: { normalize: false },
    dtype: 'float32',
    comment: 'two lines\nof comment',
  }, dir);
  assert.match(text, /^# two lines\n# of comment\nmerge_method: ties\nbase_model: \.\.\/models\/base\n/);
  const { recipe, problems } = parseRecipeText(text, path.join(dir, 'r.graft.yml'));
  assert.deepEqual(problems, []);
  const stage = recipe!.stages[0];
  assert.equal(stage.method.value, 'ties');
  assert.equal(stage.baseModel?.value, '../models/base');
  assert.deepEqual(stage.models?.map((m) => m.model.value), ['../models/ft1', 'org/hub-model']);
  assert.deepEqual(stage.models?.[0].parameters.get('density')?.setting, { kind: 'gradient', values: [0.2, 0.8] });
  assert.deepEqual(stage.parameters.get('normalize')?.setting, { kind: 'scalar', value: false });
  assert.equal(stage.dtype?.value, 'float32');
});

test('layer swap slices: runs of swapped layers from b, the rest from a, in order', () => {
  assert.deepEqual(layerSwapSlices('a', 'b', 8, [6, 2, 3]), [
    { model: 'a', layerRange: [0, 2] },
    { model: 'b', layerRange: [2, 4] },
    { model: 'a', layerRange: [4, 6] },
    { model: 'b', layerRange: [6, 7] },
    { model: 'a', layerRange: [7, 8] },
  ]);
  assert.deepEqual(layerSwapSlices('a', 'b', 2, [0, 1]), [{ model: 'b', layerRange: [0, 2] }]);
  assert.throws(() => layerSwapSlices('a', 'b', 4, [4]), /Layer 4 is not one of the 4 layers \(0 to 3\)/);
  assert.throws(() => layerSwapSlices('a', 'b', 4, [1.5]), /Layer 1\.5/);
});

test('a layer swap recipe runs: swapped layers are b\'s, every other tensor is a\'s', async () => {
  const dir = tempDir();
  try {
    const { finetunes } = await writeTinyFamily(path.join(dir, 'models'));
    const [a, b] = finetunes;
    const file = path.join(dir, 'swap.graft.yml');
    const text = recipeToYaml({ method: 'passthrough', slices: layerSwapSlices(a, b, TINY.layers, [1, 2]) }, dir);
    assert.match(text, /layer_range: \[1, 3\]/);
    fs.writeFileSync(file, text);
    const parsed = parseRecipeText(text, file);
    assert.deepEqual(parsed.problems, []);
    const out = path.join(dir, 'swapped');
    const plan = await planMerge(parsed.recipe!, { out });
    await executeMerge(plan, { runner: new InlineRunner(mergeTasks), out, graftVersion: 'test' });
    const [merged, left, right] = await Promise.all([out, a, b].map((p) => openCheckpoint(p)));
    assert.deepEqual(merged.tensors.map((t) => t.name).sort(), left.tensors.map((t) => t.name).sort());
    const read = async (layout: typeof merged, name: string) => {
      const ref = layout.tensors.find((t) => t.name === name)!;
      return Array.from(await readElements(ref, 0, ref.numel));
    };
    for (const t of left.tensors) {
      const layer = /layers\.(\d+)\./.exec(t.name)?.[1];
      const source = layer !== undefined && ['1', '2'].includes(layer) ? right : left;
      assert.deepEqual(await read(merged, t.name), await read(source, t.name), `${t.name} comes from ${source === right ? 'b' : 'a'}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('missing models are found in a recipe that does not parse yet, at their positions; stages and adapters count', async () => {
  const dir = tempDir();
  try {
    const { base, finetunes } = await writeTinyFamily(path.join(dir, 'models'));
    const rel = (p: string) => path.relative(dir, p);
    const text = [
      'merge_method: ties',
      `base_model: ${rel(base)}`,
      'models:',
      `  - model: ${rel(finetunes[0])}`,
      '    parameters: {weigth: 1}',
      '  - model: models/nowhere',
      `  - model: ${rel(base)}+adapters/none`,
      '---',
      'name: second',
      'merge_method: linear',
      'models: [first, org/hub-only]',
      '',
    ].join('\n');
    const file = path.join(dir, 'r.graft.yml');
    const { references } = modelReferences(text);
    assert.deepEqual(references.map((r) => [r.value, r.pos.line, r.pos.col]), [
      [rel(base), 2, 13], [rel(finetunes[0]), 4, 12], ['models/nowhere', 6, 12], [`${rel(base)}+adapters/none`, 7, 12], ['first', 11, 10], ['org/hub-only', 11, 17],
    ]);
    const problems = await missingModels(text, file, async (ref) => (ref === 'org/hub-only' ? base : undefined));
    assert.deepEqual(problems.map((p) => [p.subject, p.pos.line]), [['models/nowhere', 6], ['adapters/none', 7], ['first', 11]]);
    assert.match(problems[0].message, /Model "models\/nowhere" not found/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
