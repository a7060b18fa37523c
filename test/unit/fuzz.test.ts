// Fuzzing the reader with mutated files: every case must end in a valid header or a
// SafetensorsError (never another exception, never a hang), and the reader must never ask for
// more bytes than the file holds. GRAFT_FUZZ_CASES / GRAFT_FUZZ_SEED change the run; the long
// run is `bench/fuzz-long.ts`.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { HEADER_ERROR_PREFIX, planSafetensors, type HeaderRule } from '../../src/core/safetensors';
import { mutate, mutateHeader, Rng, runCase } from './fuzz-mutations';
import { fixture } from './helpers';

const CASES = Number(process.env.GRAFT_FUZZ_CASES ?? 10000);
const SEED = Number(process.env.GRAFT_FUZZ_SEED ?? 20240601);

const HEADER_RULES = new Set<HeaderRule>([
  'header-too-small', 'header-too-large', 'invalid-header-length', 'invalid-utf8', 'invalid-json',
  'invalid-offset', 'overflow', 'misaligned-subbyte', 'invalid-tensor-info', 'incomplete-buffer',
]);

/** Valid files to mutate: the reference fixtures plus a few written by our planner. */
function seedFiles(): Uint8Array[] {
  const dirs = [fixture('formats'), fixture('formats', 'bad')];
  const files = dirs.flatMap((dir) => fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f)))));
  const planned = planSafetensors(
    [
      { name: 'q', dtype: 'F4', shape: [4, 2] },
      { name: 'six', dtype: 'F6_E3M2', shape: [8] },
      { name: 'c', dtype: 'C64', shape: [1] },
      { name: 'fnuz', dtype: 'F8_E4M3FNUZ', shape: [3] },
      { name: 'z', dtype: 'I64', shape: [0] },
    ],
    { format: 'pt', config: '{"nested": "json"}' },
  );
  const synthetic = new Uint8Array(planned.fileSize);
  synthetic.set(planned.headerBytes);
  for (let i = planned.headerBytes.length; i < synthetic.length; i++) synthetic[i] = (i * 37) & 0xff;
  files.push(synthetic);
  return files;
}

test(`fuzz: ${CASES} mutated files end in a header or a SafetensorsError, within the file's bytes`, async (t) => {
  const seeds = seedFiles();
  const rng = new Rng(SEED);
  const seen = new Map<string, number>();
  let accepted = 0;
  const started = Date.now();
  for (let i = 0; i < CASES; i++) {
    const file = (i % 2 === 0 ? mutate : mutateHeader)(rng.pick(seeds), rng);
    let outcome;
    try {
      outcome = await runCase(file);
    } catch (error) {
      assert.fail(`case ${i} (seed ${SEED}) threw ${error instanceof Error ? error.stack : String(error)}\nfile (base64): ${Buffer.from(file).toString('base64')}`);
    }
    // Prefix, header and tensor ranges are disjoint: together they never exceed the file.
    assert.ok(outcome.bytesRequested <= file.length, `case ${i}: read ${outcome.bytesRequested} bytes of a ${file.length}-byte file`);
    assert.ok(outcome.largestRead <= file.length, `case ${i}: a ${outcome.largestRead}-byte read buffer for a ${file.length}-byte file`);
    if (outcome.accepted) {
      accepted++;
      seen.set('accepted', (seen.get('accepted') ?? 0) + 1);
      const header = outcome.header!;
      assert.equal(header.tensors.reduce((end, t) => (assert.equal(t.begin, end), t.end), header.dataStart), file.length, `case ${i}: coverage`);
    } else {
      const error = outcome.error!;
      assert.ok(HEADER_RULES.has(error.rule as HeaderRule), `case ${i}: rule ${error.rule}`);
      assert.ok(error.message.startsWith(HEADER_ERROR_PREFIX), `case ${i}: ${error.message}`);
      assert.equal(error.name, 'SafetensorError');
      seen.set(error.rule, (seen.get(error.rule) ?? 0) + 1);
    }
  }
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries([...seen].sort((a, b) => b[1] - a[1])))}`);
  // The mutations must reach every rule, not only the first checks.
  for (const rule of HEADER_RULES) assert.ok((seen.get(rule) ?? 0) > 0 || CASES < 2000, `no case hit ${rule}: ${JSON.stringify([...seen])}`);
  assert.ok(accepted > 0 || CASES < 2000, 'some mutations stay valid');
  assert.ok(Date.now() - started < 60_000, 'the fuzz run takes seconds, not minutes');
});
