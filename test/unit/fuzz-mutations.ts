// Deterministic mutations of valid safetensors files for the fuzz tests (test/unit/fuzz.test.ts)
// and the long fuzz run (bench/fuzz-long.ts): byte flips, truncations, length-field lies, and
// edits of the header JSON that aim at each validation rule.

import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  canDecode,
  checkHeaderLength,
  dtypeBits,
  parseHeader,
  planSafetensors,
  readElements,
  readHeaderFrom,
  SafetensorsError,
  type HeaderRule,
  type SafetensorsHeader,
  type TensorInfo,
} from '../../src/core/safetensors';
import { describeUtf8Error } from '../../src/core/safetensors/header';
import { HeaderJsonError, parseCommonHeaderJson, parseHeaderJson, parseHeaderJsonExact, type RawHeader } from '../../src/core/safetensors/header-json';
import { fixture } from './helpers';

/** xorshift32: tiny, seeded, identical on every machine. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

export function headerLengthOf(file: Uint8Array): number {
  return file.length >= 8 ? Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true)) : 0;
}

/** A file made of `headerText` (length prefix fixed up) and `data`. */
export function assemble(header: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

function split(file: Uint8Array): { header: Uint8Array; data: Uint8Array } | null {
  const n = headerLengthOf(file);
  if (file.length < 8 || 8 + n > file.length) return null;
  return { header: file.subarray(8, 8 + n), data: file.subarray(8 + n) };
}

const DTYPE_NAMES = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ',
  'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
];

const ODD_VALUES = [
  '-1', '-0', '0.0', '1.5', '1e3', '1E400', '-9223372036854775808', '18446744073709551615', '18446744073709551616',
  '4294967296', '9007199254740993', '"7"', 'null', 'true', 'false', '[]', '{}', '[1]', '[0,0,0]', '{"a":1}', '[[1]]',
  '"F32"', '{"F32":null}', '{"F32":1}', '01', '-', '1.', '.5', '1e', '1e+', 'nul', 'tru', '"\\u00e9"', '"\\ud800"',
  '"\\ud83d\\ude00"', '"\\x"', '"a\u0001"', '1099511627776',
  // Around the fast path's limit of 15 plain digits, and digits run into other characters.
  '999999999999999', '1000000000000000', '9007199254740991', '00', '1a', '1 ', ' 1', '1-',
];

/** Textual edits of the header JSON: each keeps it mostly well-formed so deep rules are reached. */
function editJson(text: string, rng: Rng): string {
  const ops: ((t: string) => string)[] = [
    // Replace one number with an odd value.
    (t) => replaceNth(t, /-?\d+(\.\d+)?([eE][+-]?\d+)?/g, rng, () => rng.pick(ODD_VALUES)),
    // Replace one number with a large one.
    (t) => replaceNth(t, /\d+/g, rng, () => rng.pick(['4294967295', '1099511627776', '281474976710656', '9223372036854775807', '18446744073709551615', String(rng.int(1 << 20))])),
    // Nudge a number by one.
    (t) => replaceNth(t, /\d+/g, rng, (m) => String(Math.max(0, Number(m) + rng.pick([-1, 1, 2, -8, 8])))),
    // Swap a dtype for another (or an unknown one).
    (t) => replaceNth(t, /"dtype":\s*"[^"]*"/g, rng, () => `"dtype":"${rng.chance(0.8) ? rng.pick(DTYPE_NAMES) : rng.pick(['F17', 'f32', '', 'FLOAT', 'F8_E4M3FN'])}"`),
    // Swap the two data offsets of a tensor.
    (t) => replaceNth(t, /"data_offsets":\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]/g, rng, (m) => {
      const [, a, b] = /\[\s*(\d+)\s*,\s*(\d+)\s*\]/.exec(m)!;
      return `"data_offsets":[${b},${a}]`;
    }),
    // Delete a field.
    (t) => replaceNth(t, /"(dtype|shape|data_offsets)":\s*("[^"]*"|\[[^\]]*\])\s*,?/g, rng, () => ''),
    // Duplicate a tensor entry (same key twice).
    (t) => {
      const m = /"([^"]+)":\s*\{[^{}]*\}/g;
      const all = [...t.matchAll(m)].filter((x) => x[1] !== '__metadata__');
      if (all.length === 0) return t;
      const hit = rng.pick(all);
      return t.slice(0, hit.index! + hit[0].length) + ',' + hit[0] + t.slice(hit.index! + hit[0].length);
    },
    // Duplicate a field inside an entry.
    (t) => replaceNth(t, /"(dtype|shape)":\s*("[^"]*"|\[[^\]]*\])/g, rng, (m) => `${m},${m}`),
    // Give a shape a huge dimension.
    (t) => replaceNth(t, /"shape":\s*\[/g, rng, () => `"shape":[${rng.pick(['1099511627776', '4611686018427387904', '0', '18446744073709551615'])},`),
    // Put a non-string in the metadata, or a metadata that is not an object.
    (t) => t.replace('"__metadata__":{', `"__metadata__":{"x":${rng.pick(['1', 'null', '[]', '{}', 'true', '"ok"', '1.5'])},`),
    (t) => t.replace(/^\s*\{/, `{"__metadata__":${rng.pick(['null', '[]', '1', '"s"', '{}', '{"a":"b"}', '{"a":"b","a":"c"}'])},`),
    // Insert whitespace, a newline or a stray character somewhere.
    (t) => insertAt(t, rng.int(t.length + 1), rng.pick([' ', '\n', '\t', '\r\n', ',', ':', '}', ']', '[', '{', '"', '\\', 'x', '\u00e9'])),
    // Delete one character.
    (t) => {
      const i = rng.int(t.length);
      return t.slice(0, i) + t.slice(i + 1);
    },
    // Replace the whole document with a non-object.
    (t) => rng.pick(['[1,2,3]', '"str"', '42', 'null', 'true', '', ' ', '{}', '{} {}', '{"a":1}', '{"a":[]}', '{"a":{}}', '[]', t.trim() + ' x']),
    // Nest deeply (recursion limit is 128).
    (t) => {
      const depth = rng.pick([120, 126, 127, 128, 129, 200]);
      return t.replace(/^\s*\{/, `{"deep":${'['.repeat(depth)}${']'.repeat(depth)},`);
    },
    // Unknown extra field in a tensor entry.
    (t) => replaceNth(t, /"dtype":/g, rng, (m) => `"extra":{"k":[1,2,{"z":null}]},${m}`),
    // A tensor written as a sequence instead of an object.
    (t) => replaceNth(t, /\{"dtype":\s*("[^"]*"),\s*"shape":\s*(\[[^\]]*\]),\s*"data_offsets":\s*(\[[^\]]*\])\s*\}/g, rng, (m) => {
      const r = /\{"dtype":\s*("[^"]*"),\s*"shape":\s*(\[[^\]]*\]),\s*"data_offsets":\s*(\[[^\]]*\])\s*\}/.exec(m)!;
      return `[${r[1]},${r[2]},${r[3]}]`;
    }),
    // Escape a character of a key.
    (t) => t.replace(/"dtype"/, '"dt\\u0079pe"'),
    // A byte-order mark before the document, or a U+FEFF / non-ASCII character starting a key.
    (t) => '\uFEFF' + t,
    (t) => replaceNth(t, /"(?=[^"]*":)/g, rng, (m) => m + rng.pick(['\uFEFF', '\u00e9', '\u{1F600}', ' '])),
    // Metadata values with escapes, valid or not (the fast path hands those to the exact reader).
    (t) => t.replace('"__metadata__":{', `"__metadata__":{"esc":"${rng.pick(['\\n', '\\u00e9', '\\ud83d\\ude00', '\\ud800', '\\udc00x', '\\"', '\\/', '\\u12', '\\q', '\\u0000'])}",`),
    // A field after the three known ones, or a tensor object left empty.
    (t) => replaceNth(t, /\]\s*\}/g, rng, () => `]${rng.pick([',"extra":1', ',"dtype":"F32"', ',', ' ,"shape":[]', ''])}}`),
    (t) => replaceNth(t, /:\s*\{"dtype"/g, rng, () => ':{},"zz":{"dtype"'),
  ];
  return rng.pick(ops)(text);
}

function insertAt(text: string, at: number, what: string): string {
  return text.slice(0, at) + what + text.slice(at);
}

function replaceNth(text: string, pattern: RegExp, rng: Rng, replace: (match: string) => string): string {
  const matches = [...text.matchAll(pattern)];
  if (matches.length === 0) return text;
  const m = rng.pick(matches);
  return text.slice(0, m.index!) + replace(m[0]) + text.slice(m.index! + m[0].length);
}

/** One mutated file from a valid `base`. */
export function mutate(base: Uint8Array, rng: Rng): Uint8Array {
  let file: Uint8Array = base.slice();
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) {
    const kind = rng.int(100);
    if (kind < 55) {
      const parts = split(file);
      if (!parts) continue;
      const text = decoder.decode(parts.header);
      let header = encoder.encode(editJson(text, rng));
      // Sometimes pad with spaces to a multiple of 8, as writers do.
      if (rng.chance(0.3)) header = encoder.encode(decoder.decode(header).padEnd(Math.ceil(header.length / 8) * 8, ' '));
      file = assemble(header, parts.data);
    } else if (kind < 67) {
      // Flip bits of one byte, mostly inside the header JSON.
      if (file.length === 0) continue;
      const jsonEnd = Math.min(file.length, 8 + headerLengthOf(file));
      const at = rng.chance(0.85) && jsonEnd > 8 ? 8 + rng.int(jsonEnd - 8) : rng.int(file.length);
      file[at] ^= 1 << rng.int(8);
    } else if (kind < 73) {
      file = file.slice(0, rng.int(file.length + 1));
    } else if (kind < 78) {
      const extra = new Uint8Array(1 + rng.int(16)).map(() => rng.int(256));
      const out = new Uint8Array(file.length + extra.length);
      out.set(file);
      out.set(extra, file.length);
      file = out;
    } else if (kind < 85) {
      // Lie about the header length.
      if (file.length < 8) continue;
      const n = headerLengthOf(file);
      const claims = [0n, 1n, 2n, BigInt(Math.max(0, n - 1)), BigInt(n + 1), BigInt(n + 8), 99_999_999n, 100_000_000n, 100_000_001n, 1n << 32n, 1n << 62n, (1n << 64n) - 1n, BigInt(file.length), BigInt(file.length - 8)];
      new DataView(file.buffer, file.byteOffset, 8).setBigUint64(0, rng.pick(claims), true);
    } else if (kind < 92) {
      // Tensor data of another size: moves the end of the file.
      const parts = split(file);
      if (!parts) continue;
      const delta = rng.pick([-8, -4, -2, -1, 1, 2, 4, 8]);
      const data = new Uint8Array(Math.max(0, parts.data.length + delta));
      data.set(parts.data.subarray(0, data.length));
      file = assemble(parts.header, data);
    } else if (kind < 96) {
      // Invalid UTF-8 inside the header.
      const parts = split(file);
      if (!parts || parts.header.length === 0) continue;
      const header = parts.header.slice();
      const bad = rng.pick([[0xff], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0x80]]);
      const at = rng.int(header.length);
      header.set(bad.slice(0, header.length - at), at);
      file = assemble(header, parts.data);
    } else {
      // Random bytes.
      file = new Uint8Array(rng.int(64)).map(() => rng.int(256));
      if (rng.chance(0.5) && file.length >= 8) new DataView(file.buffer).setBigUint64(0, BigInt(rng.int(file.length)), true);
    }
  }
  return file;
}

/** Only edits of the header JSON (length prefix kept consistent): reaches the deeper rules. */
export function mutateHeader(base: Uint8Array, rng: Rng): Uint8Array {
  const parts = split(base);
  if (!parts) return base.slice();
  let text = decoder.decode(parts.header);
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) text = editJson(text, rng);
  return assemble(encoder.encode(text), parts.data);
}

/** The fuzz run of the unit tests; GRAFT_FUZZ_CASES / GRAFT_FUZZ_SEED change it. */
export const UNIT_FUZZ_RUN = {
  cases: Number(process.env.GRAFT_FUZZ_CASES ?? 10000),
  seed: Number(process.env.GRAFT_FUZZ_SEED ?? 20240601),
};

/** Valid files to mutate: the reference fixtures plus one written by our planner (sub-byte and rare dtypes, metadata). */
export function seedFiles(): Uint8Array[] {
  const dirs = [fixture('formats'), fixture('formats', 'bad')];
  const files = dirs.flatMap((dir) =>
    fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort().map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f)))),
  );
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

/** The i-th case of a fuzz run: alternately any mutation and header-only edits. */
export function fuzzCase(i: number, seeds: readonly Uint8Array[], rng: Rng): Uint8Array {
  return (i % 2 === 0 ? mutate : mutateHeader)(rng.pick(seeds), rng);
}

// ---------------------------------------------------------------------------------------------
// The fast paths against the slow, obvious computation they replace.

type JsonOutcome = { header: RawHeader } | { error: string };

function jsonOutcome(parse: (bytes: Uint8Array) => RawHeader, json: Uint8Array): JsonOutcome {
  try {
    return { header: parse(json) };
  } catch (error) {
    if (error instanceof HeaderJsonError) return { error: error.message };
    throw error;
  }
}

type HeaderVerdict = { header: SafetensorsHeader } | { rule: HeaderRule; tensor?: string; reason?: string };

const U64_MAX = (1n << 64n) - 1n;

/**
 * What parseHeader must answer, computed the plain way: the UTF-8 byte loop, the exact JSON
 * parser, and BigInt (u64) arithmetic throughout, rule after rule in the reference's order.
 * `reason` is given for the rules whose text depends on the input.
 */
export function referenceVerdict(json: Uint8Array, fileSize: number): HeaderVerdict {
  const utf8 = describeUtf8Error(json);
  if (utf8) return { rule: 'invalid-utf8', reason: `invalid UTF-8 in header: ${utf8}` };
  const parsed = jsonOutcome(parseHeaderJsonExact, json);
  if ('error' in parsed) return { rule: 'invalid-json', reason: `invalid JSON in header: ${parsed.error}` };
  const raw = parsed.header;
  const sorted = raw.tensors
    .map((t) => ({ t, begin: BigInt(t.begin), end: BigInt(t.end) }))
    .sort((a, b) => (a.begin !== b.begin ? (a.begin < b.begin ? -1 : 1) : a.end < b.end ? -1 : a.end > b.end ? 1 : 0));
  const dataStart = 8 + json.length;
  const tensors: TensorInfo[] = [];
  let cursor = 0n;
  for (const { t, begin, end } of sorted) {
    if (begin !== cursor || end < begin) return { rule: 'invalid-offset', tensor: t.name, reason: `invalid offset for tensor \`${t.name}\`` };
    cursor = end;
    let numel = 1n;
    for (const dim of t.shape) {
      numel *= BigInt(dim);
      if (numel > U64_MAX) return { rule: 'overflow', tensor: t.name };
    }
    const bits = numel * BigInt(dtypeBits(t.dtype));
    if (bits > U64_MAX) return { rule: 'overflow', tensor: t.name };
    if (bits % 8n !== 0n) return { rule: 'misaligned-subbyte', tensor: t.name };
    if (end - begin !== bits / 8n) return { rule: 'invalid-tensor-info', tensor: t.name };
    const info: TensorInfo = {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape.map(Number),
      numel: Number(numel),
      dataOffsets: [Number(begin), Number(end)],
      begin: dataStart + Number(begin),
      end: dataStart + Number(end),
    };
    // Dimensions past 2^53 are also kept exactly, as text.
    if (t.shape.some((d) => BigInt(d) > BigInt(Number.MAX_SAFE_INTEGER))) info.shapeText = t.shape.map(String);
    tensors.push(info);
  }
  if (cursor + BigInt(dataStart) !== BigInt(fileSize)) return { rule: 'incomplete-buffer' };
  const metadata = raw.metadata ? Object.fromEntries(raw.metadata) : null;
  return { header: { path: '', fileSize, headerLength: json.length, dataStart, tensors, metadata } };
}

function headerVerdict(json: Uint8Array, fileSize: number): HeaderVerdict {
  try {
    return { header: parseHeader(json, fileSize) };
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw error;
    const rule = error.rule as HeaderRule;
    const wordedByInput = rule === 'invalid-utf8' || rule === 'invalid-json' || rule === 'invalid-offset';
    return { rule, ...(error.tensor !== undefined && { tensor: error.tensor }), ...(wordedByInput && { reason: error.reason }) };
  }
}

export interface DifferentialOutcome {
  /** The file has a header to parse (its length prefix fits the file). */
  hasHeader: boolean;
  /** The common-form scanner produced the JSON result itself. */
  fastPath: boolean;
  accepted: boolean;
}

/**
 * Runs one file's header through the fast paths and the plain computations: parseHeaderJson
 * against parseHeaderJsonExact (same header or same error message), and parseHeader against
 * referenceVerdict (same header, or same rule, tensor and wording). Throws an Error describing
 * the first disagreement.
 */
export function compareWithExact(file: Uint8Array): DifferentialOutcome {
  let length: number;
  try {
    length = checkHeaderLength(file.subarray(0, 8), file.length);
  } catch {
    return { hasHeader: false, fastPath: false, accepted: false };
  }
  const json = file.subarray(8, 8 + length);
  const describe = (value: unknown) => JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Map ? [...v] : v));

  const exact = jsonOutcome(parseHeaderJsonExact, json);
  const dispatched = jsonOutcome(parseHeaderJson, json);
  if (!isDeepStrictEqual(dispatched, exact)) throw new Error(`parseHeaderJson ${describe(dispatched)}\n  exact parser ${describe(exact)}`);
  const fast = parseCommonHeaderJson(json);
  if (fast !== undefined && !isDeepStrictEqual({ header: fast }, exact)) throw new Error(`fast path ${describe(fast)}\n  exact parser ${describe(exact)}`);

  const expected = referenceVerdict(json, file.length);
  const actual = headerVerdict(json, file.length);
  if (!isDeepStrictEqual(actual, expected)) throw new Error(`parseHeader ${describe(actual)}\n  reference ${describe(expected)}`);
  return { hasHeader: true, fastPath: fast !== undefined, accepted: 'header' in actual };
}

// ---------------------------------------------------------------------------------------------
// Running one case through the real reader, with a file handle that watches every read.


export interface CaseOutcome {
  accepted: boolean;
  error?: SafetensorsError;
  header?: SafetensorsHeader;
  /** Bytes the reader asked for, summed over reads. */
  bytesRequested: number;
  /** Largest single read buffer handed to the file handle. */
  largestRead: number;
}

/** A FileHandle over bytes in memory that records what is read; reads past the end return 0 bytes. */
function watchedHandle(file: Uint8Array, stats: { bytesRequested: number; largestRead: number }): FileHandle {
  const handle = {
    async stat() {
      return { size: file.length, isDirectory: () => false };
    },
    async read(target: Uint8Array, offset: number, length: number, position: number) {
      stats.bytesRequested += length;
      stats.largestRead = Math.max(stats.largestRead, target.byteLength, length);
      const available = Math.max(0, Math.min(length, file.length - position));
      target.set(file.subarray(position, position + available), offset);
      return { bytesRead: available, buffer: target };
    },
  };
  return handle as unknown as FileHandle;
}

/**
 * Reads `file` as the reader would from disk, then (when accepted) decodes every decodable tensor
 * and re-plans the header with the writer. Throws anything that is not a SafetensorsError.
 */
export async function runCase(file: Uint8Array): Promise<CaseOutcome> {
  const stats = { bytesRequested: 0, largestRead: 0 };
  const handle = watchedHandle(file, stats);
  let header: SafetensorsHeader;
  try {
    header = await readHeaderFrom(handle, 'case.safetensors');
  } catch (error) {
    if (error instanceof SafetensorsError) return { accepted: false, error, ...stats };
    throw error;
  }
  for (const t of header.tensors) {
    if (!canDecode(t.dtype) || t.numel === 0) continue;
    const values = await readElements({ ...t, file: 'case.safetensors' }, 0, Math.min(t.numel, 4096), handle);
    if (values.length !== Math.min(t.numel, 4096)) throw new Error(`decoded ${values.length} values of ${t.name}`);
  }
  // The writer lays the same tensors out as a valid file again.
  if (header.tensors.every((t) => t.shape.every(Number.isSafeInteger))) {
    const plan = planSafetensors(header.tensors, header.metadata);
    const replanned = await readHeaderFrom(watchedHandle(padTo(plan.headerBytes, plan.fileSize), { bytesRequested: 0, largestRead: 0 }), 'plan');
    const describe = (h: SafetensorsHeader) => h.tensors.map((t) => `${t.name}|${t.dtype}|${t.shape}`).sort().join('\n');
    if (describe(replanned) !== describe(header)) throw new Error('re-planned header differs');
  }
  return { accepted: true, header, ...stats };
}

function padTo(headerBytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(headerBytes);
  return out;
}
