// openCheckpoint on the layouts of the zoo (single file, sharded, HF cache symlinks, adapters,
// trainer checkpoints) and on broken indexes, which must be refused with the tensor and shard named.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { findCheckpointFile, openCheckpoint, readElements, SafetensorsError, writeSafetensors, type TensorData } from '../../src/core/safetensors';
import { fixture, tempDir } from './helpers';

const zoo = (...parts: string[]) => fixture('zoo', ...parts);

test('a folder with model.safetensors, and the file itself, give the same layout', async () => {
  const folder = zoo('workspace', 'models', 'tiny-llama-base');
  const byFolder = await openCheckpoint(folder);
  const byFile = await openCheckpoint(path.join(folder, 'model.safetensors'));
  assert.equal(byFolder.format, 'safetensors');
  assert.equal(byFolder.path, folder);
  assert.deepEqual(byFolder.files, [path.join(folder, 'model.safetensors')]);
  assert.deepEqual(byFolder.tensors, byFile.tensors);
  assert.ok(byFolder.tensors.length > 10);
  assert.equal(byFolder.parameters, byFolder.tensors.reduce((n, t) => n + t.numel, 0));
  assert.equal(byFolder.bytes, byFolder.parameters * 2, 'bf16: two bytes per parameter');
  assert.deepEqual(byFolder.metadata, { format: 'pt' });
});

test('a sharded folder opens through its index; the index path works too', async () => {
  const folder = zoo('workspace', 'models', 'tiny-llama-code');
  const layout = await openCheckpoint(folder);
  const index = JSON.parse(fs.readFileSync(path.join(folder, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(layout.format, 'safetensors-sharded');
  assert.equal(layout.indexFile, path.join(folder, 'model.safetensors.index.json'));
  assert.deepEqual(layout.files.map((f) => path.basename(f)), [1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
  assert.equal(layout.tensors.length, Object.keys(index.weight_map).length);
  for (const t of layout.tensors) assert.equal(path.basename(t.file), index.weight_map[t.name], t.name);
  assert.equal(layout.bytes, index.metadata.total_size);
  assert.equal(layout.parameters, index.metadata.total_parameters);
  assert.deepEqual(layout.metadata, index.metadata);
  assert.equal(layout.warnings, undefined);
  const viaIndex = await openCheckpoint(path.join(folder, 'model.safetensors.index.json'));
  assert.deepEqual(viaIndex.tensors, layout.tensors);
});

test('HF cache snapshots: symlinked files are followed, paths stay in the snapshot', async () => {
  const snapshots = zoo('hf-cache', 'hub', 'models--acme--tiny-llama-base', 'snapshots');
  const [revision] = fs.readdirSync(snapshots);
  const folder = path.join(snapshots, revision);
  assert.ok(fs.lstatSync(path.join(folder, 'model.safetensors')).isSymbolicLink());
  const layout = await openCheckpoint(folder);
  assert.equal(layout.files[0], path.join(folder, 'model.safetensors'));
  const direct = await openCheckpoint(zoo('workspace', 'models', 'tiny-llama-base'));
  assert.deepEqual(layout.tensors.map((t) => [t.name, t.dtype, t.shape]), direct.tensors.map((t) => [t.name, t.dtype, t.shape]));
  const values = await readElements(layout.tensors[0], 0, 8);
  assert.equal(values.length, 8);
});

test('adapter and trainer-checkpoint folders: the single .safetensors file is used', async () => {
  const adapter = await openCheckpoint(zoo('workspace', 'adapters', 'tiny-llama-math-lora'));
  assert.equal(path.basename(adapter.files[0]), 'adapter_model.safetensors');
  assert.ok(adapter.tensors.some((t) => t.name.includes('lora_A')));
  const run = await openCheckpoint(zoo('workspace', 'runs', 'math-sft', 'checkpoint-10'));
  assert.ok(run.tensors.every((t) => t.dtype === 'F32'));
});

function tiny(name: string): TensorData {
  return { name, dtype: 'F32', shape: [2], data: new Uint8Array(8) };
}

async function shardedFixture(dir: string): Promise<void> {
  await writeSafetensors(path.join(dir, 'a.safetensors'), [tiny('x'), tiny('y')]);
  await writeSafetensors(path.join(dir, 'b.safetensors'), [tiny('z')]);
}

function writeIndex(dir: string, weightMap: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(file, JSON.stringify({ metadata: { total_size: 24 }, weight_map: weightMap, ...extra }));
  return file;
}

test('broken indexes are refused, naming the tensor and the shard', async () => {
  const dir = tempDir();
  try {
    await shardedFixture(dir);
    const good = { x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' };
    writeIndex(dir, good);
    assert.equal((await openCheckpoint(dir)).tensors.length, 3);

    const refuse = async (weightMap: Record<string, unknown>, rule: string, pattern: RegExp, extra?: Record<string, unknown>) => {
      const file = writeIndex(dir, weightMap, extra);
      await assert.rejects(openCheckpoint(file), (e: SafetensorsError) => {
        assert.equal(e.rule, rule, e.message);
        assert.match(e.message, pattern);
        assert.equal(e.file, file);
        return true;
      });
    };
    await refuse({ ...good, z: 'c.safetensors' }, 'missing-shard', /shard "c\.safetensors" \(holding "z".*does not exist/);
    await refuse({ ...good, z: '../b.safetensors' }, 'invalid-index', /tensor "z" the shard "\.\.\/b\.safetensors".*not a plain file name/);
    await refuse({ ...good, z: path.join(dir, 'b.safetensors') }, 'invalid-index', /not a plain file name/);
    await refuse({ ...good, z: 'http://127.0.0.1/b.safetensors' }, 'invalid-index', /not a plain file name/);
    await refuse({ ...good, z: 'file:b.safetensors' }, 'invalid-index', /not a plain file name/);
    await refuse({ ...good, z: 'sub\\b.safetensors' }, 'invalid-index', /not a plain file name/);
    await refuse({ ...good, z: '..' }, 'invalid-index', /not a plain file name/);
    await refuse({ ...good, z: 42 }, 'invalid-index', /not a file name/);
    await refuse({ ...good, w: 'b.safetensors' }, 'tensor-not-in-shard', /tensor "w" in shard "b\.safetensors", but that shard does not contain it/);
    await refuse({ x: 'a.safetensors', z: 'b.safetensors' }, 'unlisted-tensor', /shard "a\.safetensors" holds tensor "y", which weight_map does not list/);
    await refuse({ x: 'a.safetensors', y: 'b.safetensors', z: 'b.safetensors' }, 'unlisted-tensor', /holds tensor "y", which weight_map assigns to shard "b\.safetensors"/);
    await refuse({}, 'invalid-index', /weight_map/, { weight_map: [] });

    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    await assert.rejects(openCheckpoint(dir), (e: SafetensorsError) => e.rule === 'invalid-index' && /not valid JSON/.test(e.message));

    // A shard with a bad header fails with the reference's header error, naming the shard file.
    writeIndex(dir, good);
    fs.writeFileSync(path.join(dir, 'b.safetensors'), Buffer.from([1, 0, 0]));
    await assert.rejects(openCheckpoint(dir), (e: SafetensorsError) => e.rule === 'header-too-small' && e.file === path.join(dir, 'b.safetensors'));
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('a total_size that disagrees with the shards is a warning, not an error', async () => {
  const dir = tempDir();
  try {
    await shardedFixture(dir);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 999 }, weight_map: { x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' } }));
    const layout = await openCheckpoint(dir);
    assert.equal(layout.bytes, 24);
    assert.deepEqual(layout.warnings, ['The index declares total_size 999 but its shards hold 24 bytes of tensors.']);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('folders: several unindexed files are ambiguous, no weights is an error, preference order holds', async () => {
  const dir = tempDir();
  try {
    await assert.rejects(openCheckpoint(dir), (e: SafetensorsError) => e.rule === 'no-weights');
    await shardedFixture(dir);
    await assert.rejects(openCheckpoint(dir), (e: SafetensorsError) => e.rule === 'ambiguous-folder' && /a\.safetensors, b\.safetensors/.test(e.message));
    await writeSafetensors(path.join(dir, 'model.safetensors'), [tiny('m')]);
    assert.equal(await findCheckpointFile(dir), path.join(dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'other.safetensors.index.json'), JSON.stringify({ weight_map: { z: 'b.safetensors' } }));
    assert.equal(await findCheckpointFile(dir), path.join(dir, 'other.safetensors.index.json'));
    writeIndex(dir, { x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' });
    assert.equal(await findCheckpointFile(dir), path.join(dir, 'model.safetensors.index.json'));
    await assert.rejects(openCheckpoint(path.join(dir, 'missing')), (e: SafetensorsError) => e.rule === 'io');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
