// The Graft sidebar in a real VS Code: the scan finds the zoo's checkpoints (and the Hugging Face
// cache the workspace settings point at), the lineage tree shows them under their parents, and the
// tree's commands reach the inspector.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { GraftApi } from '../../../src/extension/main';
import { requireProbe } from '../probe';
import { testLayout } from '../workspace';

const EXTENSION_ID = 'graft-tools.graft';

async function api(): Promise<GraftApi> {
  const extension = vscode.extensions.getExtension<GraftApi>(EXTENSION_ID)!;
  const exports = await extension.activate();
  await exports.index.whenIdle();
  return exports;
}

describe('lineage sidebar', function () {
  this.timeout(120_000);

  it('indexes the workspace checkpoints and the Hugging Face cache', async () => {
    const { index } = await api();
    const zoo = testLayout().zoo;
    const locations = new Set(index.catalog!.entries.map((e) => e.path));
    for (const model of ['models/tiny-llama-base', 'models/tiny-llama-math', 'models/tiny-llama-code', 'models/tiny-gpt2', 'models/tiny-bert', 'adapters/tiny-llama-math-lora', 'merges/tiny-llama-math-code-ties', 'runs/math-sft/checkpoint-20']) {
      assert.ok(locations.has(path.join(zoo, model)), `${model} is not in the catalog`);
    }
    // The cache snapshot and the workspace copy are one model with two locations.
    const base = index.graph!.nodes.find((n) => n.locations?.includes(path.join(zoo, 'models', 'tiny-llama-base')));
    assert.ok(base, 'no lineage node for tiny-llama-base');
    assert.equal(base.hubId, 'acme/tiny-llama-base');
    assert.equal(base.revision, '1f2e3d4c5b6a79880123456789abcdef01234567');
    assert.ok(base.locations!.some((l) => l.startsWith(testLayout().hfCacheHub)), `locations: ${base.locations!.join(', ')}`);
    const math = index.graph!.nodes.find((n) => n.locations?.includes(path.join(zoo, 'models', 'tiny-llama-math')))!;
    assert.ok(index.graph!.edges.some((e) => e.parent === base.id && e.child === math.id && e.relation === 'finetune'), 'math is not a fine-tune of base');
  });

  it('shows the lineage tree in the sidebar', async function () {
    const probe = requireProbe(this);
    await api();
    await vscode.commands.executeCommand('graft.lineage.focus');
    // Labels and levels are two reads of a list that may re-render in between (a rescan after an
    // earlier suite wrote models): read both until they describe the same rows.
    let rows = await probe.workbench('.pane-body .monaco-list-row', { attribute: 'aria-label', minCount: 10, timeoutMs: 20_000 });
    let levels = await probe.workbench('.pane-body .monaco-list-row', { attribute: 'aria-level' });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const again = await probe.workbench('.pane-body .monaco-list-row', { attribute: 'aria-label' });
      if (again.attributes.length === levels.attributes.length && again.attributes.join('\n') === rows.attributes.join('\n')) break;
      rows = again;
      levels = await probe.workbench('.pane-body .monaco-list-row', { attribute: 'aria-level' });
    }
    console.log(`[graft] sidebar rows:\n${rows.attributes.map((l, i) => `  ${'  '.repeat(Number(levels.attributes[i]) - 1)}${l}`).join('\n')}`);
    // Earlier suites may have expanded rows; link rows ("listed under …") point elsewhere.
    const levelOf = (name: string) => Number(levels.attributes[rows.attributes.findIndex((l) => l?.startsWith(`${name} `) && !l.includes('listed under'))]);
    for (const name of ['tiny-llama-base', 'tiny-gpt2', 'tiny-bert']) assert.equal(levelOf(name), 1, `${name} should be a root`);
    // The fine-tunes, the adapter, the merge (under the base mergekit names) and the trainer run's
    // first checkpoint (linked to the base by its weights alone) sit under the base.
    for (const name of ['tiny-llama-math', 'tiny-llama-code', 'tiny-llama-base-v2', 'tiny-llama-math-lora', 'tiny-llama-math-code-ties', 'checkpoint-10']) {
      assert.equal(levelOf(name), 2, `${name} should sit under tiny-llama-base; rows: ${rows.attributes.join(' | ')}`);
    }
    await probe.screenshot('sidebar-lineage');
  });

  it('links a merge under each model it was merged from', async function () {
    const probe = requireProbe(this);
    await api();
    await vscode.commands.executeCommand('graft.lineage.focus');
    const codeRow = '.pane-body .monaco-list-row[aria-label^="tiny-llama-code "]';
    const expanded = await probe.workbench(codeRow, { attribute: 'aria-expanded' });
    // Earlier suites may have opened it already; a click would close it again.
    if (expanded.attributes[0] !== 'true') await probe.click('workbench', `${codeRow} .monaco-tl-twistie`);
    // Wait for the expansion itself: math, expanded by an earlier suite, shows the same link row.
    await probe.workbench(`${codeRow}[aria-expanded="true"]`, { minCount: 1, timeoutMs: 10_000 });
    const linkLabel = /^tiny-llama-math-code-ties merge · listed under tiny-llama-base/;
    let rowAfterCode = '';
    let levelStep = NaN;
    // The tree renders the new children a frame after aria-expanded flips; poll until they show.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const rows = await probe.workbench('.pane-body .monaco-list-row', { attribute: 'aria-label' });
      const levels = await probe.workbench('.pane-body .monaco-list-row', { attribute: 'aria-level' });
      const code = rows.attributes.findIndex((l) => l?.startsWith('tiny-llama-code '));
      rowAfterCode = rows.attributes[code + 1] ?? '';
      levelStep = Number(levels.attributes[code + 1]) - Number(levels.attributes[code]);
      if (linkLabel.test(rowAfterCode)) break;
    }
    assert.match(rowAfterCode, linkLabel);
    assert.equal(levelStep, 1);
  });

  it('reveals a checkpoint file in the lineage tree', async function () {
    const probe = requireProbe(this);
    await api();
    const file = path.join(testLayout().zoo, 'runs', 'math-sft', 'checkpoint-30', 'model.safetensors');
    await vscode.commands.executeCommand('graft.showInLineage', vscode.Uri.file(file));
    const selected = await probe.workbench('.pane-body .monaco-list-row.selected', { attribute: 'aria-label', timeoutMs: 10_000 });
    assert.ok(selected.attributes.some((l) => l?.startsWith('checkpoint-30')), `selected: ${selected.attributes.join(' | ')}`);
  });
});
