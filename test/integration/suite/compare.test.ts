// The Compare view in a real VS Code: "Compare Checkpoints" on two zoo models draws one heatmap
// cell per (layer, module) of the checkpoint with the exact figures torch computed
// (golden/diff_metrics.json), a click shows the tensor's detail charts, and with a base the
// interference view shows conflict and sign agreement with merge guidance.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseTensorName } from '../../../src/core/tensors/names';
import { openCheckpoint } from '../../../src/core/safetensors';
import { requireProbe, type ProbeClient } from '../probe';
import { testLayout } from '../workspace';

const EXTENSION_ID = 'graft-tools.graft';
/** Sampling, then the exact pass on the worker pool: quick on the zoo, slow on a loaded machine. */
const COMPARE_TIMEOUT_MS = 60_000;

type Golden = Record<string, Record<string, Record<string, number>>>;

/** test/fixtures/golden/diff_metrics.json, found from the compiled suite. */
function golden(): Golden {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'test', 'fixtures', 'golden', 'diff_metrics.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`test/fixtures/golden not found above ${__dirname}`);
    dir = up;
  }
  return JSON.parse(fs.readFileSync(path.join(dir, 'test', 'fixtures', 'golden', 'diff_metrics.json'), 'utf8')) as Golden;
}

/** Layers and module kinds of a checkpoint, from its tensor names: what the heatmap's grid must be. */
async function gridOf(checkpoint: string): Promise<{ layers: number; modules: number; cells: number }> {
  const layout = await openCheckpoint(checkpoint);
  const layers = new Set<string>();
  const modules = new Set<string>();
  const cells = new Set<string>();
  for (const tensor of layout.tensors) {
    const { layer, module, group } = parseTensorName(tensor.name);
    if (layer === null) continue;
    layers.add(`${group}:${layer}`);
    modules.add(module);
    cells.add(`${group}:${layer}|${module}`);
  }
  return { layers: layers.size, modules: modules.size, cells: cells.size };
}

async function closeComparePanels(): Promise<void> {
  const tabs = vscode.window.tabGroups.all.flatMap((group) => group.tabs).filter((tab) => tab.input instanceof vscode.TabInputWebview && tab.input.viewType.endsWith('graft.compare'));
  if (tabs.length) await vscode.window.tabGroups.close(tabs);
}

/** Waits for the exact report (the sampled one comes first) and returns every value of a heatmap. */
async function exactValues(probe: ProbeClient, role: string, expectedCells: number): Promise<number[]> {
  const done = await probe.query('compare', '#app[data-phase="done"][data-mode="exact"]', { timeoutMs: COMPARE_TIMEOUT_MS });
  if (done.count === 0) {
    const banner = await probe.query('compare', '.error-banner, .status-bar', { timeoutMs: 500 });
    assert.fail(`the comparison did not finish; the view shows: ${banner.texts.join(' | ')}; views open: ${done.views.join(', ')}`);
  }
  const cells = await probe.query('compare', `svg[data-role="${role}"] rect.cell`, { minCount: expectedCells });
  assert.equal(cells.count, expectedCells, `heatmap ${role}: ${cells.count} cells, expected one per (layer, module)`);
  const values = await probe.evaluate<string[]>('compare', `[...document.querySelectorAll('svg[data-role="${role}"] rect.cell')].map((r) => r.dataset.value)`);
  return values.map(Number);
}

async function cellValue(probe: ProbeClient, role: string, layer: number, module: string): Promise<number> {
  const cell = await probe.query('compare', `svg[data-role="${role}"] rect.cell[data-layer="${layer}"][data-module="${module}"]`, { attribute: 'data-value' });
  assert.equal(cell.count, 1, `no ${role} cell for layer ${layer}, ${module}`);
  return Number(cell.attributes[0]);
}

function close(actual: number, expected: number, label: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${label}: the view shows ${actual}, torch computed ${expected}`);
}

describe('compare view', function () {
  this.timeout(180_000);

  before(async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `${EXTENSION_ID} is not loaded`);
    await extension.activate();
  });

  afterEach(closeComparePanels);

  it('draws one cell per layer and module with the exact figures, and details on click', async function () {
    const probe = requireProbe(this);
    const models = path.join(testLayout().zoo, 'models');
    const base = path.join(models, 'tiny-llama-base');
    const math = path.join(models, 'tiny-llama-math');
    const grid = await gridOf(base);
    assert.equal(grid.cells, grid.layers * grid.modules, 'the zoo llama has every module in every layer');

    await vscode.commands.executeCommand('graft.compareCheckpoints', vscode.Uri.file(base), vscode.Uri.file(math));
    const values = await exactValues(probe, 'main', grid.layers * grid.modules);
    assert.ok(values.every(Number.isFinite), `non-finite cell values: ${values.filter((v) => !Number.isFinite(v)).join(', ')}`);

    const reference = golden().base_vs_math;
    close(await cellValue(probe, 'main', 3, 'self_attn.q_proj'), reference['model.layers.3.self_attn.q_proj.weight'].rel_l2, 'rel_l2 of layer 3 q_proj');
    close(await cellValue(probe, 'main', 0, 'mlp.down_proj'), reference['model.layers.0.mlp.down_proj.weight'].rel_l2, 'rel_l2 of layer 0 down_proj');
    const strip = await probe.query('compare', 'svg[data-role="main"] rect.global-cell', { attribute: 'data-module' });
    assert.deepEqual([...strip.attributes].sort(), ['embed_tokens', 'lm_head', 'norm']);

    const errors = await probe.query('compare', '.error-banner', { timeoutMs: 300 });
    assert.equal(errors.count, 0, `the view shows an error: ${errors.texts.join(' ')}`);

    await probe.click('compare', 'svg[data-role="main"] rect.cell[data-layer="3"][data-module="self_attn.q_proj"]');
    const charts = await probe.query('compare', '.detail svg.chart', { minCount: 2, timeoutMs: 20_000 });
    assert.equal(charts.count, 2, 'the detail pane should show the histogram and the row profile');
    const heading = await probe.query('compare', '.detail h3');
    assert.equal(heading.texts[0], 'model.layers.3.self_attn.q_proj.weight');

    const renderMs = await probe.evaluate<string>('compare', 'document.querySelector(\'svg[data-role="main"]\').dataset.renderMs');
    console.log(`[graft] compare heatmap of ${values.length} cells drawn in ${renderMs} ms`);
    const file = await probe.screenshot('compare-heatmap');
    assert.ok(fs.statSync(file).size > 0, `${file} is empty`);
  });

  it('shows where the task vectors of two fine-tunes conflict, with guidance', async function () {
    const probe = requireProbe(this);
    const models = path.join(testLayout().zoo, 'models');
    const base = path.join(models, 'tiny-llama-base');
    const math = path.join(models, 'tiny-llama-math');
    const code = path.join(models, 'tiny-llama-code');
    const grid = await gridOf(base);

    await vscode.commands.executeCommand('graft.compareCheckpoints', vscode.Uri.file(math), vscode.Uri.file(code), vscode.Uri.file(base));
    await exactValues(probe, 'main', grid.cells);
    await probe.click('compare', 'vscode-button[data-show="interference"]');
    const conflict = await exactValues(probe, 'conflict', grid.cells);
    const agreement = await exactValues(probe, 'sign_agreement', grid.cells);
    for (const [name, values] of [['conflict', conflict], ['sign agreement', agreement]] as const) {
      assert.ok(values.every((v) => Number.isFinite(v) && v >= 0 && v <= 1), `${name} values outside [0, 1]: ${values.join(', ')}`);
    }
    const reference = golden().taskvec_math_vs_code;
    close(await cellValue(probe, 'sign_agreement', 2, 'mlp.up_proj'), reference['model.layers.2.mlp.up_proj.weight'].sign_agreement, 'sign agreement of layer 2 up_proj');

    const guidance = await probe.query('compare', '.guidance', { attribute: 'data-level' });
    assert.ok(['high', 'moderate', 'low'].includes(guidance.attributes[0] ?? ''), `no conflict level in the guidance: ${guidance.attributes[0]}`);
    assert.match(guidance.texts[0] ?? '', /Most conflict in layers? \d/);
    assert.match(guidance.texts[0] ?? '', /TIES|task arithmetic|linear/);

    const file = await probe.screenshot('compare-interference');
    assert.ok(fs.statSync(file).size > 0, `${file} is empty`);
  });
});
