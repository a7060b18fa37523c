// The checkpoint inspector in a real VS Code: a zoo checkpoint opens to its tensor table, a
// selected tensor gets statistics equal to the values read independently here, sharded sets and
// every dtype open, and malformed files open to the reference rule they break.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { openCheckpoint, readElements } from '../../../src/core/safetensors';
import { requireProbe, type ProbeClient } from '../probe';
import { testLayout } from '../workspace';

const EXTENSION_ID = 'graft-tools.graft';

async function closeAllEditors(): Promise<void> {
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
}

async function inspect(file: string): Promise<void> {
  await vscode.commands.executeCommand('graft.inspectCheckpoint', vscode.Uri.file(file));
}

/** The tensor names the inspector's table shows right now. */
async function visibleNames(probe: ProbeClient, minCount = 1): Promise<string[]> {
  const rows = await probe.query('inspector', '.viewport .row[data-name]', { attribute: 'data-name', minCount, timeoutMs: 20_000 });
  return rows.attributes.filter((name): name is string => !!name);
}

describe('checkpoint inspector', function () {
  this.timeout(120_000);

  before(async () => {
    await vscode.extensions.getExtension(EXTENSION_ID)!.activate();
  });

  afterEach(closeAllEditors);

  it('opens a checkpoint to its summary and tensor table', async function () {
    const probe = requireProbe(this);
    const file = path.join(testLayout().zoo, 'models', 'tiny-llama-base', 'model.safetensors');
    const layout = await openCheckpoint(file);
    await inspect(file);

    const names = await visibleNames(probe, 10);
    assert.ok(names.includes('model.embed_tokens.weight'), `first rows: ${names.slice(0, 5).join(', ')}`);
    for (const name of names) assert.ok(layout.tensors.some((t) => t.name === name), `the table shows ${name}, which the file does not hold`);

    const facts = await probe.query('inspector', '.facts .fact dd');
    assert.equal(facts.texts[2], String(layout.tensors.length), 'tensor count in the summary');
    const groups = await probe.query('inspector', '.viewport .row.group', { attribute: 'data-group' });
    assert.ok(groups.attributes.includes('0'), `layer groups: ${groups.attributes.join(', ')}`);
    await probe.screenshot('inspector');
  });

  it('computes a selected tensor\'s statistics and histogram off the extension host', async function () {
    const probe = requireProbe(this);
    const file = path.join(testLayout().zoo, 'models', 'tiny-llama-math', 'model.safetensors');
    const tensorName = 'model.layers.0.self_attn.q_proj.weight';
    await inspect(file);
    await visibleNames(probe, 5);
    await probe.click('inspector', `.viewport .row[data-name="${tensorName}"]`);

    const min = await probe.query('inspector', '.stats-table tr[data-stat="min"] td', { timeoutMs: 30_000 });
    const max = await probe.query('inspector', '.stats-table tr[data-stat="max"] td');
    const bars = await probe.query('inspector', '.histogram-svg rect.bar');
    assert.ok(bars.count >= 8, `histogram bars: ${bars.count}`);

    // The same values, read here straight from the file.
    const ref = (await openCheckpoint(file)).tensors.find((t) => t.name === tensorName)!;
    const values = await readElements(ref, 0, ref.numel);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    assert.equal(Number(min.texts[0].replace(/,/g, '')).toPrecision(5), lo.toPrecision(5));
    assert.equal(Number(max.texts[0].replace(/,/g, '')).toPrecision(5), hi.toPrecision(5));
    await probe.screenshot('inspector-stats');
  });

  it('filters the table', async function () {
    const probe = requireProbe(this);
    await inspect(path.join(testLayout().zoo, 'models', 'tiny-llama-base', 'model.safetensors'));
    await visibleNames(probe, 5);
    await probe.evaluate('inspector', `(() => { const f = document.querySelector('.filter'); f.value = 'q_proj'; f.dispatchEvent(new Event('input')); return true; })()`);
    const names = await probe.evaluate<string[]>(
      'inspector',
      `new Promise((resolve) => requestAnimationFrame(() => resolve([...document.querySelectorAll('.viewport .row[data-name]')].filter((r) => !r.hidden).map((r) => r.dataset.name))))`,
    );
    assert.ok(names.length > 0, 'the filter hid everything');
    assert.ok(names.every((n) => n.includes('q_proj')), `rows that do not match: ${names.filter((n) => !n.includes('q_proj')).join(', ')}`);
  });

  it('opens a sharded set through its index', async function () {
    const probe = requireProbe(this);
    const folder = path.join(testLayout().zoo, 'models', 'tiny-llama-code');
    await inspect(folder);
    const format = await probe.query('inspector', '.facts .fact dd', { minCount: 4 });
    assert.match(format.texts[3], /4 shards/);
    const names = await visibleNames(probe, 5);
    assert.ok(names.includes('model.embed_tokens.weight'));
  });

  it('shows every dtype of the format fixture', async function () {
    const probe = requireProbe(this);
    await inspect(path.join(testLayout().formats, 'all_dtypes.safetensors'));
    const chips = await probe.query('inspector', '.dtype-chip .mono', { minCount: 10 });
    for (const dtype of ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0']) {
      assert.ok(chips.texts.includes(dtype), `dtype ${dtype} missing; shown: ${chips.texts.join(', ')}`);
    }
  });

  it('opens a malformed file to the rule it breaks', async function () {
    const probe = requireProbe(this);
    const bad = path.join(testLayout().bad, 'overlap.safetensors');
    await inspect(bad);
    const banner = await probe.query('inspector', '.error-banner', { timeoutMs: 20_000 });
    assert.equal(banner.count, 1, 'no error banner');
    assert.match(banner.texts[0], /invalid offset for tensor `b`/);
    assert.match(banner.texts[0], /not a valid safetensors checkpoint/);
    await probe.screenshot('inspector-error');
  });
});
