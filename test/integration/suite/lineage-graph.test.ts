// The lineage graph panel in a real VS Code: it draws the zoo's true lineage (LINEAGE.json), the
// merge with all its parents, answers search and "Show in Graph", follows theme switches, and a click
// on a node reveals it in the sidebar tree. Last, on a generated folder that declares nothing, it
// draws what the weights tell: merges with all their parents and their recipe, casts, merged adapters.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { generateZoo, writeZoo } from '../../support/lineage-zoo';
import { requireProbe, type ProbeClient } from '../probe';
import { testLayout } from '../workspace';

const EXTENSION_ID = 'graft-tools.graft';
/** The scan of the test workspace runs at activation; on a slow machine it takes a while. */
const SCAN_TIMEOUT_MS = 60_000;

interface TrueLineage {
  nodes: Record<string, unknown>;
  edges: { parent: string; child: string; relation: string }[];
}

/** test/fixtures/zoo/LINEAGE.json, found above the compiled suite (out/test/integration/suite). */
function trueLineage(): TrueLineage {
  const relative = path.join('test', 'fixtures', 'zoo', 'LINEAGE.json');
  let dir = __dirname;
  // Not by package.json: tsc copies one into out/.
  while (!fs.existsSync(path.join(dir, relative))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`${relative} not found above ${__dirname}`);
    dir = up;
  }
  return JSON.parse(fs.readFileSync(path.join(dir, relative), 'utf8')) as TrueLineage;
}

/** A CSS attribute selector value (ids are paths: quote them). */
function quoted(value: string): string {
  return JSON.stringify(value);
}

/** Node ids are paths relative to the scanned root; in the test workspace the zoo sits under zoo/. */
async function nodeIdEndingWith(probe: ProbeClient, suffix: string): Promise<string> {
  const found = await probe.query('lineage', `g.node[data-id$=${quoted('/' + suffix)}], g.node[data-id=${quoted(suffix)}]`, { attribute: 'data-id', timeoutMs: SCAN_TIMEOUT_MS });
  assert.ok(found.count >= 1, `no node for ${suffix} in the lineage graph; views open: ${found.views.join(', ')}`);
  const local = found.attributes.filter((id): id is string => !!id && !id.startsWith('hub:'));
  assert.ok(local.length >= 1, `only hub nodes end with ${suffix}: ${found.attributes.join(', ')}`);
  return local[0];
}

describe('lineage graph', function () {
  this.timeout(120_000);

  before(async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `${EXTENSION_ID} is not loaded`);
    await extension.activate();
    assert.ok(fs.existsSync(path.join(testLayout().zoo, 'merges', 'tiny-llama-math-code-ties')));
  });

  it('draws the merge with all its parents and saves a screenshot', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    const mergeId = await nodeIdEndingWith(probe, 'merges/tiny-llama-math-code-ties');
    const mathId = await nodeIdEndingWith(probe, 'models/tiny-llama-math');
    const codeId = await nodeIdEndingWith(probe, 'models/tiny-llama-code');
    const baseId = await nodeIdEndingWith(probe, 'models/tiny-llama-base');
    // Saved before the checks, so a failure leaves the picture behind.
    const file = await probe.screenshot('lineage-graph');
    assert.ok(fs.statSync(file).size > 0, `${file} is empty`);

    // The two merged fine-tunes, and the base mergekit_config.yml names as the TIES reference.
    const incoming = await probe.query('lineage', `path.edge[data-child=${quoted(mergeId)}]`, { attribute: 'data-parent', minCount: 3 });
    assert.deepEqual([...incoming.attributes].sort(), [baseId, codeId, mathId].sort(), `parents drawn: ${incoming.attributes.join(', ')}`);
    assert.ok(incoming.visible.every(Boolean), 'the merge edges are not rendered');

    const merge = await probe.query('lineage', `g.node[data-id=${quoted(mergeId)}]`, { attribute: 'aria-label' });
    assert.match(merge.attributes[0] ?? '', /tiny-llama-math-code-ties, merge/);
    assert.match(merge.texts[0] ?? '', /tiny-llama-math-code-ties/);

    const errors = await probe.query('lineage', '.error-banner', { timeoutMs: 300 });
    assert.equal(errors.count, 0, `the view shows an error: ${errors.texts.join(' ')}`);
    const legend = await probe.query('lineage', 'details.legend li');
    assert.equal(legend.count, 11, 'the legend lists 8 kinds (patch included) and 3 link styles');

    const timings = await probe.evaluate<{ layoutMs: string; renderMs: string }>('lineage', '({ ...document.querySelector("svg.lineage-svg").dataset })');
    console.log(`[graft] lineage graph layout ${timings.layoutMs} ms, drawing ${timings.renderMs} ms`);
  });

  it('draws every link of the true lineage of the zoo', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    const truth = trueLineage();
    const ids = new Map<string, string>();
    for (const name of new Set(truth.edges.flatMap((edge) => [edge.parent, edge.child]))) ids.set(name, await nodeIdEndingWith(probe, name));
    const drawn = await probe.evaluate<[string, string][]>('lineage',
      '[...document.querySelectorAll("svg.lineage-svg path.edge")].map((p) => [p.dataset.parent, p.dataset.child])');
    const pairs = new Set(drawn.map(([parent, child]) => `${parent} -> ${child}`));
    // Links only the weights suggest may lack a direction; accept them either way round.
    const missing = truth.edges.filter(({ parent, child }) => {
      const p = ids.get(parent)!;
      const c = ids.get(child)!;
      return !pairs.has(`${p} -> ${c}`) && !pairs.has(`${c} -> ${p}`);
    });
    assert.deepEqual(missing.map((edge) => `${edge.parent} -> ${edge.child}`), [], 'links of LINEAGE.json missing from the graph');
  });

  it('finds a model with the search box and centres it', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    const mergeId = await nodeIdEndingWith(probe, 'merges/tiny-llama-math-code-ties');
    await probe.click('lineage', 'vscode-text-field');
    await probe.type('math-code-ties');
    await probe.press('Enter');
    const current = await probe.query('lineage', 'g.node.current-match', { attribute: 'data-id' });
    assert.equal(current.attributes[0], mergeId);
    const count = await probe.query('lineage', '.match-count');
    assert.equal(count.texts[0], '1 of 1');
    // Centred: the node's middle comes within a few pixels of the view's middle once the 450 ms
    // transition ends; polled, since a loaded machine may run the transition's frames late.
    const offset = await probe.evaluate<{ dx: number; dy: number }>('lineage', `new Promise((resolve) => {
      const deadline = Date.now() + 5000;
      const check = () => {
        const svg = document.querySelector('svg.lineage-svg').getBoundingClientRect();
        const node = document.querySelector('g.node.current-match').getBoundingClientRect();
        const offset = { dx: Math.abs(node.x + node.width / 2 - (svg.x + svg.width / 2)), dy: Math.abs(node.y + node.height / 2 - (svg.y + svg.height / 2)) };
        if ((offset.dx < 4 && offset.dy < 4) || Date.now() > deadline) resolve(offset);
        else setTimeout(check, 100);
      };
      setTimeout(check, 450);
    })`, { timeoutMs: 8000 });
    assert.ok(offset.dx < 4 && offset.dy < 4, `the match is not centred: ${JSON.stringify(offset)}`);
    await probe.press('Escape');
  });

  it('selects and centres the model that "Show in Graph" names', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    const codeId = await nodeIdEndingWith(probe, 'models/tiny-llama-code');
    await vscode.commands.executeCommand('graft.showInGraph', vscode.Uri.file(path.join(testLayout().zoo, 'models', 'tiny-llama-code')));
    const selected = await probe.query('lineage', `g.node.selected[data-id=${quoted(codeId)}]`, { attribute: 'aria-current' });
    assert.equal(selected.count, 1, 'the model is not selected in the graph');
    assert.equal(selected.attributes[0], 'true', 'the selected node lacks aria-current');
    // Its ancestors stay highlighted, unrelated models fade.
    const baseId = await nodeIdEndingWith(probe, 'models/tiny-llama-base');
    const base = await probe.query('lineage', `g.node.in-lineage[data-id=${quoted(baseId)}]`);
    assert.equal(base.count, 1, 'the parent of the selected model is not highlighted');
    const bertId = await nodeIdEndingWith(probe, 'models/tiny-bert');
    const bertSelector = `g.node[data-id=${quoted(bertId)}]`;
    const bertOpacity = await probe.evaluate<string>('lineage', `getComputedStyle(document.querySelector(${JSON.stringify(bertSelector)})).opacity`);
    assert.ok(Number(bertOpacity) < 1, `an unrelated model is not faded (opacity ${bertOpacity})`);
  });

  it('reveals a clicked model in the sidebar tree', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    const mathId = await nodeIdEndingWith(probe, 'models/tiny-llama-math');
    // Fit first so the node is on screen for a real click.
    await probe.click('lineage', 'vscode-button:has-text("Fit")');
    await new Promise((resolve) => setTimeout(resolve, 700));
    await probe.click('lineage', `g.node[data-id=${quoted(mathId)}]`);
    // The row's text is the label then the description; the adapter's and the merge's labels start the same, so no hyphen may follow.
    const isMathRow = (text: string) => /^tiny-llama-math(?!-)/.test(text);
    let rows = await probe.workbench('.monaco-list-row.selected', { timeoutMs: 10_000 });
    const deadline = Date.now() + 10_000;
    while (!rows.texts.some(isMathRow) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      rows = await probe.workbench('.monaco-list-row.selected', { timeoutMs: 2_000 });
    }
    assert.ok(rows.texts.some(isMathRow), `the tree did not select the model; selected rows: ${rows.texts.join(' | ')}`);
  });

  it('colours a kind the same in the sidebar tree and in the graph', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    await nodeIdEndingWith(probe, 'merges/tiny-llama-math-code-ties');
    await vscode.commands.executeCommand('graft.lineage.focus');
    // The merge's own row (under its base), not a link row pointing to it.
    const mergeIcon = '.pane-body .monaco-list-row[aria-label^="tiny-llama-math-code-ties "]:not([aria-label*="listed under"]) .codicon-git-merge';
    await probe.workbench(mergeIcon, { minCount: 1, timeoutMs: 10_000 });
    const treeColour = await probe.evaluate<string>('workbench', `getComputedStyle(document.querySelector(${JSON.stringify(mergeIcon)})).color`);
    const graphColour = await probe.evaluate<string>('lineage', 'getComputedStyle(document.documentElement).getPropertyValue("--lineage-merge-stroke").trim()');
    assert.match(treeColour, /^rgb\(/);
    assert.equal(treeColour, graphColour, 'the merge icon in the tree and merge nodes in the graph should share a colour');
  });

  it('follows a theme switch', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    await nodeIdEndingWith(probe, 'models/tiny-llama-base');
    const fillOf = () => probe.evaluate<string>('lineage', 'getComputedStyle(document.documentElement).getPropertyValue("--lineage-base-fill").trim()');
    const config = vscode.workspace.getConfiguration('workbench');
    const before = await fillOf();
    const bodyClass = () => probe.evaluate<string>('lineage', 'document.body.className');
    const light = 'Default Light Modern';
    const dark = 'Default Dark Modern';
    const original = config.inspect<string>('colorTheme')?.workspaceValue;
    const other = vscode.window.activeColorTheme.kind === vscode.ColorThemeKind.Light ? dark : light;
    try {
      await config.update('colorTheme', other, vscode.ConfigurationTarget.Workspace);
      let after = before;
      const deadline = Date.now() + 10_000;
      while (after === before && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        after = await fillOf();
      }
      assert.notEqual(after, before, `the node colours did not follow the switch to ${other}`);
      assert.match(after, /^rgb\(/);
      assert.match(await bodyClass(), other === light ? /vscode-light/ : /vscode-dark/);
      await probe.screenshot('lineage-graph-other-theme');
    } finally {
      await config.update('colorTheme', original, vscode.ConfigurationTarget.Workspace);
    }
  });
  it('draws links inferred from weights: merges with every parent and their recipe on hover, casts, merged adapters', async function () {
    const probe = requireProbe(this);
    const root = path.join(testLayout().workspace, 'undeclared');
    const zoo = generateZoo(102);
    await writeZoo(root, zoo);
    try {
      await vscode.commands.executeCommand('graft.refresh');
      await vscode.commands.executeCommand('graft.showLineageGraph');
      const linear = zoo.truth.merges.find((m) => m.method === 'linear')!;
      const mergeId = await nodeIdEndingWith(probe, `undeclared/${linear.child}`);
      const parentIds = await Promise.all(linear.parents.map((p) => nodeIdEndingWith(probe, `undeclared/${p}`)));
      const incoming = await probe.query('lineage', `path.edge.relation-merge.inferred[data-child=${quoted(mergeId)}]`, { attribute: 'data-parent', minCount: parentIds.length });
      assert.deepEqual([...incoming.attributes].sort(), [...parentIds].sort(), 'every parent of the merge, and no chain through them');

      // Focusing a node shows its tooltip, as hovering does: the parents with their coefficients and the recipe.
      await probe.evaluate('lineage', `(document.querySelector(${JSON.stringify(`g.node[data-id=${quoted(mergeId)}]`)}).dispatchEvent(new FocusEvent('focusin', { bubbles: true })), true)`);
      const tooltip = await probe.query('lineage', '.tooltip:not([hidden])');
      assert.match(tooltip.texts[0] ?? '', /Parents \(2\):/);
      assert.match(tooltip.texts[0] ?? '', /coefficient ≈ 0\.\d+/);
      assert.match(tooltip.texts[0] ?? '', /Recipe: ≈ 0\.\d+ \S+ \+ 0\.\d+ \S+/);
      await probe.screenshot('lineage-graph-inferred-merge');

      const cast = zoo.truth.casts[0];
      const castId = await nodeIdEndingWith(probe, `undeclared/${cast.cast}`);
      const castEdge = await probe.query('lineage', `path.edge.relation-quantized[data-child=${quoted(castId)}]`, { attribute: 'data-parent' });
      assert.deepEqual(castEdge.attributes, [await nodeIdEndingWith(probe, `undeclared/${cast.source}`)]);
      const adapters = await probe.query('lineage', 'path.edge.relation-adapter.inferred', { minCount: zoo.truth.adapters.length });
      assert.equal(adapters.count, zoo.truth.adapters.length, 'every merged adapter');

      // The sidebar tree lists the merge under one parent and links it from the other.
      await vscode.commands.executeCommand('graft.lineage.focus');
      const label = path.basename(linear.child);
      const rows = await probe.workbench(`.pane-body .monaco-list-row[aria-label^=${quoted(`${label} `)}]`, { minCount: 1, timeoutMs: 10_000 });
      assert.ok(rows.count >= 1, `no tree row for ${label}`);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
      await vscode.commands.executeCommand('graft.refresh');
    }
  });
  it('keeps names readable zoomed out: drawn larger, then none', async function () {
    const probe = requireProbe(this);
    await vscode.commands.executeCommand('graft.showLineageGraph');
    await nodeIdEndingWith(probe, 'merges/tiny-llama-math-code-ties');
    // The labels of each node as shown once the scale settles: which text is displayed, and how tall on screen.
    const shown = () => probe.evaluate<{ level: string; k: number; names: { display: string; height: number; text: string }[] }>('lineage', `new Promise((resolve) => setTimeout(resolve, 400)).then(() => {
      const svg = document.querySelector('svg.lineage-svg');
      const level = ['labels-none', 'labels-compact', 'labels-names'].find((c) => svg.classList.contains(c)) || 'labels-all';
      const k = Number((document.querySelector('svg.lineage-svg g.viewport').getAttribute('transform') || '').match(/scale\\(([^)]+)\\)/)?.[1] ?? 1);
      const names = [...document.querySelectorAll('g.node')].map((g) => {
        const text = [...g.querySelectorAll('text.node-label, text.node-label-compact')].find((t) => getComputedStyle(t).display !== 'none');
        return { display: text ? text.getAttribute('class') : 'none', height: text ? text.getBoundingClientRect().height : 0, text: text ? text.textContent : '' };
      });
      return { level, k, names };
    })`);
    let sawCompact = false;
    for (let step = 0; step < 12; step++) {
      const now = await shown();
      if (now.level === 'labels-compact') {
        sawCompact = true;
        // Every name is there, larger, and readable on screen at this scale.
        assert.ok(now.names.every((n) => n.display === 'node-label-compact' && n.text.length > 0), `compact names: ${JSON.stringify(now.names.slice(0, 3))}`);
        const smallest = Math.min(...now.names.map((n) => n.height));
        assert.ok(smallest >= 7, `names ${smallest.toFixed(1)} px tall at scale ${now.k}`);
        await probe.screenshot('lineage-graph-zoomed-out');
      }
      if (now.level === 'labels-none') {
        assert.ok(sawCompact, 'zooming out passed through the compact names');
        assert.ok(now.names.every((n) => n.display === 'none'), 'no label below the compact scale');
        await probe.click('lineage', 'vscode-button[aria-label="Fit"], vscode-button[title^="Fit"]');
        return;
      }
      await probe.click('lineage', 'vscode-button[aria-label="Zoom out"]');
    }
    assert.fail('zooming out never reached the level without labels');
  });
});
