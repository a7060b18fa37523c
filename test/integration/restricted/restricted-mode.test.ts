// Restricted Mode (an untrusted workspace; the runner opens this pass with workspace trust on):
// reading, diagnostics and the merge panel's plan work, every command that would write a merge
// is refused with a message that says why, and nothing is written.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { GraftApi } from '../../../src/extension/main';
import { writeDemoWorkspace } from '../../support/demo-workspace';
import { requireProbe } from '../probe';
import { testLayout } from '../workspace';
import { waitFor } from '../wait';

const EXTENSION_ID = 'graft-tools.graft';

describe('Restricted Mode', function () {
  this.timeout(180_000);
  let demo: string;

  before(async () => {
    demo = path.join(testLayout().workspace, 'demo');
    await writeDemoWorkspace(demo);
    const api = await vscode.extensions.getExtension<GraftApi>(EXTENSION_ID)!.activate();
    await vscode.commands.executeCommand('graft.refresh');
    await waitFor('the demo models in the catalog', async () => {
      await api.index.whenIdle();
      return api.index.catalog?.entries.some((e) => e.path === path.join(demo, 'models', 'tiny-chat'));
    }, 60_000);
  });

  it('runs in an untrusted workspace', () => {
    assert.equal(vscode.workspace.isTrusted, false, 'this pass must run in Restricted Mode');
  });

  it('refuses to run a recipe or merge an adapter, says why, and writes nothing', async function () {
    const probe = requireProbe(this);
    const recipe = vscode.Uri.file(path.join(demo, 'recipes', 'chat-code-ties.graft.yml'));
    const out = path.join(demo, 'recipes', 'chat-code-ties');
    const result = await vscode.commands.executeCommand('graft.runRecipe', recipe, out);
    assert.equal(result, undefined);
    assert.equal(fs.existsSync(out), false, 'a refused run wrote its output');
    const message = await probe.workbench('.notifications-toasts .notification-list-item-message', { timeoutMs: 20_000 });
    assert.ok(message.texts.some((t) => /Restricted Mode/.test(t) && /not trusted/.test(t) && /Trust the workspace/.test(t)), `no clear refusal shown; notifications: ${message.texts.join(' | ')}`);
    await probe.screenshot('restricted-refused');

    const merged = path.join(demo, 'merges', 'refused-lora');
    const adapter = await vscode.commands.executeCommand('graft.mergeAdapter', vscode.Uri.file(path.join(demo, 'adapters', 'tiny-chat-lora')), merged);
    assert.equal(adapter, undefined);
    assert.equal(fs.existsSync(merged), false);
    assert.deepEqual(fs.existsSync(path.join(demo, 'merges')) ? fs.readdirSync(path.join(demo, 'merges')) : [], [], 'no recipe or output was written');
  });

  it('refuses to extract or apply a diff vector, extract a LoRA adapter or transfer a fine-tune, before asking anything', async () => {
    const models = path.join(demo, 'models');
    const out = path.join(demo, 'refused');
    const attempts: [string, string, Record<string, unknown>][] = [
      ['graft.extractPatch', 'tiny-chat', { base: path.join(models, 'tiny-base'), dtype: 'F32', density: 1, out: `${out}.safetensors` }],
      ['graft.applyPatch', 'tiny-base', { patches: [path.join(models, 'tiny-chat', 'model.safetensors')], scales: [1], out }],
      ['graft.extractLora', 'tiny-chat', { base: path.join(models, 'tiny-base'), rank: 2, out }],
      ['graft.transferFinetune', 'tiny-chat', { newBase: path.join(models, 'tiny-code'), scale: 1, out }],
    ];
    for (const [command, model, options] of attempts) {
      const result = await vscode.commands.executeCommand(command, vscode.Uri.file(path.join(models, model)), options);
      assert.equal(result, undefined, `${command} ran in Restricted Mode`);
    }
    assert.deepEqual(fs.readdirSync(demo).filter((name) => name.startsWith('refused')), [], 'nothing was written');
  });

  it('still checks recipes and plans in the merge panel', async function () {
    const probe = requireProbe(this);
    const file = path.join(demo, 'recipes', 'typo.graft.yml');
    fs.writeFileSync(file, 'merge_method: linear\nmodels:\n  - model: ../models/tiny-chat\n    parameters:\n      weigth: 1\n');
    const uri = vscode.Uri.file(file);
    await vscode.window.showTextDocument(uri);
    const diagnostics = await waitFor('a diagnostic for "weigth"', () => vscode.languages.getDiagnostics(uri).find((d) => d.code === 'unknown-parameter'));
    assert.match(diagnostics.message, /Did you mean "weight"\?/);

    await vscode.commands.executeCommand('graft.mergeModels', {
      method: 'linear',
      models: [{ path: path.join(demo, 'models', 'tiny-chat'), parameters: { weight: 1 } }, { path: path.join(demo, 'models', 'tiny-code'), parameters: { weight: 1 } }],
      out: path.join(demo, 'merges', 'linear'),
    });
    const banner = await probe.query('merge', '.trust-banner:not([hidden])', { timeoutMs: 20_000 });
    assert.match(banner.texts[0] ?? '', /Restricted Mode/);
    await probe.query('merge', '#plan-button:not([disabled])', { timeoutMs: 20_000 });
    const mergeButton = await probe.query('merge', '#merge-button[disabled]');
    assert.equal(mergeButton.count, 1, 'Merge is disabled in Restricted Mode');
    await probe.click('merge', '#plan-button');
    const summary = await probe.query('merge', '.plan-summary', { attribute: 'data-tensors', timeoutMs: 30_000 });
    assert.equal(summary.attributes[0], '75');
    await probe.screenshot('restricted-merge-panel');
  });
});
