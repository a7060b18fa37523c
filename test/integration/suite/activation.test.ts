// The extension loads in a real VS Code, registers what package.json promises, and the probe
// round trip (extension host -> runner -> browser) works.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { type ProbeView, requireProbe } from '../probe';
import { testLayout } from '../workspace';

const EXTENSION_ID = 'graft-tools.graft';

interface ContributedCommand {
  command: string;
}

describe('activation', () => {
  it('runs inside VS Code with the environment the runner set', () => {
    console.log(`[graft] vscode.version = ${vscode.version}`);
    assert.match(vscode.version, /^\d+\.\d+\.\d+/);
    // The runner passes these to the host process; the extension host must inherit them.
    const layout = testLayout();
    assert.equal(process.env.GRAFT_TEST_WORKSPACE, layout.workspace);
    const folders = vscode.workspace.workspaceFolders ?? [];
    assert.equal(folders.length, 1, 'exactly one workspace folder is open');
    assert.equal(fs.realpathSync(folders[0].uri.fsPath), fs.realpathSync(layout.workspace));
  });

  it('opens the test workspace with its settings and fixtures', () => {
    const layout = testLayout();
    const graft = vscode.workspace.getConfiguration('graft');
    assert.equal(graft.get('huggingFaceCache.path'), layout.hfCacheHub);
    assert.equal(graft.get('huggingFaceCache.enabled'), true);
    assert.ok(fs.existsSync(path.join(layout.zoo, 'models', 'tiny-llama-base', 'model.safetensors')));
    // The Hugging Face cache keeps snapshots as symlinks into blobs/; the copy must too.
    const snapshots = path.join(layout.hfCacheHub, 'models--acme--tiny-llama-base', 'snapshots');
    const [revision] = fs.readdirSync(snapshots);
    assert.ok(fs.lstatSync(path.join(snapshots, revision, 'model.safetensors')).isSymbolicLink());
    assert.ok(layout.badFiles.length > 0 && layout.goodFiles.length > 0);
  });

  it(`activates ${EXTENSION_ID}`, async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `${EXTENSION_ID} is not loaded: is extensionDevelopmentPath the repository root?`);
    await extension.activate();
    assert.equal(extension.isActive, true);
    // The development copy, not some installed Graft.
    const expectedRoot = process.env.GRAFT_TEST_EXTENSION_ROOT;
    assert.ok(expectedRoot, 'GRAFT_TEST_EXTENSION_ROOT is not set: run through scripts/test-integration.mjs');
    assert.equal(fs.realpathSync(extension.extensionPath), fs.realpathSync(expectedRoot));
  });

  it('registers every command package.json contributes', async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension);
    await extension.activate();
    const contributed = (extension.packageJSON.contributes.commands as ContributedCommand[]).map((entry) => entry.command);
    assert.ok(contributed.length > 0, 'package.json contributes no commands');
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributed.filter((command) => !registered.has(command));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
  });

  it('reaches the workbench through the probe', async function () {
    const probe = requireProbe(this);
    const activityBar = await probe.workbench('.part.activitybar .action-item');
    assert.ok(activityBar.count > 0, 'the activity bar has no items');
    const items = await probe.workbench('.part.activitybar .action-item a.action-label', { attribute: 'aria-label' });
    const graftItem = items.attributes.findIndex((label) => label?.startsWith('Graft'));
    assert.ok(graftItem >= 0, `no Graft item in the activity bar; items: ${items.attributes.join(' | ')}`);
    assert.equal(items.visible[graftItem], true, 'the Graft activity bar item is not visible');
    const file = await probe.screenshot('workbench');
    assert.ok(fs.statSync(file).size > 0, `${file} is empty`);
  });

  it('reports a query on a missing webview as not found instead of hanging', async function () {
    const probe = requireProbe(this);
    const started = Date.now();
    const snapshot = await probe.query('no-such-view' as ProbeView, 'svg', { timeoutMs: 300 });
    assert.equal(snapshot.frameFound, false);
    assert.equal(snapshot.count, 0);
    assert.equal(snapshot.timedOut, true);
    assert.ok(Date.now() - started < 10_000, 'the bounded wait took too long');
    await assert.rejects(probe.workbench('::not a selector'), /invalid selector/);
  });
});
