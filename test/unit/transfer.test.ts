// Fine-tuning transfer on the zoo: tiny-llama-math moved from tiny-llama-base onto
// tiny-llama-base-v2 equals base-v2 + (math - base) computed here element by element, and the
// connectivity report's figures equal a float64 computation over the raw weights.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { diffTasks } from '../../src/core/diff/tasks';
import { InlineRunner } from '../../src/core/engine/pool';
import { mergeTasks } from '../../src/core/merge';
import { bf16ToF32Table, f32BitsToBf16, openCheckpoint, readElements } from '../../src/core/safetensors';
import { parseTensorName } from '../../src/core/tensors/names';
import { connectivityReport, prepareTransfer, runTransfer } from '../../src/core/transfer';
import { fixture, tempDir } from './helpers';
import { buildGrid, cellValue, combine } from '../../webview/compare/model';
import { CONNECTIVITY_METRICS, connectivityTensors, VERDICT_TITLE } from '../../webview/connectivity/model';

const models = fixture('zoo', 'workspace', 'models');

async function tensors(dir: string): Promise<Map<string, Float64Array>> {
  const layout = await openCheckpoint(dir);
  const out = new Map<string, Float64Array>();
  for (const t of layout.tensors) out.set(t.name, Float64Array.from(await readElements(t, 0, t.numel)));
  return out;
}

function bf16(x: number): number {
  const f = new Float32Array([x]);
  return bf16ToF32Table()[f32BitsToBf16(new Uint32Array(f.buffer)[0])];
}

test('transfer of tiny-llama-math onto tiny-llama-base-v2 equals base-v2 + (math - base); the recipe is written beside it', async () => {
  const dir = tempDir();
  try {
    const request = { finetune: path.join(models, 'tiny-llama-math'), from: path.join(models, 'tiny-llama-base'), to: path.join(models, 'tiny-llama-base-v2'), out: path.join(dir, 'math-v2') };
    const run = await prepareTransfer(request, false);
    assert.equal(run.recipeFile, path.join(dir, 'math-v2.transfer.yml'));
    assert.match(fs.readFileSync(run.recipeFile, 'utf8'), /merge_method: diff_transfer/);
    await runTransfer(run, { runner: new InlineRunner(mergeTasks), out: request.out, graftVersion: 'test', chunkElements: 4096 });
    const [math, base, v2, got] = await Promise.all([tensors(request.finetune), tensors(request.from), tensors(request.to), tensors(request.out)]);
    assert.equal(got.size, 57);
    for (const [name, b] of base) {
      const x = math.get(name)!;
      const t = v2.get(name)!;
      const actual = got.get(name)!;
      for (let i = 0; i < b.length; i++) assert.equal(actual[i], bf16(Math.fround(t[i] + Math.fround(x[i] - b[i]))), `${name}[${i}]`);
    }
    // The same transfer again is refused without --force, and the recipe can be rerun by the engine.
    await assert.rejects(prepareTransfer(request, false), /already exists/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the connectivity report matches a float64 computation and gives a verdict with its numbers', async () => {
  const [finetune, from, to] = await Promise.all(['tiny-llama-math', 'tiny-llama-base', 'tiny-llama-base-v2'].map((m) => openCheckpoint(path.join(models, m))));
  const report = await connectivityReport(new InlineRunner(diffTasks), { finetune, from, to });
  const [x, b, b2] = await Promise.all([tensors(finetune.path), tensors(from.path), tensors(to.path)]);
  const sums = new Map<string, { dot: number; u2: number; d2: number; c2: number }>();
  const all = { dot: 0, u2: 0, d2: 0, c2: 0 };
  for (const [name, base] of b) {
    const { layer } = parseTensorName(name);
    const key = String(layer);
    const s = sums.get(key) ?? { dot: 0, u2: 0, d2: 0, c2: 0 };
    sums.set(key, s);
    const xs = x.get(name)!;
    const ts = b2.get(name)!;
    for (let i = 0; i < base.length; i++) {
      const u = ts[i] - base[i];
      const d = xs[i] - base[i];
      for (const acc of [s, all]) {
        acc.dot += u * d;
        acc.u2 += u * u;
        acc.d2 += d * d;
        acc.c2 += base[i] * base[i];
      }
    }
  }
  const close = (a: number | null, e: number, what: string) => assert.ok(a !== null && Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e)), `${what}: ${a} vs ${e}`);
  assert.equal(report.layers.length, 7);
  for (const l of report.layers) {
    const s = sums.get(String(l.layer))!;
    close(l.cosine, s.dot / Math.sqrt(s.u2 * s.d2), `cosine of layer ${l.layer}`);
    close(l.baseUpdate, Math.sqrt(s.u2 / s.c2), `base update of layer ${l.layer}`);
    close(l.finetuneDiff, Math.sqrt(s.d2 / s.c2), `fine-tune diff of layer ${l.layer}`);
  }
  close(report.overall.cosine, all.dot / Math.sqrt(all.u2 * all.d2), 'overall cosine');
  close(report.overall.baseUpdate, Math.sqrt(all.u2 / all.c2), 'overall base update');
  assert.equal(report.structure.changed, 0);
  // The zoo's two bases are about 32% apart: far enough for the report to call the transfer risky.
  assert.ok(report.overall.baseUpdate! > 0.3);
  assert.equal(report.verdict, 'risky');
  assert.match(report.reasons.join(' '), /far apart: the update B2 - B is 32\.\d% of B's norm/);

  // A transfer onto a model of another architecture is not applicable, saying why.
  const gpt2 = await openCheckpoint(path.join(models, 'tiny-gpt2'));
  const other = await connectivityReport(new InlineRunner(diffTasks), { finetune, from, to: gpt2 });
  assert.equal(other.verdict, 'not-applicable');
  assert.match(other.reasons[0], /changed name or shape between the two bases/);

  // The fine-tune onto its own base: nothing moved, the figures say so and the verdict is safe.
  const same = await connectivityReport(new InlineRunner(diffTasks), { finetune, from, to: from });
  assert.equal(same.overall.baseUpdate, 0);
  assert.equal(same.verdict, 'likely-safe');
});

test('the connectivity view\'s heatmap: every cell is one tensor of the report, and a layer\'s cells combine exactly to the report\'s figures for that layer', async () => {
  const [finetune, from, to] = await Promise.all(['tiny-llama-math', 'tiny-llama-base', 'tiny-llama-base-v2'].map((m) => openCheckpoint(path.join(models, m))));
  const report = await connectivityReport(new InlineRunner(diffTasks), { finetune, from, to });
  const tensors = connectivityTensors(report);
  const grid = buildGrid({ tensors });
  assert.equal(grid.cells.length + grid.globals.length, report.cells.length, 'one heatmap cell per report cell (one tensor per layer and module here)');
  const [cosine, baseUpdate, finetuneDiff] = CONNECTIVITY_METRICS;
  for (const cell of grid.cells) {
    const own = report.cells.find((c) => c.name === cell.tensors[0].name)!;
    assert.equal(cellValue(cell, cosine), own.cosine);
    assert.equal(cellValue(cell, baseUpdate), own.baseUpdate);
  }
  for (const layer of report.layers.filter((l) => l.layer !== null)) {
    const all = tensors.filter((t) => t.layer === layer.layer && (t.group ?? 'layers') === layer.group);
    assert.equal(all.length, layer.tensors);
    const close = (x: number | null, y: number | null, what: string) => assert.ok(x !== null && y !== null && Math.abs(x - y) <= 1e-12 * Math.max(1, Math.abs(y)), `layer ${layer.layer} ${what}: ${x} vs ${y}`);
    close(combine(all, cosine), layer.cosine, 'cosine');
    close(combine(all, baseUpdate), layer.baseUpdate, 'base update');
    close(combine(all, finetuneDiff), layer.finetuneDiff, 'fine-tune diff');
  }
  assert.equal(VERDICT_TITLE[report.verdict].startsWith('Transfer '), true);
});
