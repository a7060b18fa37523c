// `graft validate` and `graft inspect`, run in-process with a real worker pool.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { inspectCommand, type InspectReport } from '../../src/cli/commands/inspect';
import { validateCommand, type ValidateReport } from '../../src/cli/commands/validate';
import { createContext, UsageError, type CliCommand } from '../../src/cli/context';
import { fixedNoNegativeZero, formatBytes, formatCount, formatParameters, formatShape } from '../../src/core/format';
import { fixture, tempDir, workerScript } from './helpers';

async function run(command: CliCommand, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const ctx = createContext({ stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, new AbortController().signal, workerScript);
  try {
    const code = await command.run(args, ctx);
    return { code, stdout, stderr };
  } finally {
    await ctx.dispose();
  }
}

type Verdict = { accepted: true; keys: string[] } | { accepted: false; error: string };

test('graft validate --json agrees with VERDICTS.json on every formats/ and formats/bad/ file', async () => {
  const verdicts = JSON.parse(fs.readFileSync(fixture('formats', 'bad', 'VERDICTS.json'), 'utf8')) as Record<string, Verdict>;
  for (const [name, verdict] of Object.entries(verdicts)) {
    const { code, stdout } = await run(validateCommand, [fixture('formats', 'bad', `${name}.safetensors`), '--json']);
    const report = JSON.parse(stdout) as ValidateReport;
    assert.equal(report.valid, verdict.accepted, name);
    assert.equal(code, verdict.accepted ? 0 : 1, `${name}: exit code`);
    if (verdict.accepted) {
      assert.equal(report.error, null);
      assert.equal(report.tensors, verdict.keys.length, name);
    } else if (verdict.error.length >= 300) {
      assert.ok(report.error?.startsWith(verdict.error), name); // VERDICTS.json cut long messages
    } else {
      assert.equal(report.error, verdict.error, name);
      assert.ok(report.rule);
    }
  }
  const valid = fs.readdirSync(fixture('formats')).filter((f) => f.endsWith('.safetensors'));
  assert.ok(valid.length >= 20);
  for (const f of valid) {
    const { code, stdout } = await run(validateCommand, ['--json', fixture('formats', f)]);
    assert.equal(code, 0, f);
    assert.deepEqual(Object.keys(JSON.parse(stdout)).sort(), ['error', 'file', 'rule', 'tensors', 'valid']);
    assert.equal(JSON.parse(stdout).valid, true, f);
  }
});

test('graft validate checks folders and indexes of sharded checkpoints', async () => {
  const folder = fixture('zoo', 'workspace', 'models', 'tiny-llama-code');
  const byFolder = await run(validateCommand, [folder, '--json']);
  assert.equal(byFolder.code, 0);
  assert.deepEqual(JSON.parse(byFolder.stdout), { valid: true, error: null, rule: null, file: null, tensors: 57 });
  const byIndex = await run(validateCommand, [path.join(folder, 'model.safetensors.index.json')]);
  assert.equal(byIndex.code, 0);
  assert.match(byIndex.stdout, /^valid: .*\(57 tensors, 324K parameters, 649 kB, 4 files\)\n$/);

  const dir = tempDir();
  try {
    for (const f of fs.readdirSync(folder)) fs.copyFileSync(path.join(folder, f), path.join(dir, f));
    fs.truncateSync(path.join(dir, 'model-00002-of-00004.safetensors'), 100);
    const broken = await run(validateCommand, [dir, '--json']);
    assert.equal(broken.code, 1);
    const report = JSON.parse(broken.stdout) as ValidateReport;
    assert.equal(report.rule, 'invalid-header-length');
    assert.equal(report.file, path.join(dir, 'model-00002-of-00004.safetensors'));
    const human = await run(validateCommand, [dir]);
    assert.match(human.stdout, /^invalid: .*\(in .*model-00002-of-00004\.safetensors\)\n {2}SafetensorError: Error while deserializing header: invalid header length\n$/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('graft validate and inspect: wrong arguments are usage errors', async () => {
  for (const command of [validateCommand, inspectCommand]) {
    await assert.rejects(run(command, []), (e: Error) => e instanceof UsageError && /missing the file or folder/.test(e.message));
    await assert.rejects(run(command, ['a', 'b']), (e: Error) => e instanceof UsageError && /expected one/.test(e.message));
    await assert.rejects(run(command, ['--bogus', fixture('formats', 'one_f32.safetensors')]), UsageError);
    await assert.rejects(run(command, [fixture('formats', 'does-not-exist.safetensors')]), (e: Error) => e instanceof UsageError && /does not exist/.test(e.message));
  }
});

test('graft inspect names the file it cannot open, and says what it reads when given another kind of file', async () => {
  await assert.rejects(run(inspectCommand, [fixture('formats', 'bad', 'duplicate_key.safetensors')]), (e: Error) => /^cannot open ".*duplicate_key\.safetensors": Error while deserializing header: invalid offset for tensor `a`$/.test(e.message));
  await assert.rejects(run(inspectCommand, [fixture('formats', 'all_dtypes.expected.json')]), (e: Error) => /^cannot open ".*all_dtypes\.expected\.json": /.test(e.message) && !/does not look like/.test(e.message));
  const dir = tempDir();
  const notes = path.join(dir, 'notes.txt');
  try {
    fs.writeFileSync(notes, 'not a checkpoint at all');
    await assert.rejects(run(inspectCommand, [notes]), (e: Error) => e.message === `cannot open "${notes}": Error while deserializing header: header too large. It does not look like a safetensors file: Graft reads .safetensors files, *.safetensors.index.json sets and folders holding them.`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | string | boolean)[];
}

test('graft inspect --json --stats on all_dtypes reports every dtype, shape and the right min/max', async () => {
  const { code, stdout } = await run(inspectCommand, [fixture('formats', 'all_dtypes.safetensors'), '--json', '--stats']);
  assert.equal(code, 0);
  const report = JSON.parse(stdout) as InspectReport;
  const expected = JSON.parse(fs.readFileSync(fixture('formats', 'all_dtypes.expected.json'), 'utf8')) as Record<string, Expected>;
  const { __metadata__: metadata, ...tensors } = expected;
  assert.deepEqual(report.metadata, metadata);
  assert.equal(report.format, 'safetensors');
  assert.deepEqual(report.tensors.map((t) => t.name).sort(), Object.keys(tensors).sort());
  let parameters = 0;
  for (const t of report.tensors) {
    const want = tensors[t.name];
    assert.equal(t.dtype, want.dtype, t.name);
    assert.deepEqual(t.shape, want.shape, t.name);
    assert.equal(t.file, fixture('formats', 'all_dtypes.safetensors'));
    const numbers = want.values.map((v) => (typeof v === 'boolean' ? Number(v) : v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Number(v)));
    const finite = numbers.filter(Number.isFinite);
    const s = t.stats!;
    assert.ok(s, t.name);
    assert.equal(s.min, finite.length ? Math.min(...finite) : null, `${t.name} min`);
    assert.equal(s.max, finite.length ? Math.max(...finite) : null, `${t.name} max`);
    assert.equal(s.nan, numbers.filter(Number.isNaN).length, `${t.name} nan`);
    assert.equal(s.inf, numbers.filter((v) => Math.abs(v) === Infinity).length, `${t.name} inf`);
    assert.equal(s.zeros, finite.filter((v) => v === 0).length, `${t.name} zeros`);
    parameters += numbers.length;
  }
  assert.equal(report.parameters, parameters);
  assert.equal(report.bytes, fs.statSync(fixture('formats', 'all_dtypes.safetensors')).size - 8 - 1248);
});

test('graft inspect --json on a sharded folder; human output is an aligned table with a summary', async () => {
  const folder = fixture('zoo', 'workspace', 'models', 'tiny-llama-code');
  const json = JSON.parse((await run(inspectCommand, ['--json', folder])).stdout) as InspectReport;
  const index = JSON.parse(fs.readFileSync(path.join(folder, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(json.format, 'safetensors-sharded');
  assert.equal(json.files.length, 4);
  assert.equal(json.parameters, index.metadata.total_parameters);
  assert.equal(json.bytes, index.metadata.total_size);
  assert.ok(json.tensors.every((t) => t.stats === undefined), 'no stats unless asked');

  const { code, stdout } = await run(inspectCommand, [fixture('formats', 'all_dtypes.safetensors'), '--stats']);
  assert.equal(code, 0);
  const lines = stdout.split('\n');
  const header = lines.find((l) => l.startsWith('NAME'))!;
  assert.match(header, /^NAME\s+DTYPE\s+SHAPE\s+PARAMS\s+MIN\s+MAX\s+MEAN\s+STD\s+ZEROS\s+NAN\s+INF$/);
  const matrix = lines.find((l) => l.startsWith('matrix_bf16'))!;
  assert.equal(matrix.indexOf('BF16'), header.indexOf('DTYPE'), 'columns line up');
  assert.match(matrix, /\[17, 33\]\s+561\s+-3\.219\s+3\.141/);
  assert.match(stdout, /^19 tensors, 631 parameters \(631\), 1\.3 kB$/m);
  assert.match(stdout, /^dtypes: BF16 2 tensors \(569 params\), F32 3 tensors \(9 params\)/m);
  assert.match(stdout, /^metadata: format=pt, purpose=dtype coverage$/m);
  assert.match(lines.find((l) => l.startsWith('i64'))!, /-9\.223e\+18\s+9\.223e\+18/);
});

test('formatting helpers', () => {
  assert.deepEqual([0, 950, 1000, 1234, 12_345, 99_949, 999_949, 1_234_567, 124_000_000, 7_000_000_000, 1.1e12].map(formatParameters), [
    '0', '950', '1K', '1.2K', '12.3K', '99.9K', '1M', '1.2M', '124M', '7B', '1.1T',
  ]);
  assert.deepEqual([0, 512, 1000, 2_400_000, 15_000_000_000, 123_456_789].map(formatBytes), ['0 B', '512 B', '1 kB', '2.4 MB', '15 GB', '123 MB']);
  assert.equal(formatShape([17, 33]), '[17, 33]');
  assert.equal(formatShape([]), '[]');
  assert.equal(formatCount(1234567), '1,234,567');
  assert.deepEqual([-0.0004, -0, 0.0004, -0.004, 0.12].map((x) => fixedNoNegativeZero(x, 2)), ['0.00', '0.00', '0.00', '0.00', '0.12']);
  assert.equal(fixedNoNegativeZero(-0.006, 2), '-0.01');
});
