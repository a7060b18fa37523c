// The demo workspace `npm run demo` opens: written deterministically with the project's own writer,
// never over a user's files, and readable end to end by the catalog and lineage builder.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { scanCatalog } from '../../src/core/catalog';
import { buildLineage } from '../../src/core/lineage';
import { openCheckpoint } from '../../src/core/safetensors';
import { writeDemoWorkspace } from '../support/demo-workspace';
import { tempDir } from './helpers';

function digest(dir: string, files: string[]): string {
  const hash = crypto.createHash('sha256');
  for (const file of [...files].sort()) hash.update(file).update(fs.readFileSync(path.join(dir, file)));
  return hash.digest('hex');
}

test('the demo is the same bytes on every run', async (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const first = await writeDemoWorkspace(path.join(root, 'a'));
  const second = await writeDemoWorkspace(path.join(root, 'b'));
  assert.deepEqual(first.files.sort(), second.files.sort());
  assert.equal(digest(first.dir, first.files), digest(second.dir, second.files));
});

test('the demo refuses a folder with files it did not write, and keeps a file a user added to it', async (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const foreign = path.join(root, 'mine');
  fs.mkdirSync(foreign);
  fs.writeFileSync(path.join(foreign, 'notes.txt'), 'keep me');
  await assert.rejects(writeDemoWorkspace(foreign), /not empty and was not made by the demo/);
  assert.equal(fs.readFileSync(path.join(foreign, 'notes.txt'), 'utf8'), 'keep me');

  const demo = path.join(root, 'demo');
  await writeDemoWorkspace(demo);
  fs.writeFileSync(path.join(demo, 'my-notes.md'), 'added by hand');
  await writeDemoWorkspace(demo);
  assert.equal(fs.readFileSync(path.join(demo, 'my-notes.md'), 'utf8'), 'added by hand');
});

test('the demo reads back as a base with two fine-tunes and an adapter', async (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const { dir } = await writeDemoWorkspace(path.join(root, 'demo'));
  const code = await openCheckpoint(path.join(dir, 'models', 'tiny-code'));
  assert.equal(code.format, 'safetensors-sharded');
  assert.equal(code.files.length, 2);

  const graph = await buildLineage(await scanCatalog([dir], { hfCache: null }), { root: dir, infer: false });
  const edge = (parent: string, child: string) => graph.edges.find((e) => e.parent === parent && e.child === child);
  assert.equal(edge('models/tiny-base', 'models/tiny-chat')?.relation, 'finetune');
  assert.equal(edge('models/tiny-base', 'models/tiny-code')?.relation, 'finetune');
  const adapter = graph.edges.find((e) => e.parent === 'models/tiny-base' && e.relation === 'adapter');
  assert.ok(adapter, `no adapter edge from the base; edges: ${JSON.stringify(graph.edges)}`);
});
