// Benchmark of safetensors header parsing on a 10,000-tensor header (~1.1 MB of JSON, the size
// of bench/inspector.ts's checkpoint): the exact serde_json-like parser alone, the dispatching
// parser (common-form fast path, exact parser as the fallback), the whole validation
// (parseHeader: UTF-8, JSON, offsets and sizes), and the built-in JSON.parse as a floor. A second
// header carries 200 KB of metadata full of escapes (as kohya-style LoRA files do), which the fast
// path hands string by string to the exact string reader.
//
// Times are CPU milliseconds of this process (user + system), less sensitive than wall time to
// other load on a shared machine. "cold" = the first call in a fresh process (nothing
// JIT-compiled: what the inspector's first open of a file costs), each variant in its own child
// process; "warm" = median of RUNS calls after it.
//
// Run: npx tsc -p . && node scripts/bench.mjs header-parse
import { spawnSync } from 'node:child_process';
import { parseHeader, planSafetensors } from '../src/core/safetensors';
import { parseCommonHeaderJson, parseHeaderJson, parseHeaderJsonExact } from '../src/core/safetensors/header-json';
import { listRuns, machineLine, median } from './lib/measure';
import { moeHeaderSpecs } from './lib/moe-header';
import { printTable } from './lib/table';

const RUNS = 41;
const SPECS = moeHeaderSpecs();

/** Metadata of ~200 KB whose values are JSON documents, so full of escaped quotes. */
function escapedMetadata(): Record<string, string> {
  const frequencies = Object.fromEntries(Array.from({ length: 6000 }, (_, i) => [`tag "${i}"\twith escapes`, i]));
  return { format: 'pt', ss_tag_frequency: JSON.stringify({ dataset: frequencies }), ss_network_args: '{"conv_dim": "4"}' };
}

interface Header {
  json: Uint8Array;
  fileSize: number;
}

function header(kind: string): Header {
  const plan = planSafetensors(SPECS, kind === 'escaped' ? escapedMetadata() : { format: 'pt' });
  return { json: plan.headerBytes.subarray(8), fileSize: plan.fileSize };
}

const decoder = new TextDecoder();

const VARIANTS: Record<string, (h: Header) => unknown> = {
  'JSON.parse (floor: no validation)': (h) => JSON.parse(decoder.decode(h.json)),
  'exact parser alone': (h) => parseHeaderJsonExact(h.json),
  'parseHeaderJson (fast path)': (h) => parseHeaderJson(h.json),
  'parseHeader (UTF-8 + JSON + validation)': (h) => parseHeader(h.json, h.fileSize),
};

function cpuMs(fn: () => unknown): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** Child process: the first call of one variant, in ms of CPU. */
function coldChild(kind: string, variant: string): void {
  const h = header(kind);
  process.stdout.write(String(cpuMs(() => VARIANTS[variant](h))));
}

function coldRun(kind: string, variant: string): number {
  const child = spawnSync(process.execPath, [__filename, 'cold', kind, variant], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`cold run of "${variant}" failed: ${child.stderr}`);
  return Number(child.stdout);
}

function main(): void {
  console.log(`start: ${machineLine()}`);
  for (const kind of ['plain', 'escaped']) {
    const h = header(kind);
    const fast = parseCommonHeaderJson(h.json);
    if (!fast || fast.tensors.length !== SPECS.length) throw new Error(`the ${kind} header did not take the fast path`);
    console.log(`\n${kind} header: ${fast.tensors.length.toLocaleString('en-US')} tensors, ${(h.json.length / 1e6).toFixed(2)} MB of JSON${kind === 'escaped' ? `, of which ${(JSON.stringify(escapedMetadata()).length / 1e3).toFixed(0)} KB metadata` : ''}; CPU ms`);
    const rows: string[][] = [];
    for (const [variant, fn] of Object.entries(VARIANTS)) {
      const cold = coldRun(kind, variant);
      const warm: number[] = [];
      // No forced gc between runs: the collector's helper threads would still be sweeping
      // during the next run and count in its CPU time.
      for (let i = 0; i < RUNS; i++) warm.push(cpuMs(() => fn(h)));
      const sorted = [...warm].sort((a, b) => a - b);
      rows.push([variant, cold.toFixed(1), median(warm).toFixed(1), sorted[0].toFixed(1), listRuns(sorted.slice(-3), 1)]);
    }
    printTable(['step', 'cold', 'warm median', 'warm min', 'slowest 3'], rows);
  }
  console.log(`end: ${machineLine()}`);
}

if (process.argv[2] === 'cold') coldChild(process.argv[3], process.argv[4]);
else main();
