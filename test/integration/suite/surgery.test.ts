// Model surgery in a real VS Code, on the demo workspace (`npm run demo`'s models, written into the
// test workspace): a recipe file's diagnostics, quick fix and "Run Merge" CodeLens; the merge panel
// end to end with the same output as the CLI; "Merge Adapter into Base"; "Swap These Layers from B"
// from the compare heatmap; extracting and applying a diff vector, extracting a LoRA adapter,
// "Transfer Fine-tune to New Base..." through its connectivity report; and cancelling a running merge.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as vscode from 'vscode';
import type { LoraExtractResult } from '../../../src/core/lora';
import { readPatch, type ApplyResult, type ExtractResult } from '../../../src/core/patch';
import { openCheckpoint, readElements } from '../../../src/core/safetensors';
import type { GraftApi } from '../../../src/extension/main';
import type { FinishedMerge } from '../../../src/extension/surgery/mergeRunner';
import { writeDemoWorkspace } from '../../support/demo-workspace';
import { requireProbe } from '../probe';
import { testLayout } from '../workspace';
import { waitFor } from '../wait';

const EXTENSION_ID = 'graft-tools.graft';
const MERGE_TIMEOUT_MS = 90_000;

async function api(): Promise<GraftApi> {
  const extension = vscode.extensions.getExtension<GraftApi>(EXTENSION_ID)!;
  return extension.activate();
}

/** The same recipe through the CLI (dist/cli.js), into `out`. */
async function cliMerge(recipe: string, out: string): Promise<void> {
  const cli = path.join(process.env.GRAFT_TEST_EXTENSION_ROOT!, 'dist', 'cli.js');
  // The extension host's own executable may be Electron; ELECTRON_RUN_AS_NODE makes it a plain node.
  await promisify(execFile)(process.execPath, [cli, 'merge', recipe, '--out', out, '--no-hf-cache'], { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
}

function sameWeights(a: string, b: string): void {
  const bytes = (dir: string) => fs.readFileSync(path.join(dir, 'model.safetensors'));
  assert.ok(bytes(a).equals(bytes(b)), `${path.basename(a)}/model.safetensors differs from the CLI's ${path.basename(b)}/model.safetensors`);
}

async function tensor(dir: string, name: string): Promise<number[]> {
  const layout = await openCheckpoint(dir);
  const ref = layout.tensors.find((t) => t.name === name);
  assert.ok(ref, `${name} is in ${dir}`);
  return Array.from(await readElements(ref, 0, ref.numel));
}

/** The lineage graph has the output under each of `parents` (folder paths). */
async function assertUnderParents(out: string, parents: string[]): Promise<void> {
  const { index } = await api();
  await waitFor(`${path.basename(out)} in the lineage graph under ${parents.map((p) => path.basename(p)).join(', ')}`, async () => {
    await index.whenIdle();
    const node = index.graph?.nodes.find((n) => n.locations?.includes(out));
    if (!node) return false;
    const parentIds = index.graph!.edges.filter((e) => e.child === node.id).map((e) => index.graph!.nodes.find((n) => n.id === e.parent)?.locations ?? []).flat();
    return parents.every((p) => parentIds.includes(p));
  }, 60_000);
}

async function runLens(uri: vscode.Uri): Promise<FinishedMerge | undefined> {
  const lenses = await waitFor('the recipe\'s CodeLens', async () => {
    const found = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
    return found?.some((l) => l.command?.title.includes('Run Merge')) ? found : undefined;
  });
  assert.ok(lenses.some((l) => l.command?.title.includes('Plan')), 'no "Plan" CodeLens');
  const run = lenses.find((l) => l.command?.title.includes('Run Merge'))!.command!;
  return vscode.commands.executeCommand<FinishedMerge | undefined>(run.command, ...(run.arguments ?? []));
}

describe('model surgery', function () {
  this.timeout(240_000);
  let demo: string;
  let models: { base: string; chat: string; code: string; adapter: string };

  before(async () => {
    demo = path.join(testLayout().workspace, 'demo');
    await writeDemoWorkspace(demo);
    models = {
      base: path.join(demo, 'models', 'tiny-base'),
      chat: path.join(demo, 'models', 'tiny-chat'),
      code: path.join(demo, 'models', 'tiny-code'),
      adapter: path.join(demo, 'adapters', 'tiny-chat-lora'),
    };
    const { index } = await api();
    await vscode.commands.executeCommand('graft.refresh');
    await waitFor('the demo models in the catalog', async () => {
      await index.whenIdle();
      const paths = new Set(index.catalog?.entries.map((e) => e.path));
      return Object.values(models).every((p) => paths.has(p));
    }, 60_000);
  });

  afterEach(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('a recipe file: diagnostics for a typo and a missing model, the quick fix, and "Run Merge" from its CodeLens', async function () {
    const file = path.join(demo, 'recipes', 'typo.graft.yml');
    fs.writeFileSync(file, [
      'merge_method: ties',
      'base_model: ../models/tiny-base',
      'models:',
      '  - model: ../models/tiny-chat',
      '    parameters:',
      '      weight: 0.5',
      '      densty: 0.5',
      '  - model: ../models/tiny-cod',
      '    parameters:',
      '      weight: 0.5',
      '      density: 0.5',
      'dtype: float32',
      '',
    ].join('\n'));
    const uri = vscode.Uri.file(file);
    const editor = await vscode.window.showTextDocument(uri);
    const diagnostics = await waitFor('diagnostics for "densty" and "../models/tiny-cod"', () => {
      const found = vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'graft');
      return found.some((d) => d.code === 'unknown-parameter') && found.some((d) => d.code === 'missing-model') ? found : undefined;
    });
    const typo = diagnostics.find((d) => d.code === 'unknown-parameter')!;
    assert.equal(typo.range.start.line, 6, 'the typo is marked on its line');
    assert.equal(editor.document.getText(typo.range), 'densty');
    assert.match(typo.message, /Did you mean "density"\?/);
    const missing = diagnostics.find((d) => d.code === 'missing-model')!;
    assert.equal(editor.document.getText(missing.range), '../models/tiny-cod');
    assert.match(missing.message, /not found/);
    const probe = requireProbe(this);
    await probe.workbench('.squiggly-error', { minCount: 2, timeoutMs: 20_000 });
    await probe.screenshot('surgery-recipe-diagnostics');

    const fixes = await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', uri, typo.range);
    const fix = fixes.find((a) => a.title === 'Change to "density"');
    assert.ok(fix?.edit, `no quick fix to "density"; offered: ${fixes.map((a) => a.title).join(' | ')}`);
    await vscode.workspace.applyEdit(fix.edit);
    assert.match(editor.document.lineAt(6).text, /^\s+density: 0\.5$/);

    const modelFixes = await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', uri, missing.range);
    const useCode = modelFixes.find((a) => a.title === 'Use the indexed model "../models/tiny-code"');
    assert.ok(useCode?.edit, `no quick fix offering tiny-code; offered: ${modelFixes.map((a) => a.title).join(' | ')}`);
    await vscode.workspace.applyEdit(useCode.edit);
    await waitFor('no diagnostics once both are fixed', () => vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'graft').length === 0);

    const hover = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, new vscode.Position(6, 8));
    const hoverText = hover.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');
    assert.match(hoverText, /density/);
    assert.match(hoverText, /Default/);

    await probe.workbench('.contentWidgets .codelens-decoration, .codelens-decoration', { minCount: 1, timeoutMs: 20_000 });
    await probe.screenshot('surgery-recipe-codelens');

    const finished = await runLens(uri);
    assert.ok(finished, 'Run Merge did not produce an output');
    const out = path.join(demo, 'recipes', 'typo');
    assert.equal(finished.out, out);
    assert.ok(fs.existsSync(path.join(out, 'model.safetensors')));
    const cliOut = path.join(testLayout().workspace, '..', 'cli-typo');
    await cliMerge(file, cliOut);
    sameWeights(out, cliOut);
    await assertUnderParents(out, [models.chat, models.code]);
    const after = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
    assert.ok(after.some((l) => l.command?.title.includes('Compare with Parents')), 'no "Compare with Parents" CodeLens after the run');
    assert.ok(after.some((l) => l.command?.title.includes('Open Output')), 'no "Open Output" CodeLens after the run');
  });

  it('the merge panel: plan with interference, then Merge gives the CLI\'s output, shown under its parents', async function () {
    const probe = requireProbe(this);
    const out = path.join(demo, 'merges', 'panel-ties');
    await vscode.commands.executeCommand('graft.mergeModels', {
      method: 'ties',
      models: [
        { path: models.chat, parameters: { weight: 0.6, density: 0.5 } },
        { path: models.code, parameters: { weight: 0.4, density: 0.5 } },
      ],
      base: models.base,
      dtype: 'float32',
      out,
    });
    await probe.query('merge', '.model-row[data-path] vscode-checkbox[checked]', { minCount: 2, timeoutMs: 20_000 });
    await probe.query('merge', '#plan-button:not([disabled])', { timeoutMs: 20_000 });
    await probe.click('merge', '#plan-button');
    const summary = await probe.query('merge', '.plan-summary', { attribute: 'data-tensors', timeoutMs: 30_000 });
    assert.equal(summary.count, 1, 'the plan did not appear');
    assert.equal(summary.attributes[0], '75', 'the plan counts every tensor of the demo model');
    assert.match(summary.texts[0], /Peak memory/);
    const rows = await probe.query('merge', '.interference-table tr[data-conflict]', { attribute: 'data-conflict', minCount: 8, timeoutMs: 30_000 });
    assert.equal(rows.count, 8, 'one interference row per layer of the demo model');
    assert.ok(rows.attributes.every((v) => Number(v) >= 0 && Number(v) <= 1), `conflict shares: ${rows.attributes.join(', ')}`);
    await probe.screenshot('surgery-merge-panel');

    const { surgery } = await api();
    const finished = new Promise<FinishedMerge>((resolve) => {
      const subscription = surgery.runner.onDidFinish((f) => {
        if (f.out === out) {
          subscription.dispose();
          resolve(f);
        }
      });
    });
    await probe.click('merge', '#merge-button');
    const result = await Promise.race([finished, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the panel\'s merge did not finish')), MERGE_TIMEOUT_MS))]);
    assert.ok(fs.existsSync(path.join(result.out, 'model.safetensors')));
    const recipe = path.join(demo, 'merges', 'panel-ties.graft.yml');
    assert.ok(fs.existsSync(recipe), 'the panel saved its recipe next to the output');
    const cliOut = path.join(testLayout().workspace, '..', 'cli-panel-ties');
    await cliMerge(recipe, cliOut);
    sameWeights(out, cliOut);
    await assertUnderParents(out, [models.chat, models.code]);
    await probe.query('merge', '#status[data-state="done"]', { timeoutMs: 20_000 });
    const row = await probe.workbench('.pane-body .monaco-list-row[aria-label^="panel-ties"]', { timeoutMs: 20_000 });
    assert.equal(row.count, 1, 'the new model is shown in the lineage tree');
    await probe.screenshot('surgery-merge-done');
  });

  it('the merge panel: a gradient is edited by dragging its points and with the arrow keys', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.mergeModels', {
      method: 'slerp',
      models: [{ path: models.chat, parameters: {} }],
      base: models.base,
      parameters: { t: [0, 0.5, 1] },
      dtype: 'float32',
      out: path.join(demo, 'merges', 'panel-gradient'),
    });
    const handle = (i: number) => `.param[data-param="t"] .curve-handle[data-index="${i}"]`;
    const handles = await probe.query('merge', '.param[data-param="t"] .curve-handle', { attribute: 'aria-valuenow', minCount: 3, timeoutMs: 20_000 });
    assert.deepEqual(handles.attributes, ['0', '0.5', '1']);
    const text = () => probe.evaluate<string>('merge', 'document.querySelector(\'.param[data-param="t"] vscode-text-field\').value');
    // Down by a third of the 30-pixel range: the middle point moves from 0.5 to about 0.17.
    await probe.drag('merge', handle(1), { dy: 10 });
    const dragged = (await text()).split(',').map(Number);
    assert.equal(dragged.length, 3);
    assert.ok(dragged[1] > 0.05 && dragged[1] < 0.3, `after the drag: ${dragged.join(', ')}`);
    assert.deepEqual([dragged[0], dragged[2]], [0, 1], 'the other points stay');
    await probe.click('merge', handle(2));
    await probe.press('Shift+ArrowDown');
    assert.deepEqual((await text()).split(',').map(Number), [0, dragged[1], 0.9]);
    // The form holds the edited values: the plan takes them without complaint.
    await probe.query('merge', '#plan-button:not([disabled])', { timeoutMs: 20_000 });
    await probe.click('merge', '#plan-button');
    const summary = await probe.query('merge', '.plan-summary', { attribute: 'data-tensors', timeoutMs: 30_000 });
    await probe.screenshot('surgery-merge-gradient');
    assert.equal(summary.count, 1);
  });

  it('"Merge Adapter into Base" on the demo adapter writes the merged model', async () => {
    const out = path.join(demo, 'merges', 'chat-lora-merged');
    const finished = await vscode.commands.executeCommand<FinishedMerge | undefined>('graft.mergeAdapter', vscode.Uri.file(models.adapter), out);
    assert.ok(finished, 'the adapter merge did not complete');
    assert.ok(fs.existsSync(path.join(out, 'model.safetensors')));
    const name = (module: string) => `model.layers.7.self_attn.${module}.weight`;
    assert.notDeepEqual(await tensor(out, name('q_proj')), await tensor(models.base, name('q_proj')), 'q_proj has the adapter merged in');
    assert.deepEqual(await tensor(out, name('k_proj')), await tensor(models.base, name('k_proj')), 'k_proj (not adapted) is the base\'s');
    const recipe = fs.readdirSync(path.join(demo, 'merges')).find((f) => f.startsWith('chat-lora-merged') && f.endsWith('.graft.yml'));
    assert.ok(recipe, 'the adapter merge left its recipe beside the output');
    assert.match(fs.readFileSync(path.join(demo, 'merges', recipe), 'utf8'), /model: \.\.\/models\/tiny-base\+\.\.\/adapters\/tiny-chat-lora/);
  });

  it('"Swap These Layers from B" on two heatmap rows writes a passthrough recipe that runs', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.compareCheckpoints', vscode.Uri.file(models.chat), vscode.Uri.file(models.code));
    await probe.query('compare', '#app[data-phase="done"][data-mode="exact"]', { timeoutMs: 60_000 });
    await probe.click('compare', 'svg[data-role="main"] text.row-label[data-layer="1"]');
    await probe.click('compare', 'svg[data-role="main"] text.row-label[data-layer="2"]', { modifiers: ['Control'] });
    const button = await probe.query('compare', '#swap-layers:not([hidden])', { attribute: 'data-layers' });
    assert.equal(button.attributes[0], '1,2');
    await probe.screenshot('surgery-compare-swap');
    await probe.click('compare', '#swap-layers');
    const editor = await waitFor('the swap recipe in an editor', () => vscode.window.visibleTextEditors.find((e) => /tiny-chat-with-tiny-code-layers-1-2\.graft\.yml$/.test(e.document.fileName)));
    const text = editor.document.getText();
    assert.match(text, /merge_method: passthrough/);
    assert.match(text, /model: tiny-code\n\s+layer_range: \[1, 3\]/);
    const finished = await runLens(editor.document.uri);
    assert.ok(finished, 'the swap recipe did not run');
    const layer = (l: number) => `model.layers.${l}.mlp.up_proj.weight`;
    assert.deepEqual(await tensor(finished.out, layer(1)), await tensor(models.code, layer(1)), 'layer 1 comes from B');
    assert.deepEqual(await tensor(finished.out, layer(3)), await tensor(models.chat, layer(3)), 'layer 3 stays A\'s');
  });

  it('"Extract Diff Vector..." then "Apply Diff Vector...": the patch sits under its base, and applying it to the base gives the fine-tune back', async function () {
    const probe = requireProbe(this);
    const { index } = await api();
    const file = path.join(demo, 'patches', 'tiny-chat-diff.safetensors');
    const extracted = await vscode.commands.executeCommand<ExtractResult | undefined>('graft.extractPatch', vscode.Uri.file(models.chat), { base: models.base, dtype: 'F32', density: 1, out: file });
    assert.ok(extracted, 'the extraction did not complete');
    assert.ok(fs.existsSync(file));
    assert.equal(fs.existsSync(`${file}.partial`), false);
    const info = await readPatch(file);
    assert.ok(info.tensors > 0 && info.tensors < 75, `${info.tensors} tensors: only the changed ones`);
    assert.equal(info.dtype, 'F32');
    const node = await waitFor('the patch in the lineage graph, under tiny-base', async () => {
      await index.whenIdle();
      const found = index.graph?.nodes.find((n) => n.locations?.includes(file));
      const edge = found && index.graph!.edges.find((e) => e.child === found.id);
      return found && edge && index.graph!.nodes.find((n) => n.id === edge.parent)?.locations?.includes(models.base) && edge.relation === 'patch' ? found : undefined;
    }, 60_000);
    assert.equal(node.kind, 'patch');
    assert.equal(node.source?.label, 'tiny-chat', 'the patch notes the fine-tune it came from');
    const row = await probe.workbench('.pane-body .monaco-list-row[aria-label^="tiny-chat-diff.safetensors"] .codicon-diff', { timeoutMs: 20_000 });
    assert.equal(row.count, 1, 'the patch is in the lineage tree with the patch icon');
    await probe.screenshot('surgery-patch-in-tree');

    const rebuilt = path.join(demo, 'patched', 'tiny-chat-again');
    const applied = await vscode.commands.executeCommand<ApplyResult | undefined>('graft.applyPatch', vscode.Uri.file(models.base), { patches: [file], scales: [1], out: rebuilt });
    assert.ok(applied, 'applying the patch did not complete');
    assert.deepEqual(applied.mismatched, []);
    for (const name of ['model.layers.7.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight', 'model.norm.weight']) {
      assert.deepEqual(await tensor(rebuilt, name), await tensor(models.chat, name), `${name}: base + (chat - base) is chat`);
    }
    const provenance = JSON.parse(fs.readFileSync(path.join(rebuilt, 'graft_provenance.json'), 'utf8')) as { method: string };
    assert.equal(provenance.method, 'patch');

    // On other weights it is applied only when accepted, and the distance to the patch's base is reported.
    const elsewhere = path.join(demo, 'patched', 'tiny-code-plus-chat');
    const forced = await vscode.commands.executeCommand<ApplyResult | undefined>('graft.applyPatch', vscode.Uri.file(file), { model: models.code, scales: [1], out: elsewhere, force: true });
    assert.ok(forced, 'the accepted mismatched apply did not complete');
    assert.equal(forced.mismatched.length, 1);
    assert.ok(forced.mismatched[0].relativeDistanceAtLeast > 0);

    await vscode.commands.executeCommand('graft.showInGraph', vscode.Uri.file(file));
    const drawn = await probe.query('lineage', 'g.node[data-kind="patch"]', { timeoutMs: 30_000 });
    assert.equal(drawn.count, 1, 'the graph draws the patch as its own kind');
    await probe.screenshot('surgery-patch-in-graph');
  });

  it('"Extract LoRA Adapter..." writes a PEFT adapter that is an adapter of its base, noting its fine-tune', async () => {
    const { index } = await api();
    const out = path.join(demo, 'adapters', 'tiny-chat-extracted');
    const result = await vscode.commands.executeCommand<LoraExtractResult | undefined>('graft.extractLora', vscode.Uri.file(models.chat), { base: models.base, rank: 4, out });
    assert.ok(result, 'the extraction did not complete');
    assert.equal(result.r, 4);
    assert.ok(result.modules.length > 0);
    assert.ok(result.modules.every((m) => m.retained > 0 && m.retained <= 1 + 1e-9 && m.relativeError >= 0 && m.relativeError < 1), 'retained energy and error per module are in range');
    const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as { r: number; peft_type: string; base_model_name_or_path: string };
    assert.deepEqual([config.peft_type, config.r, path.resolve(out, config.base_model_name_or_path)], ['LORA', 4, models.base]);
    assert.ok(fs.existsSync(path.join(out, 'adapter_model.safetensors')));
    const node = await waitFor('the extracted adapter under tiny-base', async () => {
      await index.whenIdle();
      const found = index.graph?.nodes.find((n) => n.locations?.includes(out));
      const edges = found ? index.graph!.edges.filter((e) => e.child === found.id) : [];
      return found && edges.length === 1 && edges[0].relation === 'adapter' && index.graph!.nodes.find((n) => n.id === edges[0].parent)?.locations?.includes(models.base) ? found : undefined;
    }, 60_000);
    assert.equal(node.kind, 'adapter');
    assert.equal(node.source?.label, 'tiny-chat');
  });

  it('"Transfer Fine-tune to New Base..." shows the connectivity report, then Transfer writes new base + (fine-tune - base)', async function () {
    const probe = requireProbe(this);
    const { surgery } = await api();
    // The demo has one base; tiny-code stands in for "a new base" of tiny-chat's changes.
    const out = path.join(demo, 'transfers', 'tiny-chat-on-tiny-code');
    const running = vscode.commands.executeCommand<FinishedMerge | undefined>('graft.transferFinetune', vscode.Uri.file(models.chat), { newBase: models.code, scale: 1, out });
    const verdict = await probe.query('connectivity', '#app[data-phase="ready"] #verdict[data-verdict]', { attribute: 'data-verdict', timeoutMs: 60_000 });
    const report = surgery.lastConnectivity?.report;
    assert.ok(report, 'the panel has its report');
    assert.equal(verdict.attributes[0], report.verdict);
    assert.ok(['likely-safe', 'risky'].includes(report.verdict), `verdict ${report.verdict}: ${report.reasons.join(' ')}`);
    const title = await probe.query('connectivity', '.verdict-title');
    assert.match(title.texts[0], /^Transfer (likely safe|risky)$/);
    const reasons = await probe.query('connectivity', '#verdict .reasons li');
    assert.deepEqual(reasons.texts, report.reasons, 'the reasons are the report\'s, in plain language');
    const cosine = await probe.query('connectivity', '#overall dd[data-fact="cosine"]');
    assert.ok(Math.abs(Number(cosine.texts[0]) - report.overall.cosine) <= 5e-4, `overall cosine shown as ${cosine.texts[0]}, report ${report.overall.cosine}`);
    const cells = await probe.query('connectivity', 'svg[data-role="connectivity"] rect.cell', { minCount: 8 });
    assert.equal(cells.count, report.cells.filter((c) => c.layer !== null).length, 'one heatmap cell per layer and module');
    const rows = await probe.query('connectivity', '#layers tbody tr[data-layer]', { attribute: 'data-cosine' });
    assert.equal(rows.count, report.layers.length);
    assert.deepEqual(rows.attributes.map(Number), report.layers.map((l) => l.cosine));
    const button = await probe.query('connectivity', '#transfer:not([disabled])');
    assert.equal(button.count, 1, 'Transfer is enabled');
    await probe.screenshot('surgery-transfer-connectivity');
    await probe.click('connectivity', '#transfer');

    const finished = await Promise.race([running, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the transfer did not finish')), MERGE_TIMEOUT_MS))]);
    assert.ok(finished, 'the transfer did not produce an output');
    assert.equal(finished.out, out);
    const recipe = fs.readFileSync(`${out}.transfer.yml`, 'utf8');
    assert.match(recipe, /merge_method: diff_transfer\nbase_model: \.\.\/models\/tiny-base\ntarget_model: \.\.\/models\/tiny-code\nmodels:\n  - model: \.\.\/models\/tiny-chat/);
    const name = 'model.layers.7.self_attn.q_proj.weight';
    const [got, code, chat, base] = await Promise.all([out, models.code, models.chat, models.base].map((dir) => tensor(dir, name)));
    got.forEach((value, i) => {
      const want = code[i] + (chat[i] - base[i]);
      assert.ok(Math.abs(value - want) <= Math.abs(want) / 128 + 1e-6, `${name}[${i}]: ${value}, expected ${want}`);
    });
    await probe.query('connectivity', '#app[data-phase="done"]', { timeoutMs: 20_000 });
    await assertUnderParents(out, [models.code, models.chat]);
  });

  it('"Don\'t Transfer" in the connectivity report writes nothing', async function () {
    const probe = requireProbe(this);
    const out = path.join(demo, 'transfers', 'declined');
    const running = vscode.commands.executeCommand<FinishedMerge | undefined>('graft.transferFinetune', vscode.Uri.file(models.chat), { newBase: models.code, scale: 1, out });
    await probe.query('connectivity', '#app[data-phase="ready"]', { timeoutMs: 60_000 });
    await probe.click('connectivity', '#decline');
    assert.equal(await running, undefined);
    assert.equal(fs.existsSync(out), false);
    assert.equal(fs.existsSync(`${out}.transfer.yml`), false);
  });

  it('cancelling a running merge leaves no output folder', async () => {
    const file = path.join(demo, 'recipes', 'cancelled.graft.yml');
    fs.writeFileSync(file, fs.readFileSync(path.join(demo, 'recipes', 'chat-code-ties.graft.yml'), 'utf8'));
    const out = path.join(demo, 'recipes', 'cancelled');
    const { surgery } = await api();
    let progressSeen = 0;
    // Cancel as the first tensor completes (what the notification's Cancel and graft.cancelMerge
    // do), synchronously in the progress event: the merge is under way and far from done.
    const subscription = surgery.runner.onDidProgress((p) => {
      progressSeen++;
      if (p.tensorsDone >= 1 && p.tensorsDone < p.tensors) surgery.runner.cancel();
    });
    try {
      const result = await vscode.commands.executeCommand<FinishedMerge | undefined>('graft.runRecipe', vscode.Uri.file(file), out);
      assert.equal(result, undefined, 'the merge completed although it was cancelled');
    } finally {
      subscription.dispose();
    }
    assert.ok(progressSeen > 0, 'the merge reported no progress');
    assert.equal(fs.existsSync(out), false, 'the output folder exists after cancel');
    assert.equal(fs.existsSync(`${out}.partial`), false, 'the partial folder was left behind');
    assert.equal(surgery.runner.isRunning, false);
  });
});
