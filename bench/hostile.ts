// Hostile inputs too heavy for the unit tests (see test/unit/hostile-inputs.test.ts for the rest):
// - a 1,000,000-tensor header (zero-size tensors: valid, ~60 MB of JSON): open it, `graft inspect
//   --json` and `graft diff --json` it, with the output streamed to a counter;
// - GGUF metadata: 42 MB of it (a 2M-token vocabulary and 16k other keys) read with the catalog's
//   caps, 160 MB of it (refused past the 128 MiB cap), and a header declaring 18M keys.
// Each prints its time and the process's peak RSS; the outcome (what was read or refused) too.
//
// Run: npm run bench -- hostile
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diffCommand } from '../src/cli/commands/diff';
import { inspectCommand } from '../src/cli/commands/inspect';
import { createContext, type CliCommand } from '../src/cli/context';
import { GGUF_CATALOG_LIMITS, GgufValueType, readGgufHeader } from '../src/core/gguf';
import { openCheckpoint } from '../src/core/safetensors';
import { machineLine, measure } from './lib/measure';
import { printTable } from './lib/table';

const TENSORS = Number(process.env.GRAFT_HOSTILE_TENSORS ?? 1_000_000);
const MB = 1e6;
const workerScript = path.resolve('dist', 'worker.js');

/** A valid safetensors file of `count` zero-size U8 tensors, written in pieces. */
function writeZeroSizeHeader(file: string, count: number): number {
  const parts: string[] = ['{'];
  for (let i = 0; i < count; i++) parts.push(`${i ? ',' : ''}"model.layers.${i >> 10}.experts.${i & 1023}.w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`);
  parts.push('}');
  const json = Buffer.from(parts.join(''));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([prefix, json]));
  return json.length;
}

/** A GGUF header written entry by entry: `entries` yields [key, type, value bytes]. */
function writeGgufMetadata(file: string, kvCount: number, entries: Iterable<Buffer>): number {
  const fd = fs.openSync(file, 'w');
  try {
    const head = Buffer.alloc(24);
    head.write('GGUF', 0, 'latin1');
    head.writeUInt32LE(3, 4);
    head.writeBigUInt64LE(0n, 8);
    head.writeBigUInt64LE(BigInt(kvCount), 16);
    fs.writeSync(fd, head);
    let bytes = 24;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for (const entry of entries) {
      batch.push(entry);
      batchBytes += entry.length;
      if (batchBytes > 4 * MB) {
        bytes += fs.writeSync(fd, Buffer.concat(batch));
        batch = [];
        batchBytes = 0;
      }
    }
    bytes += fs.writeSync(fd, Buffer.concat(batch));
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

const ggufString = (text: string) => {
  const body = Buffer.from(text);
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length));
  body.copy(out, 8);
  return out;
};
const u32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
};
const u64 = (value: number) => {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(value));
  return out;
};

function* stringEntries(count: number, valueBytes: number, prefix: string): Generator<Buffer> {
  const value = ggufString('v'.repeat(valueBytes));
  for (let i = 0; i < count; i++) yield Buffer.concat([ggufString(`${prefix}.${i}`), u32(GgufValueType.STRING), value]);
}

function* vocabulary(tokens: number): Generator<Buffer> {
  yield Buffer.concat([ggufString('tokenizer.ggml.tokens'), u32(GgufValueType.ARRAY), u32(GgufValueType.STRING), u64(tokens)]);
  for (let i = 0; i < tokens; i++) yield ggufString(`tok${i}`);
}

async function runCommand(command: CliCommand, args: string[]): Promise<{ code: number; outputBytes: number; stderr: string }> {
  let outputBytes = 0;
  let stderr = '';
  const ctx = createContext({ stdout: (t) => (outputBytes += Buffer.byteLength(t)), stderr: (t) => (stderr += t) }, new AbortController().signal, workerScript);
  try {
    return { code: await command.run(args, ctx), outputBytes, stderr };
  } finally {
    await ctx.dispose();
  }
}

async function main(): Promise<void> {
  console.log(machineLine());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-hostile-'));
  const rows: string[][] = [];
  const row = (what: string, m: { seconds: number; startRss: number; peakRss: number }, outcome: string) =>
    rows.push([what, m.seconds.toFixed(2), (m.peakRss / MB).toFixed(0), ((m.peakRss - m.startRss) / MB).toFixed(0), outcome]);
  try {
    const file = path.join(dir, 'million.safetensors');
    const headerBytes = writeZeroSizeHeader(file, TENSORS);
    console.log(`${TENSORS.toLocaleString('en-US')} zero-size tensors, header ${(headerBytes / MB).toFixed(1)} MB`);
    const opened = await measure(() => openCheckpoint(file));
    row('open (validate) the header', opened, `${opened.value.tensors.length} tensors`);
    opened.value.tensors.length = 0;
    const inspected = await measure(() => runCommand(inspectCommand, [file, '--json']));
    row('graft inspect --json', inspected, `exit ${inspected.value.code}, ${(inspected.value.outputBytes / MB).toFixed(0)} MB of JSON`);
    const diffed = await measure(() => runCommand(diffCommand, [file, file, '--json']));
    row('graft diff --json (a against itself)', diffed, `exit ${diffed.value.code}, ${(diffed.value.outputBytes / MB).toFixed(0)} MB of JSON${diffed.value.stderr ? `; ${diffed.value.stderr.trim()}` : ''}`);
    fs.rmSync(file);

    const medium = path.join(dir, 'metadata-42mb.gguf');
    const mediumBytes = writeGgufMetadata(medium, 16_001, [...vocabulary(2_000_000), ...stringEntries(16_000, 1000, 'junk')]);
    const read = await measure(() => readGgufHeader(medium, GGUF_CATALOG_LIMITS));
    row(`GGUF, ${(mediumBytes / MB).toFixed(0)} MB of metadata`, read, `read, ${read.value.metadata.length} kept, ${read.value.skippedMetadata ?? 0} skipped`);
    fs.rmSync(medium);

    const large = path.join(dir, 'metadata-160mb.gguf');
    const largeBytes = writeGgufMetadata(large, 40_000, stringEntries(40_000, 4000, 'junk'));
    const refused = await measure(() => readGgufHeader(large, GGUF_CATALOG_LIMITS).then(() => 'read (unexpected)', (error: Error) => `refused: ${error.message.slice(error.message.indexOf(' has ') + 1, 90)}...`));
    row(`GGUF, ${(largeBytes / MB).toFixed(0)} MB of metadata`, refused, refused.value);
    fs.rmSync(large);

    // 18M keys need at least 234 MB: the file is made that long (sparse, no disk used) so that
    // only the entry cap can refuse it.
    const declared = path.join(dir, 'keys-18m.gguf');
    writeGgufMetadata(declared, 18_000_000, stringEntries(1000, 0, 'k'));
    fs.truncateSync(declared, 400 * MB);
    const keys = await measure(() => readGgufHeader(declared, GGUF_CATALOG_LIMITS).then(() => 'read (unexpected)', (error: Error) => `refused: ${error.message.slice(error.message.indexOf(' declares ') + 1, 90)}...`));
    row('GGUF declaring 18M metadata keys', keys, keys.value);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  printTable(['case', 'seconds', 'peak RSS MB', 'growth MB', 'outcome'], rows);
}

void main();
