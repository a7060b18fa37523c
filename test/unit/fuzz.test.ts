// Fuzzing the reader with mutated files: every case must end in a valid header or a
// SafetensorsError (never another exception, never a hang), and the reader must never ask for
// more bytes than the file holds. GRAFT_FUZZ_CASES / GRAFT_FUZZ_SEED change the run; the long
// run is `bench/fuzz-long.ts`.
import assert from 'node:assert/strict';
import test from 'node:test';
import { HEADER_ERROR_PREFIX, type HeaderRule } from '../../src/core/safetensors';
import { fuzzCase, Rng, runCase, seedFiles, UNIT_FUZZ_RUN } from './fuzz-mutations';

const { cases: CASES, seed: SEED } = UNIT_FUZZ_RUN;

const HEADER_RULES = new Set<HeaderRule>([
  'header-too-small', 'header-too-large', 'invalid-header-length', 'invalid-utf8', 'invalid-json',
  'invalid-offset', 'overflow', 'misaligned-subbyte', 'invalid-tensor-info', 'incomplete-buffer',
]);

test(`fuzz: ${CASES} mutated files end in a header or a SafetensorsError, within the file's bytes`, async (t) => {
  const seeds = seedFiles();
  const rng = new Rng(SEED);
  const seen = new Map<string, number>();
  let accepted = 0;
  const started = Date.now();
  for (let i = 0; i < CASES; i++) {
    const file = fuzzCase(i, seeds, rng);
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
