// The fast paths of header parsing against the slow computations they stand in for: the
// common-form JSON scanner against the exact serde_json-like parser, the number arithmetic of
// the validation against BigInt, Node's UTF-8 check against the byte loop. Both must give the
// same header or the same error on every fuzz case of the normal run, every recorded reference
// case, every fixture, and hand-written cases at the edges of the common form.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { planSafetensors } from '../../src/core/safetensors';
import { describeUtf8Error, utf8Error } from '../../src/core/safetensors/header';
import { parseCommonHeaderJson, parseHeaderJsonExact } from '../../src/core/safetensors/header-json';
import { assemble, compareWithExact, fuzzCase, Rng, seedFiles, UNIT_FUZZ_RUN } from './fuzz-mutations';
import { fixture } from './helpers';
import referenceCases from './safetensors-reference-cases.json';

const encoder = new TextEncoder();

/** A file of `header` (JSON text) and `dataBytes` zero bytes of tensor data. */
function fileOf(header: string, dataBytes = 0): Uint8Array {
  return assemble(encoder.encode(header), new Uint8Array(dataBytes));
}

const A = '"dtype":"F32","shape":[2],"data_offsets":[0,8]';

/** [label, header, data bytes, takes the fast path, accepted] */
const EDGE_CASES: [string, string, number, boolean, boolean][] = [
  // In the common form.
  ['plain tensor', `{"a":{${A}}}`, 8, true, true],
  ['no tensors', '{}', 0, true, true],
  ['whitespace everywhere, fields in another order', ` \n{ "a" : { "shape" : [ 2 ] , "data_offsets" : [ 0 , 8 ] , "dtype" : "F32" } }\t\r\n `, 8, true, true],
  ['metadata null', `{"__metadata__":null,"a":{${A}}}`, 8, true, true],
  ['metadata empty, last', `{"a":{${A}},"__metadata__":{}}`, 8, true, true],
  ['metadata value with escapes', `{"__metadata__":{"k":"a\\nb\\u00e9\\ud83d\\ude00\\/\\"","format":"pt"},"a":{${A}}}`, 8, true, true],
  ['non-ASCII tensor name', `{"\u00e9\u{1F600}":{${A}}}`, 8, true, true],
  ['U+FEFF starting a tensor name', `{"\uFEFFa":{${A}}}`, 8, true, true],
  ['15-digit dimension of an empty tensor', '{"z":{"dtype":"F32","shape":[999999999999999,0],"data_offsets":[0,0]}}', 0, true, true],
  ['tensors out of offset order', `{"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9]},"a":{${A}}}`, 9, true, true],
  ['equal begins, sorted by end', '{"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}', 4, true, true],
  ['equal offsets keep header order', '{"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"I8","shape":[0],"data_offsets":[0,0]}}', 0, true, true],
  ['hole between tensors (rejected after the JSON)', `{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2, true, false],
  ['size mismatch (rejected after the JSON)', `{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8, true, false],
  ['unknown dtype name of a known length', `{"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}}`, 8, false, false],
  // Outside it: the exact parser decides.
  ['byte-order mark before the document', `\uFEFF{"a":{${A}}}`, 8, false, false],
  ['16-digit dimension', '{"z":{"dtype":"F32","shape":[1000000000000000,0],"data_offsets":[0,0]}}', 0, false, true],
  ['escaped field name', `{"a":{"dt\\u0079pe":"F32","shape":[2],"data_offsets":[0,8]}}`, 8, false, true],
  ['escaped dtype', `{"a":{"dtype":"F\\u0033\\u0032","shape":[2],"data_offsets":[0,8]}}`, 8, false, true],
  ['escaped tensor name', `{"a\\"b":{${A}}}`, 8, false, true],
  ['repeated tensor name', `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{${A}}}`, 8, false, true],
  ['repeated metadata key', `{"__metadata__":{"k":"1","k":"2"},"a":{${A}}}`, 8, false, true],
  ['repeated __metadata__', `{"__metadata__":{},"__metadata__":{},"a":{${A}}}`, 8, false, false],
  ['repeated field', `{"a":{${A},"dtype":"F32"}}`, 8, false, false],
  ['unknown field', `{"a":{${A},"extra":[1,{"x":null}]}}`, 8, false, true],
  ['missing field', '{"a":{"dtype":"F32","shape":[0]}}', 0, false, false],
  ['tensor as a sequence', '{"a":["F32",[2],[0,8]]}', 8, false, true],
  ['float dimension', '{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', 8, false, false],
  ['exponent dimension', '{"a":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}', 8, false, false],
  ['negative zero dimension', '{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}', 0, false, false],
  ['leading zero', '{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}', 8, false, false],
  ['three offsets', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}', 8, false, false],
  ['lone surrogate in metadata', `{"__metadata__":{"k":"\\ud800"},"a":{${A}}}`, 8, false, false],
  ['control character in metadata', `{"__metadata__":{"k":"a\u0001"},"a":{${A}}}`, 8, false, false],
  ['metadata value not a string', `{"__metadata__":{"k":1},"a":{${A}}}`, 8, false, false],
  ['integer past f64', `{"a":{"dtype":"F32","shape":[${'1'.repeat(400)}],"data_offsets":[0,0]}}`, 0, false, false],
  ['trailing comma', `{"a":{${A}},}`, 8, false, false],
  ['trailing characters', `{"a":{${A}}} x`, 8, false, false],
  ['unclosed document', `{"a":{${A}}`, 8, false, false],
  ['deep nesting in an extra field', `{"a":{${A},"x":${'['.repeat(130)}${']'.repeat(130)}}}`, 8, false, false],
  // Sizes around 2^53, where the validation leaves numbers for BigInt.
  ['2^53 bytes of F64 (the bit count passes 2^53)', '{"a":{"dtype":"F64","shape":[1125899906842624],"data_offsets":[0,9007199254740992]}}', 0, false, false],
  ['2^53 elements (the element count passes 2^53)', '{"a":{"dtype":"U8","shape":[67108864,134217728],"data_offsets":[0,9007199254740992]}}', 0, false, false],
  ['2^53 - 1 bytes', '{"a":{"dtype":"U8","shape":[9007199254740991],"data_offsets":[0,9007199254740991]}}', 0, false, false],
  ['dimensions overflowing before a zero', '{"a":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', 0, true, false],
  ['zero before dimensions that would overflow', '{"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}', 0, true, true],
  ['dimension past 2^53 in an empty tensor', '{"a":{"dtype":"U8","shape":[9007199254740993,0],"data_offsets":[0,0]}}', 0, false, true],
  ['bit count past u64', '{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}', 0, false, false],
  ['F4 with an odd element count', '{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', 2, true, false],
  ['offsets at u64::MAX', '{"a":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}}', 0, false, false],
  ['a small tensor after 2^60 bytes', '{"a":{"dtype":"U8","shape":[1152921504606846976],"data_offsets":[0,1152921504606846976]},"b":{"dtype":"U8","shape":[4],"data_offsets":[1152921504606846976,1152921504606846980]}}', 0, false, false],
  ['end offset past 2^53 after a tensor', `{"a":{${A}},"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9007199254740993]}}`, 9, false, false],
];

test('edge cases of the common form: the fast path takes or declines each as intended, with the exact result', () => {
  for (const [label, header, dataBytes, fast, accepted] of EDGE_CASES) {
    let outcome;
    try {
      outcome = compareWithExact(fileOf(header, dataBytes));
    } catch (error) {
      assert.fail(`${label}: ${error instanceof Error ? error.message : String(error)}`);
    }
    assert.equal(outcome.fastPath, fast, `${label}: fast path`);
    assert.equal(outcome.accepted, accepted, `${label}: accepted`);
  }
  // What the fast path returns, spelled out for two of them.
  const names = (header: string) => parseCommonHeaderJson(encoder.encode(header))?.tensors.map((t) => t.name);
  assert.deepEqual(names(`{"\uFEFFa":{${A}}}`), ['\uFEFFa']);
  const metadata = parseCommonHeaderJson(encoder.encode(`{"__metadata__":{"k":"a\\nb\\u00e9\\ud83d\\ude00"}}`))?.metadata;
  assert.deepEqual(metadata, new Map([['k', 'a\nb\u00e9\u{1F600}']]));
});

test(`differential: fast and exact agree on all ${UNIT_FUZZ_RUN.cases} fuzz cases of the normal run`, (t) => {
  const seeds = seedFiles();
  const rng = new Rng(UNIT_FUZZ_RUN.seed);
  const counts = { withHeader: 0, fastAccepted: 0, fastRejectedLater: 0, declinedAccepted: 0, declinedRejected: 0 };
  for (let i = 0; i < UNIT_FUZZ_RUN.cases; i++) {
    const file = fuzzCase(i, seeds, rng);
    let outcome;
    try {
      outcome = compareWithExact(file);
    } catch (error) {
      assert.fail(`case ${i} (seed ${UNIT_FUZZ_RUN.seed}): ${error instanceof Error ? error.message : String(error)}\nfile (base64): ${Buffer.from(file).toString('base64')}`);
    }
    if (!outcome.hasHeader) continue;
    counts.withHeader++;
    if (outcome.fastPath) counts[outcome.accepted ? 'fastAccepted' : 'fastRejectedLater']++;
    else counts[outcome.accepted ? 'declinedAccepted' : 'declinedRejected']++;
  }
  t.diagnostic(JSON.stringify(counts));
  if (UNIT_FUZZ_RUN.cases >= 2000) {
    // The comparison means something only if both paths ran often, on both verdicts.
    assert.ok(counts.fastAccepted + counts.fastRejectedLater > counts.withHeader / 10, `fast path taken too rarely: ${JSON.stringify(counts)}`);
    for (const [key, count] of Object.entries(counts)) assert.ok(count >= 20, `too few cases of ${key}: ${JSON.stringify(counts)}`);
  }
});

test('differential: the 70 recorded reference cases and every fixture file', () => {
  assert.equal(referenceCases.length, 70);
  for (const c of referenceCases) {
    try {
      compareWithExact(Buffer.from(c.file, 'base64'));
    } catch (error) {
      assert.fail(`${c.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  for (const dir of [fixture('formats'), fixture('formats', 'bad')]) {
    for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
      let outcome;
      try {
        outcome = compareWithExact(new Uint8Array(fs.readFileSync(path.join(dir, name))));
      } catch (error) {
        assert.fail(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
      // Files written by the safetensors library itself are in the common form.
      if (dir === fixture('formats')) assert.ok(outcome.fastPath, `${name} should take the fast path`);
    }
  }
});

test('a 10,000-tensor header takes the fast path and equals the exact parse', () => {
  const specs = Array.from({ length: 10_000 }, (_, i) => ({
    name: `model.layers.${Math.floor(i / 34)}.mlp.experts.${i % 34}.weight`,
    dtype: i % 3 === 0 ? ('F32' as const) : ('BF16' as const),
    shape: [16, 1 + (i % 7)],
  }));
  const plan = planSafetensors(specs, { format: 'pt', note: 'escaped "quotes"\nand lines' });
  const json = plan.headerBytes.subarray(8);
  const fast = parseCommonHeaderJson(json);
  assert.ok(fast, 'declined a header written by our own planner');
  assert.equal(fast.tensors.length, 10_000);
  assert.deepEqual(fast, parseHeaderJsonExact(json));
  const outcome = compareWithExact(padTo(plan.headerBytes, plan.fileSize));
  assert.ok(outcome.fastPath && outcome.accepted);
});

test("Node's UTF-8 check agrees with the byte loop on every kind of ill-formed sequence", () => {
  const sequences = [
    [], [0x41], [0xc2, 0x80], [0xdf, 0xbf], [0xe0, 0xa0, 0x80], [0xef, 0xbf, 0xbf], [0xf0, 0x90, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf],
    [0xef, 0xbb, 0xbf], // BOM
    [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xc2], [0xc2, 0x41], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80],
    [0xed, 0xbf, 0xbf], [0xed, 0x9f, 0xbf], [0xe1, 0x80], [0xe1, 0x80, 0x41], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xf8], [0xfe], [0xff], [0xf0, 0x90, 0x80], [0xf0, 0x90, 0x80, 0x41],
  ];
  for (const sequence of sequences) {
    for (const bytes of [sequence, [0x7b, ...sequence, 0x7d], [...sequence, ...sequence]]) {
      const input = Uint8Array.from(bytes);
      assert.equal(utf8Error(input), describeUtf8Error(input), bytes.map((b) => b.toString(16)).join(' '));
    }
  }
});

function padTo(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(bytes);
  return out;
}
