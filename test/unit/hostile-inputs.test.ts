// Hostile and unusual inputs: each case generates its file (many tensors, an unclosed card, a FIFO,
// escape codes, links out of the scanned folder...) and checks the outcome is bounded and clear.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { diffCommand } from '../../src/cli/commands/diff';
import { inspectCommand, type InspectReport } from '../../src/cli/commands/inspect';
import { lineageCommand } from '../../src/cli/commands/lineage';
import { validateCommand } from '../../src/cli/commands/validate';
import { createContext, type CliCommand } from '../../src/cli/context';
import { runCli, type CliFailure } from '../../src/cli/main';
import { writeJson } from '../../src/cli/output';
import { extractFrontMatter, parseModelCard, parseMergekitFacts, scanCatalog } from '../../src/core/catalog';
import { maxOf, minOf, appendAll } from '../../src/core/collections';
import { describeFsError, openRegularFile } from '../../src/core/files';
import { GGUF_CATALOG_LIMITS, GgufValueType, readGgufHeader, writeGguf, type GgufMetadataEntry } from '../../src/core/gguf';
import { parseProvenance } from '../../src/core/catalog/provenance';
import { buildLineage } from '../../src/core/lineage/build';
import { openCheckpoint, readElements, readHeader, writeSafetensors } from '../../src/core/safetensors';
import { escapeControl, hasControl } from '../../src/core/text';
import { repoRoot, tempDir, workerScript } from './helpers';

async function run(command: CliCommand, args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const ctx = createContext({ stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, new AbortController().signal, workerScript);
  if (cwd) ctx.cwd = cwd;
  try {
    return { code: await command.run(args, ctx), stdout, stderr };
  } finally {
    await ctx.dispose();
  }
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

/** A safetensors file from a raw header object and `dataBytes` bytes of `fill`. */
function writeRaw(file: string, header: Record<string, unknown>, dataBytes: number, fill = 0): void {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([prefix, json, Buffer.alloc(dataBytes, fill)]));
}

/** `count` U8 tensors of one element each (`t0`, `t1`, ...). */
function manyTensors(file: string, count: number): void {
  const header: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) header[`t${i}`] = { dtype: 'U8', shape: [1], data_offsets: [i, i + 1] };
  writeRaw(file, header, count);
}

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const canMakeFifo = process.platform !== 'win32' && spawnSync('mkfifo', ['--help']).error === undefined;
const isRoot = process.getuid?.() === 0;
/**
 * A guard against hangs, not a speed check: the old front-matter regex took over a minute on the
 * card below and the old open() of a FIFO never returned; a fixed reader takes milliseconds.
 */
const HANG_GUARD = { timeout: 30_000 };

// ---- 1. many tensors ------------------------------------------------------------------------

test('130,000 tensors: inspect, validate, diff and the catalog work (no argument spreads)', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'many.safetensors');
    manyTensors(file, 130_000);
    const inspected = await run(inspectCommand, [file]);
    assert.equal(inspected.code, 0);
    assert.match(inspected.stdout, /130,000 tensors/);
    const json = JSON.parse((await run(inspectCommand, [file, '--json'])).stdout) as InspectReport;
    assert.equal(json.tensors.length, 130_000);
    const validated = await run(validateCommand, [file, '--json']);
    assert.deepEqual(JSON.parse(validated.stdout), { valid: true, error: null, rule: null, file: null, tensors: 130_000 });
    const diffed = await run(diffCommand, [file, file, '--json', '--quick']);
    assert.equal(diffed.code, 0, diffed.stderr);
    assert.equal(JSON.parse(diffed.stdout).summary.tensors, 130_000);

    // One shard of a sharded set holding them all, in a model folder: listed, not dropped.
    const model = path.join(dir, 'moe');
    fs.mkdirSync(model);
    fs.renameSync(file, path.join(model, 'model-00001-of-00001.safetensors'));
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < 130_000; i++) weightMap[`t${i}`] = 'model-00001-of-00001.safetensors';
    fs.writeFileSync(path.join(model, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    fs.writeFileSync(path.join(model, 'config.json'), '{"model_type": "mixtral"}');
    assert.equal((await openCheckpoint(model)).tensors.length, 130_000);
    const catalog = await scanCatalog([dir]);
    assert.deepEqual(catalog.problems, []);
    assert.equal(catalog.entries.find((e) => e.path === model)?.tensorCount, 130_000);
    // A copy beside it: both appear in the lineage, recognised as one model by their weights.
    fs.cpSync(model, path.join(dir, 'moe-copy'), { recursive: true });
    const graph = await buildLineage(await scanCatalog([dir]), { root: dir, infer: true });
    const node = graph.nodes.find((n) => n.locations?.includes(model));
    assert.ok(node, `the 130,000-tensor model is missing from the lineage: ${JSON.stringify(graph.nodes.map((n) => n.id))}`);
    assert.equal(node.locations?.length, 2);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('maxOf, minOf and appendAll take lists far past the argument limit', () => {
  const values = Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 300_001);
  assert.equal(maxOf(values), Math.max(...values.slice(0, 1000), ...values.slice(1000).filter((v) => v > 299_990)));
  assert.equal(minOf(values), 0);
  assert.equal(maxOf([], 5), 5);
  assert.equal(appendAll([1], values).length, 300_001);
});

// ---- 2. model cards in linear time --------------------------------------------------------

test('an unclosed front matter followed by 20,000 line breaks is no front matter, at once', HANG_GUARD, () => {
  const card = '---\n' + 'a: 1\n' + '\n'.repeat(20_000) + 'text';
  assert.equal(extractFrontMatter(card), null);
  assert.deepEqual(parseModelCard(card), { facts: null, warnings: [] });
  // The same block closed after the line breaks is read.
  assert.deepEqual(parseModelCard('---\nlicense: mit\n' + '\n'.repeat(20_000) + '---\ntext').facts, { license: 'mit' });
});

test('the front matter scanner agrees with the delimiter rule of the Hub on every short text', () => {
  // The regular expression it replaces, fine on short texts: the reference for the scan.
  const reference = (text: string) => /^\s*---[\r\n]+([\s\S]*?)[\r\n]+---(?:\r\n|\n|$)/.exec(text)?.[1] ?? null;
  const alphabet = ['-', '-', '-', '\n', '\r', 'a', ' '];
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) % 2147483648);
  for (let n = 0; n < 30_000; n++) {
    let text = next() % 2 === 0 ? '---\n' : '';
    const length = next() % 14;
    for (let i = 0; i < length; i++) text += alphabet[next() % alphabet.length];
    assert.equal(extractFrontMatter(text), reference(text), JSON.stringify(text));
  }
});

// ---- 3. FIFOs and other special files -----------------------------------------------------

test('a FIFO given as a checkpoint, as a shard or found by the scan is refused, never opened blocking', { ...HANG_GUARD, skip: canMakeFifo ? false : 'mkfifo is not available on this system' }, async () => {
  const dir = tempDir();
  try {
    const fifo = path.join(dir, 'model.safetensors');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    await assert.rejects(openRegularFile(fifo), /named pipe \(FIFO\), not a regular file/);
    await assert.rejects(openCheckpoint(fifo), /Cannot open ".*model\.safetensors": it is a named pipe \(FIFO\), not a regular file/);
    await assert.rejects(readHeader(fifo), /named pipe/);
    const validated = await cli(['validate', fifo, '--json']);
    assert.equal(validated.code, 1);
    const failure = JSON.parse(validated.stdout) as CliFailure;
    assert.equal(failure.rule, 'io');
    assert.match(failure.error, /named pipe/);
    // Said once: not "cannot open ...: Cannot open ...".
    const inspected = await cli(['inspect', fifo]);
    assert.match(inspected.stderr, /^graft inspect: cannot open ".*model\.safetensors": it is a named pipe \(FIFO\), not a regular file; Graft only reads regular files\.\n$/);
    // Found by the scan (in a model folder): reported, and the scan completes.
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const catalog = await scanCatalog([dir]);
    assert.ok(catalog.problems.some((p) => p.path === fifo && /named pipe \(FIFO\), not a regular file; skipped/.test(p.message)), JSON.stringify(catalog.problems));
    // A FIFO named as an index, or as a shard an index lists, is refused too.
    const indexFifo = path.join(dir, 'x.safetensors.index.json');
    assert.equal(spawnSync('mkfifo', [indexFifo]).status, 0);
    await assert.rejects(openCheckpoint(indexFifo), /named pipe/);
    const sharded = path.join(dir, 'sharded');
    fs.mkdirSync(sharded);
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), '{"weight_map": {"w": "model-00001-of-00001.safetensors"}}');
    assert.equal(spawnSync('mkfifo', [path.join(sharded, 'model-00001-of-00001.safetensors')]).status, 0);
    await assert.rejects(openCheckpoint(sharded), /shard "model-00001-of-00001\.safetensors" \(holding "w" among others\) cannot be read \(it is a named pipe \(FIFO\), not a regular file/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 4. GGUF metadata caps ------------------------------------------------------------------

test('GGUF metadata is read with caps: only general.* is kept, the rest is counted as skipped', async () => {
  const dir = tempDir();
  try {
    const metadata: GgufMetadataEntry[] = [
      { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
      { key: 'general.name', type: GgufValueType.STRING, value: 'x' },
    ];
    for (let i = 0; i < 200; i++) metadata.push({ key: `junk.${i}`, type: GgufValueType.STRING, value: 'y'.repeat(1000) });
    metadata.push({ key: 'tokenizer.tokens', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, length: 3, items: ['a', 'b', 'c'] } });
    const file = path.join(dir, 'm.gguf');
    await writeGguf(file, { metadata, tensors: [{ name: 'w', dims: [4], type: 0, data: f32([1, 2, 3, 4]) }] });
    const header = await readGgufHeader(file, GGUF_CATALOG_LIMITS);
    assert.deepEqual(header.metadata.map((m) => m.key), ['general.architecture', 'general.name']);
    assert.equal(header.skippedMetadata, 201);
    assert.equal(header.tensors.length, 1);
    // Past the byte cap or the entry cap: a clear refusal, not a read of everything.
    await assert.rejects(readGgufHeader(file, { ...GGUF_CATALOG_LIMITS, maxMetadataBytes: 50_000 }), /more than 50000 bytes of metadata \(stopped at entry \d+ of 203\).*skipped/);
    await assert.rejects(readGgufHeader(file, { ...GGUF_CATALOG_LIMITS, maxMetadataEntries: 100 }), /declares 203 metadata entries, more than the 100 Graft reads/);
    // Kept values past the kept-bytes budget are skipped and counted.
    const small = await readGgufHeader(file, { ...GGUF_CATALOG_LIMITS, maxKeptBytes: 20 });
    assert.deepEqual(small.metadata.map((m) => m.key), ['general.architecture']);
    const catalog = await scanCatalog([dir]);
    assert.equal(catalog.entries[0].gguf?.skippedMetadata, 201);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 5. EPIPE -------------------------------------------------------------------------------

test('`graft inspect big | head` ends quietly when the reader closes the pipe', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'big.safetensors');
    manyTensors(file, 60_000);
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'cli.js'), 'inspect', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Read the first piece, then close our end, as `head -1` does.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 6. escape codes ------------------------------------------------------------------------

const HOSTILE = '\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\nforged line\u202eevil\x9b';

test('escapeControl writes every control character as a visible escape', () => {
  assert.equal(escapeControl(HOSTILE), '\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\\r\\nforged line\\u202eevil\\x9b');
  assert.equal(hasControl(escapeControl(HOSTILE)), false);
  assert.equal(escapeControl('model.layers.0.weight é 😀'), 'model.layers.0.weight é 😀');
});

test('names, metadata and card fields with escape codes are printed escaped by inspect, validate, diff and lineage', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, [{ name: `w${HOSTILE}`, dtype: 'F32', shape: [2], data: f32([1, 2]) }], { note: HOSTILE });
    fs.writeFileSync(path.join(dir, 'README.md'), `---\nlicense: "${HOSTILE.replace(/[\x00-\x1f\x7f-\x9f\u202e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"\nbase_model: 42\n---\n`);
    const outputs = [
      await run(inspectCommand, [file]),
      await run(validateCommand, [file]),
      await run(diffCommand, [file, file, '--quick']),
      await run(lineageCommand, [dir, '--no-infer']),
    ];
    for (const { stdout, stderr } of outputs) {
      assert.equal(hasControl(stdout.replace(/\n/g, '')), false, stdout);
      assert.equal(hasControl(stderr.replace(/\n/g, '')), false, stderr);
    }
    assert.match(outputs[0].stdout, /w\\x1b\]0;pwned\\x07/);
    assert.match(outputs[0].stdout, /note=\\x1b\]0;pwned/);
    // JSON escapes them too (C0 by JSON itself, C1 and bidi marks by the writer) and stays exact.
    const json = (await run(inspectCommand, [file, '--json'])).stdout;
    assert.equal(hasControl(json.replace(/\n/g, '')), false);
    assert.equal((JSON.parse(json) as InspectReport).tensors[0].name, `w${HOSTILE}`);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 7 and 13. scan boundaries ----------------------------------------------------------------

test('links out of the scanned folder are skipped and reported; links into a cache blobs/ are followed', async () => {
  const dir = tempDir();
  try {
    const root = path.join(dir, 'root');
    const outside = path.join(dir, 'outside', 'secret-model');
    fs.mkdirSync(outside, { recursive: true });
    fs.mkdirSync(root);
    await writeSafetensors(path.join(outside, 'model.safetensors'), [{ name: 'w', dtype: 'F32', shape: [1], data: f32([1]) }]);
    fs.symlinkSync(outside, path.join(root, 'linked-folder'));
    fs.mkdirSync(path.join(root, 'loose'));
    fs.symlinkSync(path.join(outside, 'model.safetensors'), path.join(root, 'loose', 'model.safetensors'));
    // A local copy whose weights link into a Hugging Face cache's blobs/ (outside the root).
    const blob = path.join(dir, 'cache', 'models--org--name', 'blobs', 'abc123');
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    await writeSafetensors(blob, [{ name: 'v', dtype: 'F32', shape: [1], data: f32([2]) }]);
    fs.mkdirSync(path.join(root, 'local-copy'));
    fs.symlinkSync(blob, path.join(root, 'local-copy', 'model.safetensors'));

    const catalog = await scanCatalog([root]);
    assert.deepEqual(catalog.entries.map((e) => e.path), [path.join(root, 'local-copy', 'model.safetensors')]);
    const messages = catalog.problems.map((p) => `${path.relative(root, p.path)}: ${p.message}`);
    assert.ok(messages.some((m) => /^linked-folder: symbolic link to .*secret-model, outside the scanned folders; skipped/.test(m)), messages.join('\n'));
    assert.ok(messages.some((m) => /^loose[\\/]model\.safetensors: symbolic link to .*, outside the scanned folders; skipped/.test(m)), messages.join('\n'));
    // Scanning the outside folder as a root of its own includes it.
    const both = await scanCatalog([root, path.dirname(outside)]);
    assert.ok(both.entries.some((e) => e.path.startsWith(outside)));
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('a model below the folder depth limit is reported, not silently skipped', async () => {
  const dir = tempDir();
  try {
    const deep = path.join(dir, ...Array.from({ length: 14 }, (_, i) => `level${i}`));
    fs.mkdirSync(deep, { recursive: true });
    await writeSafetensors(path.join(deep, 'model.safetensors'), [{ name: 'w', dtype: 'F32', shape: [1], data: f32([1]) }]);
    const catalog = await scanCatalog([dir]);
    assert.equal(catalog.entries.length, 0);
    const problem = catalog.problems.find((p) => /folder depth limit \(12 levels below .*\) was reached; its 1 subfolder\(s\) were not scanned/.test(p.message));
    assert.ok(problem, JSON.stringify(catalog.problems));
    assert.equal(path.relative(dir, problem.path).split(path.sep).length, 12);
    assert.equal((await scanCatalog([dir], { maxDepth: 16 })).entries.length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 8. YAML tags ---------------------------------------------------------------------------

test('a YAML tag in a card or mergekit config is an invalid fact with a warning, not a value, and prints nothing', () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  try {
    const card = parseModelCard('---\nbase_model: !!python/object/apply:os.system ["echo hi"]\nlicense: mit\n---\n');
    assert.equal(card.facts?.baseModel, undefined);
    assert.equal(card.facts?.license, 'mit');
    assert.deepEqual(card.warnings, ['"base_model" carries the YAML tag !!python/object/apply:os.system, which Graft does not evaluate; remove the tag']);
    assert.throws(() => parseMergekitFacts('merge_method: ties\nbase_model: !!python/name:os.system\nmodels: [a]\n'), /"base_model" carries the YAML tag !!python\/name:os\.system, which Graft does not evaluate; the file was ignored/);
    const nonString = parseModelCard('---\nbase_model: {a: 1}\n---\n');
    assert.equal(nonString.facts?.baseModel, undefined);
    assert.match(nonString.warnings[0], /"base_model" should be a string or a list of strings/);
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.map((w) => w.name), []);
});

// ---- 9 and 10. diff of values that cannot be compared ---------------------------------------

test('diff: an all-NaN checkpoint is not comparable, and a C64 tensor is skipped with a note', async () => {
  const dir = tempDir();
  try {
    const healthy = path.join(dir, 'healthy.safetensors');
    const broken = path.join(dir, 'nan.safetensors');
    const c64 = new Uint8Array(16);
    await writeSafetensors(healthy, [{ name: 'w', dtype: 'F32', shape: [3], data: f32([1, 2, 3]) }, { name: 'z', dtype: 'C64', shape: [2], data: c64 }]);
    await writeSafetensors(broken, [{ name: 'w', dtype: 'F32', shape: [3], data: f32([NaN, Infinity, -Infinity]) }, { name: 'z', dtype: 'C64', shape: [2], data: c64 }]);
    const json = await run(diffCommand, [healthy, broken, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.tensors[0].not_comparable, 'every position holds NaN or infinity in a or b');
    assert.equal(report.summary.not_comparable, 1);
    assert.deepEqual(report.skipped, [{ name: 'z', reason: 'C64 values cannot be decoded' }]);
    const text = (await run(diffCommand, [healthy, broken])).stdout;
    assert.match(text, /No tensor could be compared: every position holds NaN or infinity/);
    assert.doesNotMatch(text, /cosine 1\.0/);
    assert.match(text, /warning: not comparable, only NaN or infinity in a or b \(1\): w/);
    assert.match(text, /note: z not compared: C64 values cannot be decoded/);
    assert.doesNotMatch(text, /Most changed/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 11 and 12. JSON always; errors by their code -------------------------------------------

test('with --json every outcome is one JSON object: usage, missing paths, I/O errors', async () => {
  const dir = tempDir();
  try {
    const missing = await cli(['inspect', path.join(dir, 'nope.safetensors'), '--json']);
    assert.equal(missing.code, 2);
    assert.deepEqual(JSON.parse(missing.stdout), { error: `"${path.join(dir, 'nope.safetensors')}" does not exist.`, kind: 'usage', exit: 2 });
    assert.equal(missing.stderr, '');
    const unknownOption = JSON.parse((await cli(['validate', '--json', '--frobnicate'])).stdout) as CliFailure;
    assert.equal(unknownOption.kind, 'usage');
    assert.match(unknownOption.error, /frobnicate/);
    assert.deepEqual(JSON.parse((await cli(['frobnicate', '--json'])).stdout), { error: 'unknown command "frobnicate".', kind: 'usage', exit: 2 });
    // A command's own failure (a folder without weights) is an object with its rule.
    fs.mkdirSync(path.join(dir, 'x.safetensors'));
    const noWeights = await cli(['inspect', path.join(dir, 'x.safetensors'), '--json']);
    assert.equal(noWeights.code, 1);
    assert.deepEqual({ ...(JSON.parse(noWeights.stdout) as CliFailure), error: '' }, { error: '', kind: 'error', rule: 'no-weights', exit: 1 });
    // (I/O errors, rule io, are checked with a FIFO above.)
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('stat errors are worded by their code: a path through a file, permission denied', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'file.txt');
    fs.writeFileSync(file, 'x');
    const through = await cli(['inspect', path.join(file, 'model.safetensors')]);
    assert.equal(through.code, 2);
    assert.match(through.stderr, /cannot open ".*model\.safetensors": a part of the path is not a folder\./);
    assert.equal(describeFsError(Object.assign(new Error('EACCES: x'), { code: 'EACCES' })), 'permission denied; check the permissions of the file and the folders above it');
    assert.equal(describeFsError(Object.assign(new Error('odd'), { code: 'EWEIRD' })), 'odd (EWEIRD)');
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('a path inside a folder the user cannot read says permission denied', { skip: isRoot ? 'running as root, which reads any folder' : process.platform === 'win32' ? 'no POSIX permissions' : false }, async () => {
  const dir = tempDir();
  const locked = path.join(dir, 'locked');
  try {
    fs.mkdirSync(locked);
    fs.writeFileSync(path.join(locked, 'model.safetensors'), '');
    fs.chmodSync(locked, 0o000);
    const result = await cli(['inspect', path.join(locked, 'model.safetensors')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /permission denied/);
    const catalog = await scanCatalog([dir]);
    assert.ok(catalog.problems.some((p) => /permission denied/.test(p.message)));
  } finally {
    fs.chmodSync(locked, 0o755);
    fs.rmSync(dir, { recursive: true });
  }
});

// ---- 14 and 15. exact dimensions; streamed JSON ---------------------------------------------

test('shape dimensions past 2^53 print exactly, in text and in JSON', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'big-dims.safetensors');
    const json = '{"z":{"dtype":"U8","shape":[18446744073709551615,0],"data_offsets":[0,0]}}';
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(json)]));
    assert.match((await run(inspectCommand, [file])).stdout, /\[18446744073709551615, 0\]/);
    assert.match((await run(inspectCommand, [file, '--json'])).stdout, /"shape": \[\n\s+18446744073709551615,\n\s+0\n/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('writeJson prints what JSON.stringify prints, in pieces, with bigints exact', () => {
  const value = { a: [1, 'two', null, undefined, { b: true, c: undefined, d: [] }], e: {}, f: 'x'.repeat(70_000), g: Infinity, h: -0.5e-7 };
  const pieces: string[] = [];
  writeJson((t) => pieces.push(t), value);
  assert.ok(pieces.length >= 2);
  assert.equal(pieces.join(''), JSON.stringify(value, null, 2) + '\n');
  const compact: string[] = [];
  writeJson((t) => compact.push(t), { n: 2n ** 64n - 1n, s: 'a\u202eb' }, 0);
  assert.equal(compact.join(''), '{"n":18446744073709551615,"s":"a\\u202eb"}\n');
});

// ---- minor --------------------------------------------------------------------------------

test('minor: truncation names the new length, provenance without tool', async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'm.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [1024], data: new Uint8Array(4096) }]);
    const layout = await openCheckpoint(file);
    fs.truncateSync(file, 100);
    await assert.rejects(readElements(layout.tensors[0], 0, 1024), /is now 100 bytes, but \d+ bytes were expected/);
    assert.throws(() => parseProvenance('{"method": "ties"}'), /has no "tool" field; expected "graft"/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
