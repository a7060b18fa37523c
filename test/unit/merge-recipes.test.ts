// Malformed recipes: each gives a clear error with line and column, through the CLI as a user
// meets it, and leaves no output folder.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { runCli } from '../../src/cli/main';
import { parseRecipeText } from '../../src/core/merge';
import { encodeFromFloat32, writeSafetensors } from '../../src/core/safetensors';
import { TINY, tinyValues, writeTinyFamily, writeTinyModel } from '../support/tinyModels';
import { repoRoot, tempDir } from './helpers';

const execFileAsync = promisify(execFile);

interface Case {
  name: string;
  recipe: string;
  /** Expected line (1-based) of the first error, and a pattern of its message. */
  line: number;
  message: RegExp;
}

const TA = (models: string) => `merge_method: task_arithmetic\nbase_model: base\nmodels:\n${models}`;

const CASES: Case[] = [
  { name: 'bad YAML', recipe: 'merge_method: linear\nmodels: [ft1, {model: ft2\n', line: 3, message: /YAML syntax/ },
  { name: 'unknown method', recipe: 'merge_method: tie\nbase_model: base\nmodels: [ft1]\n', line: 1, message: /Unknown merge method "tie"\. Did you mean "ties"\?/ },
  { name: 'unknown parameter', recipe: 'merge_method: ties\nbase_model: base\nparameters:\n  densty: 0.5\nmodels: [ft1]\n', line: 4, message: /Unknown parameter "densty" for ties\. Did you mean "density"\?/ },
  { name: 'missing model', recipe: TA('  - model: ft9\n    parameters: {weight: 1}\n'), line: 4, message: /Model "ft9" not found/ },
  { name: 'shape mismatch', recipe: TA('  - model: wide\n    parameters: {weight: 1}\n'), line: 4, message: /Shapes differ in "[\w.]+": \[[\d, ]*48\] in "wide" but \[[\d, ]*32\]/ },
  { name: 'vocabulary mismatch', recipe: 'merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n  - model: bigvocab\n    parameters: {weight: 1}\n', line: 5, message: /Vocabulary sizes differ .* tokenizer_source: base/ },
  { name: 'layer range past the end', recipe: 'merge_method: passthrough\nslices:\n  - sources:\n      - model: base\n        layer_range: [0, 9]\n', line: 5, message: /goes past the 4 layers of "base"/ },
  { name: 'empty layer range', recipe: 'merge_method: passthrough\nslices:\n  - sources:\n      - model: base\n        layer_range: [3, 1]\n', line: 5, message: /layer_range \[3, 1\] is empty/ },
  { name: 'slice sources of unequal length', recipe: 'merge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\nslices:\n  - sources:\n      - {model: base, layer_range: [0, 2]}\n      - {model: ft1, layer_range: [0, 3]}\n', line: 5, message: /cover 2 and 3 layers/ },
  { name: 'recipe reading its own output', recipe: TA('  - model: out/inner\n    parameters: {weight: 1}\n'), line: 4, message: /inside the output folder/ },
  { name: 'no merge_method', recipe: 'models: [ft1]\n', line: 1, message: /has no "merge_method"/ },
  { name: 'no inputs', recipe: 'merge_method: linear\n', line: 1, message: /lists no inputs/ },
  { name: 'unknown key', recipe: 'merge_method: ties\nbase_modle: base\nmodels: [ft1]\n', line: 2, message: /Unknown key "base_modle" in a recipe\. Did you mean "base_model"\?/ },
  { name: 'method needs a base', recipe: 'merge_method: ties\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n', line: 1, message: /ties needs a base_model/ },
  { name: 'missing weight', recipe: TA('  - model: ft1\n'), line: 4, message: /Model "ft1" has no "weight" for task_arithmetic/ },
  { name: 'parameter out of range', recipe: 'merge_method: ties\nbase_model: base\nparameters: {density: 1.5, weight: 1}\nmodels: [ft1]\n', line: 3, message: /"density" is 1\.5, outside \[0, 1\]/ },
  { name: 'parameter of the wrong type', recipe: TA('  - model: ft1\n    parameters: {weight: heavy}\n'), line: 5, message: /"weight" must be a number, not "heavy"/ },
  { name: 'unknown choice', recipe: 'merge_method: ties\nbase_model: base\nparameters: {semantics: pef, weight: 1}\nmodels: [ft1]\n', line: 3, message: /must be one of mergekit, peft, not "pef"\. Did you mean "peft"\?/ },
  { name: 'too many models for slerp', recipe: 'merge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\nmodels: [ft1, ft2]\n', line: 1, message: /slerp merges exactly 2 models/ },
  { name: 'unnamed stage', recipe: 'name: soup\nmerge_method: linear\nmodels: [{model: ft1, parameters: {weight: 1}}]\n---\nmerge_method: linear\nmodels: [{model: soup, parameters: {weight: 1}}]\n', line: 5, message: /Stage 2 .* has no "name"/ },
  { name: 'adapter of another model', recipe: 'merge_method: passthrough\nmodels: [base+adapter]\n', line: 2, message: /does not fit its base/ },
  { name: 'YAML tag', recipe: 'merge_method: !!python/object/apply:os.system ["ls"]\nmodels: [ft1]\n', line: 1, message: /YAML tag/ },
];

test(`${CASES.length} malformed recipes: a clear error with line and column, no output folder`, async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir, TINY, 2);
    const wide = { ...TINY, hidden: 48 };
    await writeTinyModel(path.join(dir, 'wide'), wide, tinyValues(wide, 9));
    const bigVocab = { ...TINY, vocab: 96 };
    await writeTinyModel(path.join(dir, 'bigvocab'), bigVocab, tinyValues(bigVocab, 10));
    fs.mkdirSync(path.join(dir, 'out', 'inner'), { recursive: true });
    fs.cpSync(path.join(dir, 'ft1'), path.join(dir, 'out', 'inner'), { recursive: true });
    // A LoRA of a model with hidden size 48 (factors [2, 48] and [48, 2]) given to the 32-wide base.
    fs.mkdirSync(path.join(dir, 'adapter'));
    fs.writeFileSync(path.join(dir, 'adapter', 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 2 }));
    const factor = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: encodeFromFloat32('F32', new Float32Array(shape[0] * shape[1])) });
    await writeSafetensors(path.join(dir, 'adapter', 'adapter_model.safetensors'), [
      { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', ...factor([2, 48]) },
      { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', ...factor([48, 2]) },
    ]);

    for (const c of CASES) {
      const file = path.join(dir, `${c.name.replace(/\W+/g, '-')}.yml`);
      fs.writeFileSync(file, c.recipe);
      const outDir = c.name === 'recipe reading its own output' ? path.join(dir, 'out') : path.join(dir, `result-${c.name.replace(/\W+/g, '-')}`);
      const lines: string[] = [];
      const code = await runCli(['merge', file, '--out', outDir, '--json', '--no-hf-cache'], { stdout: (t) => lines.push(t), stderr: () => undefined });
      assert.equal(code, 1, `${c.name}: exit code`);
      const { error } = JSON.parse(lines.join(''));
      assert.ok(error, `${c.name}: an error object`);
      assert.equal(error.kind, 'recipe', `${c.name}: ${error.message}`);
      assert.equal(error.line, c.line, `${c.name}: line of "${error.message}"`);
      assert.ok(error.column >= 1, `${c.name}: a column`);
      assert.match(error.message, c.message, c.name);
      assert.ok(error.message.startsWith(`${file}:${error.line}:${error.column}: `), `${c.name}: the message names file, line and column`);
      if (c.name !== 'recipe reading its own output') assert.equal(fs.existsSync(outDir), false, `${c.name}: no output folder`);
      assert.equal(fs.existsSync(`${outDir}.partial`), false, `${c.name}: no partial folder`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('every problem of a recipe is reported, in file order, with suggestions for quick fixes', () => {
  const { recipe, problems } = parseRecipeText('merge_method: ties\nbase_modle: b\nparameters:\n  densty: 0.5\n  weigth: 1\nmodels: [a]\n', 'r.yml');
  assert.equal(recipe, undefined);
  assert.deepEqual(problems.map((p) => [p.pos.line, p.code, p.suggestion]), [[2, 'unknown-key', 'base_model'], [4, 'unknown-parameter', 'density'], [5, 'unknown-parameter', 'weight']]);
});

test('graft merge --plan prints what would be computed and writes nothing', async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir, TINY, 2);
    const file = path.join(dir, 'r.yml');
    fs.writeFileSync(file, 'merge_method: ties\nbase_model: base\nparameters: {density: 0.5, weight: 0.5}\nmodels: [ft1, ft2]\n');
    const out: string[] = [];
    const code = await runCli(['merge', file, '--out', path.join(dir, 'merged'), '--plan', '--json', '--no-hf-cache'], { stdout: (t) => out.push(t), stderr: () => undefined });
    assert.equal(code, 0);
    const { plan } = JSON.parse(out.join(''));
    assert.equal(plan.method, 'ties');
    assert.equal(plan.tensors, 39);
    assert.equal(plan.shards, 1);
    assert.ok(plan.peak_memory_bytes < 512 * 1024 * 1024);
    assert.ok(plan.estimated_seconds > 0);
    assert.equal(fs.existsSync(path.join(dir, 'merged')), false);
    const usage = await runCli(['merge', file], { stdout: () => undefined, stderr: () => undefined });
    assert.equal(usage, 2, 'no --out and no --plan is a usage error');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('graft merge runs a two-stage recipe, keeps its intermediate on request, and reports JSON', async () => {
  const dir = tempDir();
  try {
    await writeTinyFamily(dir, TINY, 2);
    const file = path.join(dir, 'two.yml');
    fs.writeFileSync(file, 'name: soup\nmerge_method: linear\nmodels:\n  - model: ft1\n    parameters: {weight: 1}\n  - model: ft2\n    parameters: {weight: 1}\n---\nname: final\nmerge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\nmodels: [soup]\n');
    // The bundled CLI, as users run it, with its worker threads.
    const { stdout } = await execFileAsync(process.execPath, [path.join(repoRoot, 'dist', 'cli.js'), 'merge', file, '--out', path.join(dir, 'final'), '--json', '--keep-intermediates', '--no-hf-cache', '--workers', '2']);
    const result = JSON.parse(stdout);
    assert.equal(result.method, 'slerp');
    assert.equal(result.tensors, 39);
    assert.ok(result.peak_rss_bytes > 0 && result.seconds >= 0);
    assert.deepEqual(result.inputs.map((i: { reference: string }) => i.reference), ['ft1', 'ft2', 'base']);
    assert.ok(fs.existsSync(path.join(dir, 'final', 'model.safetensors')));
    assert.ok(fs.existsSync(path.join(dir, 'final', 'intermediates', 'soup', 'model.safetensors')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
