// Hostile inputs in the editor: a model card that opens its front matter, never closes it and
// follows it with 20,000 line breaks made the old front-matter parser backtrack for over a minute
// on the extension host. The scan must list the model and leave the host free meanwhile.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { GraftApi } from '../../../src/extension/main';
import { testLayout } from '../workspace';

const EXTENSION_ID = 'graft-tools.graft';
/** Far above a healthy host's worst pause on a loaded machine, far below the old parser's freeze. */
const LONGEST_ACCEPTABLE_PAUSE_MS = 5_000;

describe('hostile inputs', function () {
  this.timeout(120_000);

  it('lists the model with the unclosed card while the extension host keeps running', async () => {
    const extension = vscode.extensions.getExtension<GraftApi>(EXTENSION_ID)!;
    const { index } = await extension.activate();
    await index.whenIdle();

    // Timer ticks on the extension host during a full rescan: the longest gap between two is the
    // longest time the host (and every extension on it) could not answer the window.
    let last = performance.now();
    let longestPause = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestPause = Math.max(longestPause, now - last);
      last = now;
    }, 20);
    try {
      await vscode.commands.executeCommand('graft.refresh');
      await index.whenIdle();
    } finally {
      clearInterval(ticker);
    }
    const entry = index.catalog!.entries.find((e) => e.path === testLayout().hostileCard);
    assert.ok(entry, `the model with the unclosed card is not listed; entries: ${index.catalog!.entries.map((e) => e.path).join(', ')}`);
    // An unclosed block is no front matter: no card facts, so no base_model taken from it.
    assert.equal(entry.card, undefined);
    assert.ok(index.graph!.nodes.some((n) => n.locations?.includes(entry.path)), 'the model has no node in the lineage graph');
    console.log(`[graft] longest extension host pause during the rescan: ${longestPause.toFixed(0)} ms`);
    assert.ok(longestPause < LONGEST_ACCEPTABLE_PAUSE_MS, `the extension host was blocked for ${longestPause.toFixed(0)} ms during the scan`);
  });
});
